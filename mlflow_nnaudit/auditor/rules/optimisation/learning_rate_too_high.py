"""`learning_rate_too_high`: steps too large for the loss surface."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import (
    BLOWUP_READS,
    DEAD_RELU_READS,
    INPUT_RMS_HIGH,
    INPUT_SCALE_READS,
    LEARNING_RATE_READS,
    UPDATE_RATIO_HIGH,
    UPDATE_RATIO_READS,
)


class LearningRateTooHigh(Rule):
    """Steps too large for the loss surface. The curves show it as a loss that grows at least 3x above its lowest value before
    turning NaN/Inf (or turns non-finite within the first few points), as a divergence (see `diverging`), or as
    point-to-point swings of at least half the loss level that exceed everything the run gained. The recorder adds the
    direct measurement: update/weight ratios far above ~1e-3 (median > 1e-1). Curve-only evidence is medium confidence
    at most (a divergence can also come from bad data), swings alone low; the recorder's ratios together with a curve
    sign make it high.

    The most common picture of all is an early blow-up (`stats.detect_blowup`): the loss rises at least 10x above where
    it started (the recorder's first-step loss, or ln C), or past 1e3 for a classifier, or turns non-finite, within the
    first 30% of the run. That decides the finding with high confidence, and the run failed unless it recovered to well
    below where it started; what it destroyed on the way (dead ReLUs, vanishing gradients, a loss stuck at ln C) is
    listed as its consequence. A loss that sits at chance (ln C) or is exactly constant while the steps are far too
    large (recorded update ratios, or an adaptive optimiser at a learning rate of 0.1 or more, 100x its usual range) is
    the same destruction seen after the fact; at 10x the top of its usual range (`helpers.large_steps`) a suspect
    (medium), after a bug found beside it; none if the model fits its training labels (`helpers.fits_training_only`:
    its steps work, the labels carry no signal). A logged rate still rising at the end, tenfold over the run to 10x
    that range or more, is a sign too. With a feature 10x unit scale or more (the largest's RMS: one raw feature, a
    timestamp, dominates every first-layer sum; steps 10-100x) it follows `inputs_not_normalized`, with targets that
    far off `targets_not_normalized`; with a penalty added by hand outweighing the loss (`helpers.penalty_share`),
    `too_much_regularization`.

    Smaller jumps say it with what followed them: a loss that rose to 3x its first-step level early (a blow-up too
    small for 10x; noise and warm-up bumps stay within 2-3x) and then sat stuck, or a ReLU layer half dead, next to
    steps known to be too large (first recorded steps 10x the usual, then 1000x smaller, count), is a destroyed network
    too (high confidence when stuck). And steps 10x their usual size (an adaptive optimiser at 1e-2 or more; for SGD a
    recorded median update ratio >= 1e-2) with the validation loss best in the first 30% of the run, then rising 10% or
    more above it, or ending back at chance after getting well below it (an outcome: the run undid its learning), is a
    rate that raced past the model's best point (2% under chance at least, `helpers.learned_something`; high: steps and
    harm seen); then `dataset_too_small`, unless known small. SGD's first steps 100x the usual, then a third of the run
    at chance: high too (`helpers.late_start_reading`)."""

    cause = "learning_rate_too_high"
    explained_by = ("data_not_shuffled", "nonfinite_inputs", "gradients_not_zeroed")
    reads = (("inputs", "train", "nonfinite_share"), *INPUT_SCALE_READS, *UPDATE_RATIO_READS, *LEARNING_RATE_READS)
    reads += (*BLOWUP_READS, *DEAD_RELU_READS, *helpers.PENALTY_READS, ("loss", "targets"))
    #: an adaptive optimiser (Adam, RMSprop, ...) at this learning rate or more takes steps of about
    #: this size on every weight: 100x above its usual 1e-4..1e-3 (a sign, never decisive alone)
    ADAPTIVE_LR_HIGH = 0.1
    #: first steps above RATIO_HIGH count only when the later updates then collapsed by this factor
    #: (units destroyed: 0.23 then ~1e-11 on the tune split's SGD+momentum at lr 1; a healthy
    #: AdamW CNN at lr 0.01 goes 0.14 -> 0.04, fast early steps that settle, not a collapse)
    RATIO_COLLAPSE = 1e-3
    #: median update/weight ratio above this is steps far too large (shared with update_ratio_abnormal)
    RATIO_HIGH = UPDATE_RATIO_HIGH
    #: point-to-point noise of at least this share of the loss level (and more than all progress) is erratic
    ERRATIC_NOISE = 0.5
    #: a layer with this share of its ReLU units dead (dead_relu's threshold) was destroyed
    DEAD_SHARE = 0.5

    def evaluate(self, view: RunView) -> Finding | None:
        signs: list[str] = []
        evidence: list[Evidence] = []

        def add(sign: str, ev: Evidence, *_) -> None:
            signs.append(sign)
            evidence.append(ev)

        severity = "warning"
        curve = view.curve(TRAIN_LOSS)
        early_nan = helpers.nonfinite_reading(view)
        if early_nan is not None:
            add(*early_nan)
            severity = "failed"
        # (after a NaN reading above, the blow-up is that same event)
        blow = None if signs else helpers.blowup_reading(view)
        blew_up = blow is not None
        if blow is not None:
            add(*blow)
            severity = "warning" if blow[2] else "failed"
        div = view.divergence(TRAIN_LOSS)
        if div is not None and div.detected:
            values = {"regained_share": div.regained, "growth": div.growth}
            add(
                f"the loss diverged (lost {min(div.regained, 99):.0%} of its progress)",
                Evidence("divergence", curve.key, values),
            )
            severity = "failed"
        if (erratic := helpers.erratic_reading(view, self.ERRATIC_NOISE)) is not None:
            add(*erratic)
        # L-BFGS steps come from its line search and curvature estimate, not from the learning rate
        wreck, stuck = helpers.destroyed_signs(view, self.DEAD_SHARE)
        step = helpers.recorded_step_size(view, self.RATIO_HIGH, self.RATIO_COLLAPSE, destroyed=bool(wreck))
        if recorded_high := step is not None:
            add(*step)
        if (rising := helpers.rising_rate(view)) is not None:  # a schedule that keeps raising the rate
            add(*rising)
        lr = view.learning_rate()
        adaptive_high = (helpers.adaptive_lr(view) or 0.0) >= self.ADAPTIVE_LR_HIGH
        spike = None if blew_up else helpers.early_spike(view)
        large = None if recorded_high else helpers.large_steps(view)
        # an adaptive optimiser's rate 10x its usual top is set before the run (SGD's update ratio is not:
        # a loss that never falls keeps its gradients, and so its steps, large): with no learning, the suspect
        only_rate = bool(stuck and large and helpers.adaptive_lr(view)) and not helpers.fits_training_only(view)
        only_rate = only_rate and not (recorded_high or adaptive_high or blew_up or spike)
        if wreck and (recorded_high or adaptive_high or blew_up or spike or only_rate):
            # no learning at all, or the units killed, with steps known to be far too large: destroyed
            for reading in ([spike] if spike else []) + wreck:
                add(*reading)
            severity = "failed" if stuck else severity
            if adaptive_high or only_rate:
                signs.append(large if only_rate else f"{view.optimizer_name()} at a learning rate of {fmt_num(lr[1])}")
                signs[-1] += " moves every weight by about that much on every step"
        raced = helpers.raced_reading(view, large)
        if raced:  # steps 10x the usual, and the validation loss best early then worse, or back at chance
            add(*raced)
        if late := helpers.late_start_reading(view):  # first steps 100x the usual, then a third of the run at chance
            add(*late)
        if not signs:
            return None
        curve_signs = len(signs) - int(recorded_high)
        confidence = "high" if recorded_high and curve_signs else ("medium" if curve_signs or recorded_high else "low")
        if curve_signs == 1 and evidence[0].test == "erratic_loss" and not recorded_high:
            confidence = "low"
        if blew_up or raced or late or (stuck and wreck[0][0] in signs and not only_rate):
            confidence = "high"  # (a usual-looking rate 10x its top and no learning: medium, a suspect)
        harm_seen = any(e.test in helpers.LR_HARM_TESTS for e in evidence)  # an outcome, not a set-up risk
        return self.finding(
            confidence=confidence,
            severity=severity,
            score=1.0 if blew_up or raced else min(1.0, 0.4 + 0.2 * len(signs)),
            summary="; ".join(signs),
            recommendation=f"The learning rate looks too high{helpers.lr_text(view)}: {signs[0]}. Divide it by 10"
            + (f" (to {fmt_num(lr[1] / 10)})" if lr else "")
            + " and retry (then search upward by 2-3x), add a "
            "warm-up for the first few hundred steps, and clip gradients with "
            "`torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)`.",
            evidence=evidence,
            kind="outcome" if harm_seen else None,
            follows=helpers.lr_high_follows(view, INPUT_RMS_HIGH, only_rate),
        )
