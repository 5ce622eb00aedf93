"""`not_converged`: the loss is still falling when training stops."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import TAIL_SHARE_IMPROVING, TAIL_START, tail_trend, trend_evidence


class NotConverged(Rule):
    """The loss is still falling when training stops: over the last 30% of the run the
    (validation, else training) loss has a significant downward trend (autocorrelation-
    corrected Mann-Kendall; read on the last 5 points where the last 30% holds fewer) and that
    stretch still brought at least 10% of the run's total progress. A converged curve's tail brings
    a few percent at most. On a run whose outcome is harmed, a validation loss that fell tenfold or more is also
    read on a log scale (`_log_drops`): a geometric fall still going brings little of its absolute
    progress late."""

    cause = "not_converged"
    #: upstream causes it follows from, when found too (listed after them): steps too small first
    consequence_of = (
        "learning_rate_too_low",
        "lr_decay_too_fast",
        "batch_size_too_large",
        "gradient_clipping_masks_lr",
        "targets_not_normalized",  # a regression on raw-scale targets crawling down from a huge loss: the scale first
    )

    #: the tail window: the last 30% of the curve (shared with the other "still falling" readings)
    TAIL_START = TAIL_START
    #: a tail that still brings this share of the whole run's progress is "still improving"
    TAIL_SHARE_IMPROVING = TAIL_SHARE_IMPROVING
    #: high confidence from this tail share on, with a trend p-value below HIGH_P
    HIGH_SHARE = 0.2
    HIGH_P = 1e-3
    #: a harmed run's loss that fell this many times over is also read on a log scale (`_log_drops`)
    LOG_FALL = 10.0

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
        share, scale = tail / total, ""
        logs = self._log_drops(view, curve) if share < self.TAIL_SHARE_IMPROVING and role == VAL_LOSS else None
        if logs is not None:
            (tail, total), scale = logs, " (read on a log scale)"
            share = tail / total
        if share < self.TAIL_SHARE_IMPROVING:
            return None
        name = "validation" if role == VAL_LOSS else "training"
        steps = (float(curve.steps[int(self.TAIL_START * len(curve.steps))]), float(curve.steps[-1]))
        return self.finding(
            p_value=t.p_value,
            # the log-scale reading is a second look at a run the first one passed: never high confidence
            confidence="high" if t.p_value < self.HIGH_P and share >= self.HIGH_SHARE and not scale else "medium",
            severity="warning",
            score=min(1.0, share),
            summary=f"the {name} loss was still falling at the end: the last 30% of the run brought {share:.0%} of "
            f"its total improvement{scale}",
            recommendation=f"Training stopped while the {name} loss was still improving (the last 30% of steps gave "
            f"{share:.0%} of the total gain{scale}): train longer, or keep the learning rate higher for longer before decaying it.",
            evidence=[
                trend_evidence("mann_kendall_tail", curve.key, t, steps),
                Evidence(
                    "tail_share_of_progress",
                    curve.key,
                    {"tail_drop": tail, "total_drop": total, "share": share} | ({"log_scale": True} if scale else {}),
                ),
            ],
        )

    def _log_drops(self, view: RunView, curve) -> tuple[float, float] | None:
        """The tail's fall and the whole fall of the log of the validation loss (a training loss falling
        geometrically towards 0 is as often a model memorising its set), on a run whose outcome is harmed
        (`RunView.outcome_harm`) and whose loss, positive throughout, fell LOG_FALL-fold or more: a loss
        falling geometrically (a regression on raw-scale targets, 1.8e7 -> 6.4e4 and still halving each
        epoch) brings little of its absolute fall late, yet is as far from converged as it was. Only
        where the outcome is poor: a healthy run falling geometrically towards a tiny loss is fine."""
        v = curve.values
        if view.outcome_harm() is None or float(v.min()) <= 0 or float(v[0]) < self.LOG_FALL * float(v[-1]):
            return None
        logs = np.log(v)
        total = stats.window_drop(curve.steps, logs, 0.0, 1.0)
        return (stats.window_drop(curve.steps, logs, self.TAIL_START, 1.0), total) if total > 0 else None
