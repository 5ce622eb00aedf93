"""`learning_rate_too_low`: steps too small, a slow steady decline that never gets far."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class LearningRateTooLow(Rule):
    """Steps too small: the loss keeps falling, significantly, through the whole run and at
    its end, at a steady rate (the last 30% of the run still brings at least 20% of the
    progress), yet by the end it has lost less than 20% of its starting value. Read on the
    validation loss where it has enough points (it is measured on the full validation set,
    so a slow trend is not drowned in minibatch noise), else on the training loss; both
    trend tests are autocorrelation-corrected Mann-Kendall. The recorder adds the direct
    measurement: update/weight ratios far below ~1e-3 (median < 1e-5), both over the second
    half of the run and on the first measured step: a rate too small makes small steps from the
    first one, while steps of a healthy size that shrank later are the loss reaching its minimum
    (the gradient vanishes) or a schedule decaying the rate, not a small rate. A run that ended
    without having learned (the outcome's harm) with steps 10x under the usual (`small_steps`)
    is one too, whatever shape its noisy curves took. The curves are not read for it when a logged
    rate fell to a tenth of its peak before the last 30% of the run (their slowness is the schedule's,
    `lr_decay_too_fast`), or when the training loss had fallen 20% of its start, and 80% of its whole fall, by
    the first evaluation (`helpers.learned_before_validated`; a creep after that must be a steady one).

    Never on a run whose loss blew up early (`stats.detect_blowup`): tiny updates after an
    explosion are dead units, not a small learning rate, and a finding of `learning_rate_too_high`
    on the run contradicts this one (the verdict drops it), as does `frozen_parameters`: tensors
    that receive no gradient stay where they are at any learning rate (a model of zero weight
    matrices whose only learning tensor is its output bias creeps monotonically towards the label
    prior: not small steps). A validation loss lower at every one of >= 6 evaluations is a creep
    (a stuck model's is not), too slow under 5%, or under 20% steadily or still falling through its last
    half at plateau's "not stuck" rate (`helpers.monotone_creep`), ending near chance; a warning
    (it learns), which the outcome fails where the validation loss stayed at chance. A warm-up that
    outlasted the run is one too (`helpers.warmup_unfinished`), and a rate of 0 (`failed`), each with its fix."""

    cause = "learning_rate_too_low"
    consequence_of = ("too_much_regularization",)  # strong regularisation slows any rate's loss
    reads = (*helpers.UPDATE_RATIO_READS, *helpers.LEARNING_RATE_READS, *helpers.BLOWUP_READS, *helpers.ZERO_RATE_READS)
    #: a finding of these says the opposite: this one is dropped (dead units make tiny updates whatever the
    #: rate, and parameters that get no gradient do not move at any rate: not a sign of small steps)
    contradicted_by = (
        *("learning_rate_too_high", "nonfinite_loss", "diverging"),
        *("exploding_gradients", "dead_relu", "frozen_parameters"),
    )
    #: a creep: every one of at least this many evaluations lower than the one before (noise alone
    #: does that with probability 2^-(n-1): 1/32 for 6), while the loss gained less than NO_LEARNING...
    CREEP_POINTS = 6
    #: median update/weight ratio below this is steps far too small (shared with update_ratio_abnormal)
    RATIO_LOW = helpers.UPDATE_RATIO_LOW
    #: a run still falling steadily that gained less than this share of its starting loss is too slow
    SLOW_MAX_IMPROVEMENT = 0.2
    #: ... and whose last 30% still brought this share of the progress (a steady, undecelerated decline;
    #: a linear one gives 30%, a healthy decelerating curve a few percent)
    TAIL_SHARE_STEADY = 0.2
    #: the tail window (shared)
    TAIL_START = helpers.TAIL_START
    #: less progress than this is no learning at all: a failed run (shared)
    NO_LEARNING = helpers.NO_LEARNING

    def evaluate(self, view: RunView) -> Finding | None:
        if helpers.exploded(view):
            return None
        zero = helpers.learning_rate_zero(view)  # a rate of 0: a definite bug, nothing moves
        read = zero or helpers.warmup_unfinished(view)  # or a warm-up longer than the run: never delivered
        if read is not None:
            (said, fix, ev), (conf, sev) = read, (("high", "failed") if zero else ("medium", "warning"))
            return self.finding(
                confidence=conf, severity=sev, score=0.8, summary=said, recommendation=fix, evidence=[ev]
            )
        role = VAL_LOSS if view.finite_curve(VAL_LOSS) is not None else TRAIN_LOSS
        lv = view.levels(role)
        whole = view.trend(role)
        # not widened to 5 points (`helpers.tail_trend`): 10 evaluations falling steadily far below chance
        # (a fine-tune near its optimum) are no small rate; `monotone_creep` reads short runs near chance
        tail = view.trend(role, self.TAIL_START, 1.0)
        # exact zeros are frozen or dead layers (another cause), not small steps
        ratios = {k: v for k, v in view.update_ratios().items() if v > 0}
        med = float(np.median(list(ratios.values()))) if ratios else None
        early = [v for v in helpers.early_update_ratios(view).values() if v > 0]
        early_med = float(np.median(early)) if early else None
        # tiny updates after far too large first steps are a destroyed network, not small steps;
        # after steps of a healthy size they are a converged loss or a decayed rate: the first
        # measured step must be small as well
        recorded_low = med is not None and med < self.RATIO_LOW and early_med is not None and early_med < self.RATIO_LOW
        curve_slow = False
        evidence: list[Evidence] = []
        improvement = None
        decay, harm = helpers.lr_decay(view), view.outcome_harm()
        # the curves show the set rate: not decayed to a tenth before the tail, the validation not begun after the fall
        creep_shown, before = decay is None or decay.share > self.TAIL_START, helpers.learned_before_validated(view)
        set_rate_shown = creep_shown and not before  # a creep after the fall is still read, if steady
        if set_rate_shown and lv is not None and whole is not None and tail is not None and lv.start > 0:
            improvement = (lv.start - lv.end) / abs(lv.start)
            share = helpers.tail_share(view, role)
            steady = share is not None and share >= self.TAIL_SHARE_STEADY
            curve_slow = (
                whole.direction < 0 and tail.direction < 0 and steady and 0 < improvement < self.SLOW_MAX_IMPROVEMENT
            )
            if curve_slow:
                key = view.curve(role).key
                evidence += [
                    Evidence("slow_decline", key, {"improvement_share": improvement, "start": lv.start, "end": lv.end}),
                    helpers.trend_evidence("mann_kendall_whole", key, whole),
                    helpers.trend_evidence("mann_kendall_tail", key, tail),
                ]
        if recorded_low:
            evidence.append(Evidence("update_ratio", None, {"median": med, "first": early_med, "per_layer": ratios}))
        creep = False
        if creep_shown and not curve_slow:  # a few evaluations are enough (`levels`, trends want more)
            shares = (self.TAIL_SHARE_STEADY, self.NO_LEARNING, self.SLOW_MAX_IMPROVEMENT)
            crept = helpers.monotone_creep(view, self.CREEP_POINTS, *shares, need_steady=before)
            if crept is not None:
                creep, improvement = True, crept[0]
                evidence.append(crept[1])
        small = helpers.small_steps(view) if harm is not None and not recorded_low else None
        if not (curve_slow or recorded_low or creep or small):
            return None
        if small:  # steps 10x under the usual, and the run learned (next to) nothing: no test of a shape needed
            evidence.append(Evidence("small_steps", None, {"median_ratio": med, "first_ratio": early_med}))
        slow_by_trend = curve_slow
        curve_slow = curve_slow or creep
        name = "validation" if role == VAL_LOSS or creep else "training"
        if curve_slow:
            seen = f"the {name} loss fell only {improvement:.0%} over the whole run and was still falling steadily at the end"
        elif small:
            seen = f"{small}, and the run ended without having learned ({harm.summary})"
        else:
            seen = f"each step changed the weights by only {med:.1e} of their size (healthy is ~1e-3)"
        return self.finding(
            p_value=whole.p_value if slow_by_trend and not (recorded_low or small) else None,
            confidence="high" if (curve_slow and recorded_low) else "medium",
            # a creep is learning, however slowly: the outcome says whether the run failed (at chance it did)
            severity="failed"
            if improvement is not None and improvement < self.NO_LEARNING and not creep
            else "warning",
            score=0.6 + 0.2 * int(curve_slow) + 0.2 * int(recorded_low),
            summary=seen,
            recommendation=f"The learning rate looks too low{helpers.lr_text(view)}: {seen}. Multiply it by 10 and "
            "compare the first few hundred steps (a learning-rate range test finds the largest rate that still "
            "trains smoothly).",
            evidence=evidence,
        )
