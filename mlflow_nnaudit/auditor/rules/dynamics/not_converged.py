"""`not_converged`: the loss is still falling when training stops."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import TAIL_SHARE_IMPROVING, TAIL_START, tail_trend, trend_evidence


class NotConverged(Rule):
    """The loss is still falling when training stops: over the last 30% of the run the
    (validation, else training) loss has a significant downward trend (autocorrelation-
    corrected Mann-Kendall; read on the last 5 points where the last 30% holds fewer) and that
    stretch still brought at least 10% of the run's total progress. A converged curve's tail brings
    a few percent at most."""

    cause = "not_converged"
    #: upstream causes it follows from, when found too (listed after them): steps too small first
    consequence_of = (
        "learning_rate_too_low",
        "lr_decay_too_fast",
        "batch_size_too_large",
        "gradient_clipping_masks_lr",
    )

    #: the tail window: the last 30% of the curve (shared with the other "still falling" readings)
    TAIL_START = TAIL_START
    #: a tail that still brings this share of the whole run's progress is "still improving"
    TAIL_SHARE_IMPROVING = TAIL_SHARE_IMPROVING
    #: high confidence from this tail share on, with a trend p-value below HIGH_P
    HIGH_SHARE = 0.2
    HIGH_P = 1e-3

    def evaluate(self, view: RunView) -> Finding | None:
        role = VAL_LOSS if view.finite_curve(VAL_LOSS) is not None else TRAIN_LOSS
        curve = view.finite_curve(role)
        if curve is None:
            return None
        div = view.divergence(role)
        if div is not None and div.detected:
            return None
        t = tail_trend(view, role)
        total = view.drop(role, 0.0, 1.0)
        tail = view.drop(role, self.TAIL_START, 1.0)
        if t is None or total is None or total <= 0 or t.direction >= 0:
            return None
        share = tail / total
        if share < self.TAIL_SHARE_IMPROVING:
            return None
        name = "validation" if role == VAL_LOSS else "training"
        steps = (float(curve.steps[int(self.TAIL_START * len(curve.steps))]), float(curve.steps[-1]))
        return self.finding(
            p_value=t.p_value,
            confidence="high" if t.p_value < self.HIGH_P and share >= self.HIGH_SHARE else "medium",
            severity="warning",
            score=min(1.0, share),
            summary=f"the {name} loss was still falling at the end: the last 30% of the run brought {share:.0%} of "
            "its total improvement",
            recommendation=f"Training stopped while the {name} loss was still improving (the last 30% of steps gave "
            f"{share:.0%} of the total gain): train longer, or keep the learning rate higher for longer before decaying it.",
            evidence=[
                trend_evidence("mann_kendall_tail", curve.key, t, steps),
                Evidence("tail_share_of_progress", curve.key, {"tail_drop": tail, "total_drop": total, "share": share}),
            ],
        )
