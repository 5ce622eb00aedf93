"""`learning_rate_too_high`: steps too large for the loss surface."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import (
    BLOWUP_READS,
    INPUT_RMS_HIGH,
    INPUT_SCALE_READS,
    LEARNING_RATE_READS,
    UPDATE_RATIO_HIGH,
    UPDATE_RATIO_READS,
    blowup_reading,
    input_rms,
    lr_text,
    nonfinite_reading,
    recorded_step_size,
    stuck_reading,
)

#: adaptive optimisers whose steps are about the learning rate per weight, whatever the gradient
ADAPTIVE = ("adam", "adamw", "nadam", "radam", "adamax", "rmsprop", "adagrad", "adafactor", "lamb")


class LearningRateTooHigh(Rule):
    """Steps too large for the loss surface. The curves show it as a loss that grows at least
    3x above its lowest value before turning NaN/Inf (or turns non-finite within the first
    few points), as a divergence (see `diverging`), or as point-to-point swings of at least
    half the loss level that exceed everything the run gained. The recorder adds the direct
    measurement: update/weight ratios far above ~1e-3 (median > 1e-1). Curve-only evidence is
    medium confidence at most (a divergence can also come from bad data), swings alone low;
    the recorder's ratios together with a curve sign make it high.

    The most common picture of all is an early blow-up (`stats.detect_blowup`): the loss rises
    at least 10x above where it started (the recorder's first-step loss, or ln C), or past 1e3
    for a classifier, or turns non-finite, within the first 30% of the run. That decides the
    finding with high confidence, and the run failed unless it recovered to well below where it
    started; what it destroyed on the way (dead ReLUs, vanishing gradients, a loss stuck at ln C)
    is listed as its consequence. A loss that sits at chance (ln C) or is exactly constant while
    the steps are far too large (recorded update ratios, or an adaptive optimiser at a learning
    rate of 0.1 or more, 100x its usual range) is the same destruction seen after the fact. With
    inputs 10x unit scale or more (the typical feature's RMS: each first-layer step is then 10-100x
    what it is on standardised inputs) it is listed as a consequence of `inputs_not_normalized`."""

    cause = "learning_rate_too_high"
    explained_by = ("data_not_shuffled", "nonfinite_inputs", "gradients_not_zeroed")
    reads = (("inputs", "train", "nonfinite_share"), *INPUT_SCALE_READS, *UPDATE_RATIO_READS, *LEARNING_RATE_READS)
    reads += BLOWUP_READS
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

    def evaluate(self, view: RunView) -> Finding | None:
        signs: list[str] = []
        evidence: list[Evidence] = []
        severity = "warning"
        curve = view.curve(TRAIN_LOSS)
        early_nan = nonfinite_reading(view)
        if early_nan is not None:
            signs.append(early_nan[0])
            evidence.append(early_nan[1])
            severity = "failed"
        # (after a NaN reading above, the blow-up is that same event)
        blow = None if signs else blowup_reading(view)
        blew_up = blow is not None
        if blow is not None:
            signs.append(blow[0])
            evidence.append(blow[1])
            severity = "warning" if blow[2] else "failed"
        st, stuck_sign = stuck_reading(view)
        div = view.divergence(TRAIN_LOSS)
        if div is not None and div.detected:
            signs.append(f"the loss diverged (lost {min(div.regained, 99):.0%} of its progress)")
            evidence.append(Evidence("divergence", curve.key, {"regained_share": div.regained, "growth": div.growth}))
            severity = "failed"
        osc = view.oscillation(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        if (
            osc is not None
            and lv is not None
            and lv.noise >= self.ERRATIC_NOISE * max(abs(lv.end), 1e-12)
            and lv.noise >= lv.start - lv.end
        ):
            signs.append("the loss swings by more than it ever improved")
            evidence.append(Evidence("erratic_loss", curve.key, {"noise": lv.noise, "level": lv.end}))
        # L-BFGS steps come from its line search and curvature estimate, not from the learning rate
        step = recorded_step_size(view, self.RATIO_HIGH, self.RATIO_COLLAPSE)
        recorded_high = step is not None
        if step is not None:
            signs.append(step[0])
            evidence.append(step[1])
        lr = view.learning_rate()
        opt = (view.optimizer_name() or "").lower()
        adaptive_high = lr is not None and opt in ADAPTIVE and lr[1] >= self.ADAPTIVE_LR_HIGH
        if stuck_sign and (recorded_high or adaptive_high or blew_up):
            # no learning at all, with steps known to be far too large: the run was destroyed
            signs.append(stuck_sign)
            evidence.append(
                Evidence(
                    "stuck_loss",
                    curve.key if curve else None,
                    {"level": st.level, "chance_k": st.chance_k, "constant": st.constant},
                )
            )
            severity = "failed"
            if adaptive_high:
                signs.append(
                    f"{view.optimizer_name()} at a learning rate of {fmt_num(lr[1])} moves every weight by "
                    "about that much on every step"
                )
        if not signs:
            return None
        curve_signs = len(signs) - int(recorded_high)
        confidence = "high" if recorded_high and curve_signs else ("medium" if curve_signs or recorded_high else "low")
        if curve_signs == 1 and evidence[0].test == "erratic_loss" and not recorded_high:
            confidence = "low"
        if blew_up or (stuck_sign in signs and (recorded_high or adaptive_high)):
            confidence = "high"
        # the harm itself was seen in the loss (it exploded, diverged, turned NaN or was destroyed):
        # an outcome, not a set-up risk (the catalog's kind for a finding on update ratios alone)
        harm_seen = any(
            e.test in ("growth_before_nonfinite", "early_nonfinite", "early_blowup", "divergence", "stuck_loss")
            for e in evidence
        )
        return self.finding(
            confidence=confidence,
            severity=severity,
            score=1.0 if blew_up else min(1.0, 0.4 + 0.2 * len(signs)),
            summary="; ".join(signs),
            recommendation=f"The learning rate looks too high{lr_text(view)}: {signs[0]}. Divide it by 10"
            + (f" (to {fmt_num(lr[1] / 10)})" if lr else "")
            + " and retry (then search upward by 2-3x), add a "
            "warm-up for the first few hundred steps, and clip gradients with "
            "`torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)`.",
            evidence=evidence,
            kind="outcome" if harm_seen else None,
            follows=("inputs_not_normalized",) if (input_rms(view) or 0.0) >= INPUT_RMS_HIGH else (),
        )
