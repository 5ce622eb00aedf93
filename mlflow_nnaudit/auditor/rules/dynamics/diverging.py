"""`diverging`: the training loss climbs back up after its best point."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import LEARNING_RATE, TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num, fmt_step
from mlflow_nnaudit.auditor.rules.helpers import LEARNING_RATE_READS, trend_evidence


class Diverging(Rule):
    """The training loss climbs back up after its best point: it loses at least half of the
    progress it had made (or grows tenfold), and the climb is a significant upward trend
    (Mann-Kendall with Hamed-Rao correction on the block medians after the best block).
    A validation loss that rises with it confirms the finding."""

    cause = "diverging"
    #: upstream causes it follows from, when found too (listed after them)
    reads = LEARNING_RATE_READS
    #: a divergence is the symptom; a too-high learning rate found on the run is its cause
    consequence_of = ("learning_rate_too_high", "data_not_shuffled", "gradients_not_zeroed", "nonfinite_inputs")

    #: a growth this large decides the finding on its own (no trend test needed), with high confidence
    EXPLOSION_GROWTH = 10
    #: a learning-rate schedule that had raised the rate this many times by the onset is blamed
    SCHEDULE_RAISE = 3

    def evaluate(self, view: RunView) -> Finding | None:
        d = view.divergence(TRAIN_LOSS)
        if d is None or not d.detected:
            return None
        curve = view.curve(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        ev = [
            Evidence(
                "divergence",
                curve.key,
                {"start": lv.start, "best": lv.best, "end": lv.end, "regained_share": d.regained, "growth": d.growth},
                (d.onset_x, float(curve.x()[-1])),
            ),
            trend_evidence("mann_kendall_after_best", curve.key, d.trend_after_best),
        ]
        vd = view.divergence(VAL_LOSS)
        both = vd is not None and vd.detected
        if both:
            ev.append(Evidence("divergence", view.curve(VAL_LOSS).key, {"regained_share": vd.regained}))
        lr = view.learning_rate()
        advice = f"lower the learning rate{f' from {fmt_num(lr[1])}' if lr else ''} 3-10x or add a warm-up"
        schedule = view.lr_at(d.onset_x)
        if schedule is not None and schedule[1] >= self.SCHEDULE_RAISE * schedule[0] > 0:
            advice = (
                f"the learning-rate schedule had raised it from {fmt_num(schedule[0])} to "
                f"{fmt_num(schedule[1])} by then: cap the schedule 3-10x below that"
            )
            ev.append(
                Evidence(
                    "lr_schedule", view.curve(LEARNING_RATE).key, {"lr_start": schedule[0], "lr_at_onset": schedule[1]}
                )
            )
        return self.finding(
            # the test behind it, unless an explosion decided it on its own
            p_value=d.trend_after_best.p_value if d.growth < self.EXPLOSION_GROWTH else None,
            confidence="high" if (both or d.growth >= self.EXPLOSION_GROWTH) else "medium",
            severity="failed",
            score=min(1.0, 0.5 + 0.1 * min(d.regained, 5)),
            summary=f"the training loss fell to {fmt_num(lv.best)} by step {fmt_step(d.onset_x)}, then climbed to "
            f"{fmt_num(lv.end)} (started at {fmt_num(lv.start)})"
            + (" and the validation loss rose too" if both else ""),
            recommendation=f"Training diverged after step {fmt_step(d.onset_x)} (loss {fmt_num(lv.best)} -> "
            f"{fmt_num(lv.end)}): {advice}, clip gradients (`torch.nn.utils.clip_grad_norm_`), and keep the "
            "checkpoint from the best step.",
            evidence=ev,
        )
