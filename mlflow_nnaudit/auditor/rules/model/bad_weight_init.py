"""`bad_weight_init`: constant, symmetric or badly scaled initial weights."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


def copies_of_first_row(w: dict) -> float:
    """Share of the rows other than the first that equal it. (The recorder's
    `identical_rows_share` counts the first row itself: 1/2 for any 2-row matrix.)"""
    rows = int(w["shape"][0])
    return max(0.0, (w["identical_rows_share"] * rows - 1) / (rows - 1))


class BadWeightInit(Rule):
    """The recorder measures every weight matrix/kernel before the first update: constant
    weights (all zero, all equal), most rows identical (symmetric: the units stay copies of
    each other), or a standard deviation more than 10x away from LeCun's 1/sqrt(fan_in)."""

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
        constant = [w["param"] for w in init if w["constant"]]
        symmetric = [w["param"] for w in init if not w["constant"] and w["shape"][0] > 1
                     and copies_of_first_row(w) >= self.SYMMETRIC_SHARE]
        lo, hi = self.SCALE_BAND
        scaled = [f"{w['param']} ({w['scale_vs_lecun']:.2g}x)" for w in init
                  if not w["constant"] and not lo <= w["scale_vs_lecun"] <= hi]
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
        return self.finding(
            confidence="high" if (constant or symmetric) else "medium",
            severity="warning",
            score=0.9 if constant else 0.7,
            summary=f"bad initial weights: {seen}",
            recommendation=f"The initial weights are bad ({seen}): use PyTorch's default initialisation or "
            "`nn.init.kaiming_normal_` (ReLU) / `nn.init.xavier_uniform_` (tanh, sigmoid) with zero biases; never "
            "initialise weights to a constant.",
            evidence=[Evidence("initial_weights", schema.DIAGNOSTICS_ARTIFACT,
                               {"constant": constant, "symmetric": symmetric, "badly_scaled": scaled})],
        )
