"""`bad_weight_init`: constant, symmetric or badly scaled initial weights."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import INIT_READS, INIT_SCALE_BAND, SYMMETRIC_SHARE, init_reading


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
    like a bad scale, a risk, which the run's outcome makes a cause or an advisory. A bad scale
    confined to the output layer (the last weight, one row per class) ranks below
    `initial_loss_mismatch`: the first loss measures that layer's effect (the spread of the
    logits at init) directly, and names it first when it is off. An output layer inside the band
    but above every standard init (4-10x LeCun's: PyTorch's default scaled up 7-17x by hand) is left to that
    rule alone: its scale says nothing by itself (the features it multiplies may be small), and
    `initial_loss_mismatch` names it when the first loss shows it."""

    cause = "bad_weight_init"
    reads = INIT_READS

    #: weight std vs LeCun's 1/sqrt(fan_in) outside this band is badly scaled (shared with initial_loss_mismatch)
    SCALE_BAND = INIT_SCALE_BAND
    #: a matrix with at least this share of its rows copies of the first is symmetric (shared)
    SYMMETRIC_SHARE = SYMMETRIC_SHARE
    #: parameters named per problem at most
    NAMED = 4
    #: the ordering strength of a bad scale confined to the output layer: below `initial_loss_mismatch`'s,
    #: which measures that layer's effect (the logits' spread at init) directly in the first loss
    OUTPUT_ONLY_SCORE = 0.3

    def evaluate(self, view: RunView) -> Finding | None:
        reading = init_reading(view)
        if reading is None:
            return None
        init, constant, symmetric = reading.weights, reading.constant, reading.symmetric
        scaled = [f"{name} ({scale:.2g}x)" for name, scale in reading.scaled]
        if not (constant or symmetric or scaled):
            return None
        parts = []
        if constant:
            parts.append(f"constant weights in {', '.join(constant[: self.NAMED])}")
        if symmetric:
            parts.append(f"identical rows in {', '.join(symmetric[: self.NAMED])}")
        if scaled:
            where = " (the output layer)" if reading.output_only else ""
            parts.append(f"weights scaled far from 1/sqrt(fan_in) in {', '.join(scaled[: self.NAMED])}{where}")
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
            score=0.9 if constant else self.OUTPUT_ONLY_SCORE if reading.output_only else 0.7,
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
