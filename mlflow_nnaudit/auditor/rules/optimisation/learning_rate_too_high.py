"""`learning_rate_too_high`: steps too large for the loss surface."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_factor, fmt_num, fmt_step
from mlflow_nnaudit.auditor.rules.helpers import (
    BLOWUP_READS,
    LEARNING_RATE_READS,
    PLATEAU_MAX_IMPROVEMENT,
    UPDATE_RATIO_HIGH,
    UPDATE_RATIO_READS,
    finite_before,
    blowup,
    early_update_ratios,
    growth_before_nonfinite,
    lr_text,
    start_level,
    stuck,
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
    rate of 0.1 or more, 100x its usual range) is the same destruction seen after the fact."""

    cause = "learning_rate_too_high"
    explained_by = ("data_not_shuffled", "nonfinite_inputs", "gradients_not_zeroed")
    reads = (("inputs", "train", "nonfinite_share"), *UPDATE_RATIO_READS, *LEARNING_RATE_READS, *BLOWUP_READS)
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
        nf = view.nonfinite(TRAIN_LOSS)
        curve = view.curve(TRAIN_LOSS)
        if nf is not None and nf.first_index is not None and curve is not None:
            before = finite_before(curve, nf.first_index)
            growth = growth_before_nonfinite(before)
            if growth is not None:
                ratio = growth[1] / growth[0]
                signs.append(f"the loss grew {fmt_factor(ratio)} before turning non-finite")
                evidence.append(Evidence("growth_before_nonfinite", curve.key, {"ratio": ratio}))
                severity = "failed"
            elif len(before) < 3 and not view.fact("inputs", "train", "nonfinite_share"):
                # (with NaN in the inputs themselves, an early NaN loss says nothing about the lr)
                signs.append("the loss turned non-finite within the first few steps")
                evidence.append(Evidence("early_nonfinite", curve.key, {"first_index": nf.first_index}))
                severity = "failed"
        b = blowup(view)
        # a NaN with no growth before it is the NaN-input or bad-operation picture, left to the
        # early_nonfinite reading above (which steps aside when the inputs hold NaN)
        grew = b is not None and b.detected and (not b.nonfinite or b.index is None or any(
            np.isfinite(v) and v >= stats.BLOWUP_GROWTH * b.start for v in curve.values[:b.index]))
        blew_up = b is not None and b.detected and not signs and grew
        if blew_up:
            what = "turned non-finite" if b.nonfinite else f"reached {fmt_num(b.peak)} ({fmt_factor(b.growth)} its start)"
            signs.append(f"the loss blew up at step {fmt_step(b.x)}: it started at {fmt_num(b.start)} and {what}")
            evidence.append(Evidence("early_blowup", curve.key, {"step": b.x, "start": b.start, "peak": b.peak,
                                                                 "growth": b.growth, "end": b.end}))
            recovered = (b.end is not None and b.start > 0
                         and (b.start - b.end) / b.start >= PLATEAU_MAX_IMPROVEMENT)
            severity = "warning" if recovered else "failed"
        # per-batch training losses dip below chance by noise alone: the validation loss (on the whole
        # validation set) says as well whether the run learned anything, unless the training loss fell a
        # long way (then a validation loss above chance is overfitting, not a destroyed run)
        lv_train, start = view.levels(TRAIN_LOSS), start_level(view)
        train_learned = (lv_train is not None and start is not None and start > 0
                         and (start - lv_train.end) / start >= PLATEAU_MAX_IMPROVEMENT)
        readings = (stuck(view),) if train_learned else (stuck(view), stuck(view, VAL_LOSS))
        st = next((s for s in readings if s is not None and (s.stuck or s.no_better_than_chance)), None)
        if st is not None:
            at = (f"at chance, ln {st.chance_k} = {fmt_num(st.level)}" if st.chance_k is not None
                  else f"exactly constant at {fmt_num(st.level)}" if st.constant
                  else f"no better than chance (around {fmt_num(st.level)})")
            stuck_sign = f"the loss ended stuck {at}"
        else:
            stuck_sign = None
        div = view.divergence(TRAIN_LOSS)
        if div is not None and div.detected:
            signs.append(f"the loss diverged (lost {min(div.regained, 99):.0%} of its progress)")
            evidence.append(Evidence("divergence", curve.key, {"regained_share": div.regained, "growth": div.growth}))
            severity = "failed"
        osc = view.oscillation(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        if (osc is not None and lv is not None and lv.noise >= self.ERRATIC_NOISE * max(abs(lv.end), 1e-12)
                and lv.noise >= lv.start - lv.end):
            signs.append("the loss swings by more than it ever improved")
            evidence.append(Evidence("erratic_loss", curve.key, {"noise": lv.noise, "level": lv.end}))
        # L-BFGS steps come from its line search and curvature estimate, not from the learning rate
        ratios = {} if view.lbfgs() else view.update_ratios()
        recorded_high = False
        early = {} if view.lbfgs() else early_update_ratios(view)
        early_med = float(np.median(list(early.values()))) if early else 0.0
        if ratios:
            med = float(np.median(list(ratios.values())))
            if med <= self.RATIO_HIGH and early_med > self.RATIO_HIGH and med < early_med * self.RATIO_COLLAPSE:
                # the first steps were far too large, and then the updates collapsed (dead units)
                recorded_high = True
                signs.append(f"the first measured steps changed the weights by {early_med:.0%} of their size "
                             f"(median over layers; healthy is ~0.1%), later ones by {med:.1e}")
                evidence.append(Evidence("early_update_ratio", None, {"first": early_med, "later": med,
                                                                      "per_layer": early}))
            elif med > self.RATIO_HIGH:
                recorded_high = True
                signs.append(f"each step changed the weights by {med:.0%} of their size (median update/weight "
                             "ratio; healthy is ~0.1%)")
                evidence.append(Evidence("update_ratio", None, {"median": med, "per_layer": ratios}))
        lr = view.learning_rate()
        opt = (view.optimizer_name() or "").lower()
        adaptive_high = lr is not None and opt in ADAPTIVE and lr[1] >= self.ADAPTIVE_LR_HIGH
        if stuck_sign and (recorded_high or adaptive_high or blew_up):
            # no learning at all, with steps known to be far too large: the run was destroyed
            signs.append(stuck_sign)
            evidence.append(Evidence("stuck_loss", curve.key if curve else None,
                                     {"level": st.level, "chance_k": st.chance_k, "constant": st.constant}))
            severity = "failed"
            if adaptive_high:
                signs.append(f"{view.optimizer_name()} at a learning rate of {fmt_num(lr[1])} moves every weight by "
                             "about that much on every step")
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
        harm_seen = any(e.test in ("growth_before_nonfinite", "early_nonfinite", "early_blowup", "divergence",
                                   "stuck_loss") for e in evidence)
        return self.finding(
            confidence=confidence,
            severity=severity,
            score=1.0 if blew_up else min(1.0, 0.4 + 0.2 * len(signs)),
            summary="; ".join(signs),
            recommendation=f"The learning rate looks too high{lr_text(view)}: {signs[0]}. Divide it by 10"
            + (f" (to {fmt_num(lr[1] / 10)})" if lr else "") + " and retry (then search upward by 2-3x), add a "
            "warm-up for the first few hundred steps, and clip gradients with "
            "`torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)`.",
            evidence=evidence,
            kind="outcome" if harm_seen else None,
        )
