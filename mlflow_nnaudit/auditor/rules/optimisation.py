"""Rules about the optimiser's settings: the learning rate and what it does to training."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor.curves import GRAD_NORM, TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_factor, fmt_num
from mlflow_nnaudit.auditor.rules.dynamics import NO_LEARNING, TAIL_START, trend_evidence

#: update/weight ratios per step well above/below ~1e-3 (Karpathy's rule of thumb; DeepDiagnosis
#: flags lr*|dW|/|W| outside [1e-5, 1e-1]); starting points, not laws
UPDATE_RATIO_HIGH = 1e-1
UPDATE_RATIO_LOW = 1e-5
#: a run still falling steadily that gained less than this share of its starting loss is too slow
SLOW_MAX_IMPROVEMENT = 0.2
#: ... and whose last 30% still brought this share of the progress (a steady, undecelerated decline;
#: a linear one gives 30%, a healthy decelerating curve a few percent)
TAIL_SHARE_STEADY = 0.2


def _lr_text(view: RunView) -> str:
    lr = view.learning_rate()
    return f" (it is {fmt_num(lr[1])})" if lr else ""


class LearningRateTooHigh(Rule):
    """Steps too large for the loss surface. The curves show it as a loss that grows at least
    3x above its lowest value before turning NaN/Inf (or turns non-finite within the first
    few points), as a divergence (see `diverging`), or as point-to-point swings of at least
    half the loss level that exceed everything the run gained. The recorder adds the direct
    measurement: update/weight ratios far above ~1e-3 (median > 1e-1). Curve-only evidence is
    medium confidence at most (a divergence can also come from bad data), swings alone low;
    the recorder's ratios together with a curve sign make it high."""

    cause = "learning_rate_too_high"
    explained_by = ("data_not_shuffled", "nonfinite_inputs", "gradients_not_zeroed")

    def evaluate(self, view: RunView) -> Finding | None:
        signs: list[str] = []
        evidence: list[Evidence] = []
        severity = "warning"
        nf = view.nonfinite(TRAIN_LOSS)
        curve = view.curve(TRAIN_LOSS)
        if nf is not None and nf.first_index is not None and curve is not None:
            before = curve.values[: nf.first_index]
            before = before[np.isfinite(before)]
            if len(before) >= 3 and before.min() > 0 and before[-1] / before.min() >= 3:
                signs.append(f"the loss grew {fmt_factor(before[-1] / before.min())} before turning non-finite")
                evidence.append(Evidence("growth_before_nonfinite", curve.key, {"ratio": before[-1] / before.min()}))
                severity = "failed"
            elif len(before) < 3 and not view.fact("inputs", "train", "nonfinite_share"):
                # (with NaN in the inputs themselves, an early NaN loss says nothing about the lr)
                signs.append("the loss turned non-finite within the first few steps")
                evidence.append(Evidence("early_nonfinite", curve.key, {"first_index": nf.first_index}))
                severity = "failed"
        div = view.divergence(TRAIN_LOSS)
        if div is not None and div.detected:
            signs.append(f"the loss diverged (lost {min(div.regained, 99):.0%} of its progress)")
            evidence.append(Evidence("divergence", curve.key, {"regained_share": div.regained, "growth": div.growth}))
            severity = "failed"
        osc = view.oscillation(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        if osc is not None and lv is not None and lv.noise >= 0.5 * max(abs(lv.end), 1e-12) and lv.noise >= lv.start - lv.end:
            signs.append("the loss swings by more than it ever improved")
            evidence.append(Evidence("erratic_loss", curve.key, {"noise": lv.noise, "level": lv.end}))
        ratios = view.update_ratios()
        recorded_high = False
        if ratios:
            med = float(np.median(list(ratios.values())))
            if med > UPDATE_RATIO_HIGH:
                recorded_high = True
                signs.append(f"each step changed the weights by {med:.0%} of their size (median update/weight "
                             "ratio; healthy is ~0.1%)")
                evidence.append(Evidence("update_ratio", None, {"median": med, "per_layer": ratios}))
        if not signs:
            return None
        curve_signs = len(signs) - int(recorded_high)
        confidence = "high" if recorded_high and curve_signs else ("medium" if curve_signs or recorded_high else "low")
        if curve_signs == 1 and evidence[0].test == "erratic_loss" and not recorded_high:
            confidence = "low"
        return self.finding(
            confidence=confidence,
            severity=severity,
            score=min(1.0, 0.4 + 0.2 * len(signs)),
            summary="; ".join(signs),
            recommendation=f"The learning rate looks too high{_lr_text(view)}: {signs[0]}. Divide it by 10 and "
            "retry (then search upward by 2-3x), add a warm-up for the first few hundred steps, and clip gradients "
            "with `torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)`.",
            evidence=evidence,
        )


class LearningRateTooLow(Rule):
    """Steps too small: the loss keeps falling, significantly, through the whole run and at
    its end, at a steady rate (the last 30% of the run still brings at least 20% of the
    progress), yet by the end it has lost less than 20% of its starting value. Read on the
    validation loss where it has enough points (it is measured on the full validation set,
    so a slow trend is not drowned in minibatch noise), else on the training loss; both
    trend tests are autocorrelation-corrected Mann-Kendall. The recorder adds the direct
    measurement: update/weight ratios far below ~1e-3 (median < 1e-5)."""

    cause = "learning_rate_too_low"

    def evaluate(self, view: RunView) -> Finding | None:
        role = VAL_LOSS if view.finite_curve(VAL_LOSS) is not None else TRAIN_LOSS
        lv = view.levels(role)
        whole = view.trend(role)
        tail = view.trend(role, TAIL_START, 1.0)
        # exact zeros are frozen or dead layers (another cause), not small steps
        ratios = {k: v for k, v in view.update_ratios().items() if v > 0}
        med = float(np.median(list(ratios.values()))) if ratios else None
        recorded_low = med is not None and med < UPDATE_RATIO_LOW
        curve_slow = False
        evidence: list[Evidence] = []
        improvement = None
        if lv is not None and whole is not None and tail is not None and lv.start > 0:
            improvement = (lv.start - lv.end) / abs(lv.start)
            total, tail_drop = view.drop(role, 0.0, 1.0), view.drop(role, TAIL_START, 1.0)
            steady = bool(total and total > 0 and tail_drop / total >= TAIL_SHARE_STEADY)
            curve_slow = (whole.direction < 0 and tail.direction < 0 and steady
                          and 0 < improvement < SLOW_MAX_IMPROVEMENT)
            if curve_slow:
                key = view.curve(role).key
                evidence += [Evidence("slow_decline", key, {"improvement_share": improvement, "start": lv.start,
                                                            "end": lv.end}),
                             trend_evidence("mann_kendall_whole", key, whole),
                             trend_evidence("mann_kendall_tail", key, tail)]
        if recorded_low:
            evidence.append(Evidence("update_ratio", None, {"median": med, "per_layer": ratios}))
        if not (curve_slow or recorded_low):
            return None
        name = "validation" if role == VAL_LOSS else "training"
        if curve_slow:
            seen = (f"the {name} loss fell only {improvement:.0%} over the whole run and was still falling steadily "
                    "at the end")
        else:
            seen = f"each step changed the weights by only {med:.1e} of their size (healthy is ~1e-3)"
        return self.finding(
            p_value=whole.p_value if curve_slow and not recorded_low else None,
            confidence="high" if (curve_slow and recorded_low) else "medium",
            severity="failed" if improvement is not None and improvement < NO_LEARNING else "warning",
            score=0.6 + 0.2 * int(curve_slow) + 0.2 * int(recorded_low),
            summary=seen,
            recommendation=f"The learning rate looks too low{_lr_text(view)}: {seen}. Multiply it by 10 and "
            "compare the first few hundred steps (a learning-rate range test finds the largest rate that still "
            "trains smoothly).",
            evidence=evidence,
        )


#: gradient norm growth (late vs early level) that counts as exploding (AutoTrainer uses 70x)
EXPLODING_GROWTH = 100.0


class ExplodingGradients(Rule):
    """The gradient-norm curve (the recorder's `nnaudit/grad_norm`, or `grad_norm` as the HF
    Trainer logs it) grows by orders of magnitude: its level at the end is at least 100x its
    level at the start with a significant upward trend (autocorrelation-corrected
    Mann-Kendall), or it becomes NaN/Inf."""

    cause = "exploding_gradients"
    explained_by = ("nonfinite_inputs",)

    def evaluate(self, view: RunView) -> Finding | None:
        curve = view.curve(GRAD_NORM)
        if curve is None:
            return None
        nf = view.nonfinite(GRAD_NORM)
        lv = view.levels(GRAD_NORM)
        trend = view.trend(GRAD_NORM)
        growth = lv.end / lv.start if lv is not None and lv.start > 0 else None
        grew = growth is not None and growth >= EXPLODING_GROWTH and trend is not None and trend.direction > 0
        nonfinite = nf is not None and nf.first_index is not None
        if not (grew or nonfinite):
            return None
        seen = (f"the gradient norm grew {fmt_factor(growth)} ({fmt_num(lv.start)} -> {fmt_num(lv.end)})" if grew
                else f"the gradient norm became {nf.kind.upper() if nf.kind == 'nan' else 'Inf'}")
        return self.finding(
            confidence="high",
            severity="failed",
            score=0.9,
            summary=seen,
            recommendation=f"Gradients explode ({seen}): clip them (`torch.nn.utils.clip_grad_norm_(model.parameters(), "
            "1.0)`), lower the learning rate, and check the initialisation and normalisation of deep stacks.",
            evidence=[Evidence("grad_norm_growth", curve.key, {"growth": growth, "nonfinite": nonfinite})],
        )
