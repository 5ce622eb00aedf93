"""`oscillating_loss`: the loss swings up and down without settling."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import LEARNING_RATE_READS


class OscillatingLoss(Rule):
    """The loss swings up and down without settling. Two ways to see it in the second half
    of the training curve: a periodic swing whose spectral peak stands far above a red-noise
    (AR(1), phi >= 0) baseline (Bonferroni-corrected p < 0.01) with an amplitude of at least
    10% of the loss level; or swings so large (point-to-point noise at least half the loss
    level) that they exceed everything the run gained (or the run shows no trend at all). A periodic swing must also climb back up
    (block medians a quarter-period long rising at least half its amplitude above the lowest
    before them): a learning-rate staircase (StepLR, logged every few batches) only steps down.
    The level swings are measured against is at least 5% of where the loss started: a loss fitted to
    near zero (99% of its start gone) makes any wiggle large against its own level, and swings of a
    few thousandths of the start are harmless (seen on CNNs solved to a loss of 1e-4, accuracy 100%,
    and on a regression fitted in a fixed batch order, whose per-step loss repeats its batches'
    difficulties at 0.2% of the start): with the 10% amplitude line, a swing must reach 0.5% of the start.
    A periodic swing under 10% of what the run gained and under 25% of the loss level (or of 10% of the
    start, for a loss fitted near 0) is a ripple on a run that learned: a set-up risk, an advisory unless
    something else harmed the run."""

    cause = "oscillating_loss"
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("learning_rate_too_high", "data_not_shuffled", "batchnorm_small_batch", "gradients_not_zeroed")
    reads = LEARNING_RATE_READS

    #: a periodic swing smaller than this share of the loss level is noise, not oscillation
    MIN_AMPLITUDE = 0.10
    #: point-to-point noise of at least this share of the level (and more than all progress) is erratic
    ERRATIC_NOISE = 0.5

    #: the level swings are compared to is at least this share of the starting loss (see the docstring)
    FITTED_SHARE = 0.05

    #: a periodic swing under MIN_AMPLITUDE of what the run gained and under this share of its level is a ripple
    RIPPLE = 0.25
    #: a swing must climb back up by at least this share of its amplitude (see `climbs_back`)
    MIN_RISE = 0.5

    def climbs_back(self, view: RunView, osc) -> bool:
        """Whether the loss climbs back up at the swing's scale: medians of blocks a quarter of the
        period long rise at least MIN_RISE x the amplitude above the lowest block before them. A
        staircase (a StepLR schedule, an epoch-wise fall logged every few batches) has a strong
        spectral peak at its step period but only ever steps down: not an oscillation."""
        c = view.finite_curve(TRAIN_LOSS, min_points=16)
        if c is None or not osc.period:
            return True
        y = c.values[len(c.values) // 2 :]
        size = max(2, int(round(osc.period / 4)))
        blocks = [float(np.median(y[i : i + size])) for i in range(0, len(y) - size + 1, size)]
        if len(blocks) < 3:
            return True
        rise = max(b - min(blocks[:i]) for i, b in enumerate(blocks) if i > 0)
        return rise >= self.MIN_RISE * osc.amplitude

    def evaluate(self, view: RunView) -> Finding | None:
        osc = view.oscillation(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        if osc is None or lv is None:
            return None
        level = max(abs(lv.end), self.FITTED_SHARE * abs(lv.start), 1e-12)
        periodic = osc.detected and osc.amplitude >= self.MIN_AMPLITUDE * level and self.climbs_back(view, osc)
        gained = lv.start - lv.end
        # the swings exceed what the run gained: by its robust levels, or it gained nothing measurable
        # (no Mann-Kendall trend over the whole run; a few end points of a wild curve are noise themselves)
        whole = view.trend(TRAIN_LOSS)
        went_nowhere = whole is not None and whole.direction == 0
        erratic = lv.noise >= self.ERRATIC_NOISE * level and (lv.noise >= gained or went_nowhere)
        if not (periodic or erratic):
            return None
        curve = view.curve(TRAIN_LOSS)
        what = (
            f"a periodic swing of +/-{fmt_num(osc.amplitude)} every ~{osc.period:.0f} points"
            if periodic
            else f"point-to-point swings of {fmt_num(lv.noise)} around a level of {fmt_num(lv.end)}"
        )
        lr = view.learning_rate()
        lr_text = f" (now {fmt_num(lr[1])})" if lr else ""
        # a small periodic ripple on a run that learned: a set-up risk (advisory unless something harmed the
        # run), not harm in itself (a healthy LoRA fine-tune's epoch-long ripple, 10% of its level)
        # under a quarter of the level, or of 10% of the start for a loss fitted near 0
        small = self.RIPPLE * max(level, self.MIN_AMPLITUDE * abs(lv.start))
        ripple = periodic and not erratic and osc.amplitude < min(self.MIN_AMPLITUDE * gained, small)
        return self.finding(
            kind="risk" if ripple else None,
            p_value=osc.p_value if periodic else None,
            confidence="medium" if periodic and erratic else "low",
            severity="warning",
            score=min(1.0, lv.noise / level) if erratic else min(1.0, osc.amplitude / level),
            summary=f"the training loss oscillates: {what}",
            recommendation=f"The loss oscillates ({what}): lower the learning rate{lr_text} 2-5x or use a decaying "
            "schedule, increase the batch size, and make sure the data is shuffled every epoch.",
            evidence=[
                Evidence(
                    "oscillation_vs_red_noise",
                    curve.key,
                    {
                        "period_points": osc.period,
                        "power_ratio": osc.power_ratio,
                        "p_value": osc.p_value,
                        "amplitude": osc.amplitude,
                        "ar1_phi": osc.phi,
                    },
                ),
                Evidence("noise_vs_level", curve.key, {"noise": lv.noise, "level": lv.end, "gained": gained}),
            ],
        )
