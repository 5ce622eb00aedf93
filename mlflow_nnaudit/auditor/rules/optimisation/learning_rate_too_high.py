"""`learning_rate_too_high`: steps too large for the loss surface."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_factor
from mlflow_nnaudit.auditor.rules.helpers import (
    LEARNING_RATE_READS,
    UPDATE_RATIO_HIGH,
    UPDATE_RATIO_READS,
    finite_before,
    growth_before_nonfinite,
    lr_text,
)


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
    reads = (("inputs", "train", "nonfinite_share"), *UPDATE_RATIO_READS, *LEARNING_RATE_READS)

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
        ratios = view.update_ratios()
        recorded_high = False
        if ratios:
            med = float(np.median(list(ratios.values())))
            if med > self.RATIO_HIGH:
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
            recommendation=f"The learning rate looks too high{lr_text(view)}: {signs[0]}. Divide it by 10 and "
            "retry (then search upward by 2-3x), add a warm-up for the first few hundred steps, and clip gradients "
            "with `torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)`.",
            evidence=evidence,
        )
