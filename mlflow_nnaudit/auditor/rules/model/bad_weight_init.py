"""`bad_weight_init`: constant, symmetric or badly scaled initial weights."""

from __future__ import annotations

import math
import re

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


def copies_of_first_row(w: dict) -> float:
    """Share of the rows other than the first that equal it (`identical_rows_share` counts the first too)."""
    rows = int(w["shape"][0])
    return max(0.0, (w["identical_rows_share"] * rows - 1) / (rows - 1))


#: names of embedding tables and norm layers (for records without `layer_weight`: a lookup table or a
#: per-feature scale is no fan-in matrix, and a zero, constant or N(0, 1) init of it is normal)
NOT_LAYER_NAMES = ("emb", "wte", "wpe", "word_embeddings", "position_embeddings", "token_type_embeddings", "norm")
#: recurrent weights (`nn.RNN`/`nn.GRU`/`nn.LSTM` draw U(-1/sqrt(hidden), 1/sqrt(hidden)) by default)
RNN_WEIGHT = re.compile(r"(^|\.)weight_(ih|hh)_l\d+(_reverse)?$")
#: how close (as a factor) a weight's std must be to a default init's to count as that init
DEFAULT_TOLERANCE = 1.25


def layer_weight(w: dict) -> bool:
    """Whether an initial-weight record is a layer's fan-in weight matrix/kernel (the recorder's
    `layer_weight`: Linear, convolution, RNN, attention projections, a custom layer's `weight`).
    Records from before that field: a parameter whose own name says `weight`, outside an
    embedding or a norm layer (a model's own `nn.Parameter`, `pos` or `cls_token`, is not one)."""
    if "layer_weight" in w:
        return bool(w["layer_weight"])
    name = w["param"].lower()
    return "weight" in name.rsplit(".", 1)[-1] and not any(n in name for n in NOT_LAYER_NAMES)


def pytorch_default(w: dict) -> bool:
    """Whether a weight is at PyTorch's own default init for its kind of layer, which the LeCun
    yardstick misjudges: an RNN/GRU/LSTM weight at U(-1/sqrt(hidden), 1/sqrt(hidden))
    (std 1/sqrt(3 hidden), hidden = rows / gates)."""
    name, std, rows = w["param"].lower(), float(w.get("std", 0.0)), int(w["shape"][0])
    if std <= 0 or not RNN_WEIGHT.search(name):
        return False
    near = lambda expected: 1 / DEFAULT_TOLERANCE <= std / expected <= DEFAULT_TOLERANCE  # noqa: E731
    return any(rows % gates == 0 and near(1 / math.sqrt(3 * rows / gates)) for gates in (4, 3, 1))


class BadWeightInit(Rule):
    """The recorder measures every layer's weight matrix/kernel before the first update (Linear,
    convolution, RNN, attention projections: the tensors with a fan-in): constant weights (all
    zero, all equal), most rows identical (symmetric: the units stay copies of each other), or a
    standard deviation more than 10x away from LeCun's 1/sqrt(fan_in). Other parameters are not
    judged: a zero or constant init is normal for biases, norm scales and shifts, embedding tables
    and a model's own `nn.Parameter` tensors (learned positions, a cls token), and LeCun's
    yardstick means nothing for them. A weight at PyTorch's own default for its layer is not badly
    scaled, whatever LeCun says: RNN/GRU/LSTM weights at U(-1/sqrt(hidden), 1/sqrt(hidden)). On
    L-BFGS runs the scale is not judged (its line search adapts the step to it). Constant or
    symmetric weights are a definite bug (kind `bug`) unless they are zero layers among others
    initialised normally and the recorder saw every one of them get a gradient and change (a
    zero-initialised output layer learns its rows apart from different targets' errors): then,
    like a bad scale, a risk, which the run's outcome makes a cause or an advisory."""

    cause = "bad_weight_init"
    reads = (("model", "init"),)

    #: weight std vs LeCun's 1/sqrt(fan_in) outside this band is badly scaled (PyTorch's default ~0.58,
    #: He ~1.41: both well inside)
    SCALE_BAND = (0.1, 10.0)
    #: a matrix with at least this share of its rows copies of the first is symmetric
    SYMMETRIC_SHARE = 0.5
    #: parameters named per problem at most
    NAMED = 4

    def evaluate(self, view: RunView) -> Finding | None:
        init = view.fact("model", "init")
        if not isinstance(init, list) or not init:
            return None
        init = [w for w in init if isinstance(w, dict) and layer_weight(w)]
        constant = [w["param"] for w in init if w["constant"]]
        symmetric = [
            w["param"]
            for w in init
            if not w["constant"] and w["shape"][0] > 1 and copies_of_first_row(w) >= self.SYMMETRIC_SHARE
        ]
        lo, hi = self.SCALE_BAND
        # L-BFGS's line search sizes its steps to the weights' scale; a default init is PyTorch's choice
        scaled = (
            []
            if view.lbfgs()
            else [
                f"{w['param']} ({w['scale_vs_lecun']:.2g}x)"
                for w in init
                if not w["constant"] and not lo <= w["scale_vs_lecun"] <= hi and not pytorch_default(w)
            ]
        )
        if not (constant or symmetric or scaled):
            return None
        parts = []
        if constant:
            parts.append(f"constant weights in {', '.join(constant[: self.NAMED])}")
        if symmetric:
            parts.append(f"identical rows in {', '.join(symmetric[: self.NAMED])}")
        if scaled:
            parts.append(f"weights scaled far from 1/sqrt(fan_in) in {', '.join(scaled[: self.NAMED])}")
        seen = "; ".join(parts)
        others = any(w["param"] not in constant + symmetric for w in init)
        nonzero = any(w.get("zero") is False for w in init if w["constant"])
        moved = others and not nonzero and self._moved(view, constant + symmetric)
        deliberate = (
            " (they received gradients and changed in training: a zero-initialised output or residual-branch "
            "layer, Fixup or adaLN-Zero style, can be deliberate)"
            if moved
            else ""
        )
        return self.finding(
            confidence="high" if (constant or symmetric) else "medium",
            severity="warning",
            # constant or copied rows that never move can never break their symmetry: a definite bug
            kind="bug" if (constant or symmetric) and not moved else None,
            score=0.9 if constant else 0.7,
            summary=f"bad initial weights: {seen}{deliberate}",
            recommendation=f"The initial weights are bad ({seen}): use PyTorch's default initialisation or "
            "`nn.init.kaiming_normal_` (ReLU) / `nn.init.xavier_uniform_` (tanh, sigmoid) with zero biases; never "
            "initialise weights to a constant" + (f"{deliberate}." if moved else "."),
            evidence=[
                Evidence(
                    "initial_weights",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {"constant": constant, "symmetric": symmetric, "badly_scaled": scaled, "moved": moved},
                )
            ],
        )

    @staticmethod
    def _moved(view: RunView, names: list[str]) -> bool:
        """Whether the recorder saw every one of these weights get a gradient and change (its
        `learning.optimizer` facts, complete name lists only): their symmetry did not stop them,
        so the outcome decides whether the init hurt. False when unknown."""
        opt = view.fact("learning", "optimizer")
        if not names or not isinstance(opt, dict) or (opt.get("sampled_steps") or 0) < 2:
            return False
        stuck = set()
        for count, listed in (("never_grad", "never_grad_names"), ("never_changed", "never_changed_names")):
            got = opt.get(listed)
            if not isinstance(got, list) or not isinstance(opt.get(count), int) or len(got) < opt[count]:
                return False  # not recorded, or a cut list: a weight left off it may be stuck
            stuck.update(got)
        return not stuck.intersection(names)
