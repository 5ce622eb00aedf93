"""`lr_decay_too_fast`: the schedule takes the learning rate away while the loss still falls."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import FLAT_TOLERANCE, Evidence, Finding, Rule, RunView, fmt_num, fmt_step
from mlflow_nnaudit.auditor.rules.helpers import (
    LR_COLLAPSE,
    LR_COLLAPSE_SPAN,
    LR_DECAY_EARLY,
    LR_DECAYED,
    TAIL_START,
    frozen_outcome,
    lr_collapsed,
    lr_decay,
    lr_decay_advice,
    lr_points,
    trend_evidence,
    val_fell_at_drop,
    val_frozen_after,
    val_stalled_before,
)


class LrDecayTooFast(Rule):
    """A logged learning-rate curve falls to 10% of its peak or less within the first half of the run, the training
    loss was still falling significantly just before (Mann-Kendall on the stretch before the drop, autocorrelation-
    corrected), and after the drop it is flat (the equivalence test of `plateau`: its change lies within +/-5% of
    the starting loss) for the rest of the run: progress stopped when the learning rate went, not because the model
    had learned. Where the stretch just before the drop is too short or too noisy to show the fall (a cut after the
    first epoch), the validation loss says it: its last evaluation before the drop fell by more than that +/-5%
    band, more than it moved in all the evaluations after the drop together (the drop placed at the first logged
    rate at a tenth of the peak or less, the evaluations on the rate's steps). There, where the per-step training
    loss is too noisy for the flat test, the validation loss frozen after the drop shows the flat tail instead: all
    its later evaluations (3 or more) within the band of the one at the drop, the training loss without a
    significant fall after it. Failing that, the whole stretch before the drop must have fallen significantly and
    the run must have ended without having learned (the outcome's harm: a classifier at or near chance, a regression
    that explains little): then the flat tail is not a converged model either. On such a run a decay before the last
    30% of the run (the tail window of the learning-rate rules; a cosine or linear schedule over the whole run gets
    there only in it) is too fast as well: the rate was gone before the model learned anything. Needs the learning
    rate as a curve (`lr`, `learning_rate`, `lr-Adam`, `nnaudit/lr`). Never on a training loss whose level after the
    drop lies within the band of zero: that model converged. Not on a schedule that brings the rate back to a
    quarter of its peak or more after the drop (a warm restart, SWA's constant rate, a cyclic schedule): the model
    had a rate to learn with again. A rate gone within the first 10% of the run and never back (a linear schedule
    given the epochs as its total steps) needs no fall before it: 3 loss points there do, with the harm and the flat
    tail (either also a validation loss frozen before it learned, `helpers.frozen_outcome`); the model never had a
    rate to learn with. Not on a run that learned whose last evaluation before the drop set no new best
    (`helpers.val_stalled_before`): a plateau schedule answering a stall, which the drop did not cause. A rate that
    falls 1000x or more in 2+ logged falls within 1% of the run, never to come back (`helpers.lr_collapsed`: a
    scheduler stepped in a loop) needs neither a fall before it nor a stall-free validation loss."""

    cause = "lr_decay_too_fast"

    #: the learning rate counts as decayed when it is this share of its peak or less (shared) ...
    DECAYED = LR_DECAYED
    #: ... and it must get there within this share of the run to be "too fast" (shared) ...
    DECAY_EARLY = LR_DECAY_EARLY
    #: ... or before the tail window on a run that ended without having learned (shared)
    DECAY_BEFORE_TAIL = TAIL_START
    #: loss points needed on each side of the drop for the two tests
    MIN_POINTS_EACH_SIDE = 8
    GONE_AT_ONCE = 0.1  #: gone this early, never back: before anything was learned (sized in epochs, stepped per batch)
    BACK = 0.25  #: a rate back to this share of its peak after the drop is a rate to learn with again

    def _brought_back(self, view: RunView, x_gone: float, peak: float) -> bool:  # to BACK of its peak after
        lr = lr_points(view)
        return lr is not None and bool(np.any(lr.values[lr.steps > x_gone] >= self.BACK * peak))

    def evaluate(self, view: RunView) -> Finding | None:
        loss = view.finite_curve(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        decay = lr_decay(view)
        if decay is None or loss is None or lv is None or lv.start <= 0:
            return None
        peak, x_drop, share = decay.peak, decay.step, decay.share
        if not 0 < share <= self.DECAY_BEFORE_TAIL or self._brought_back(view, decay.logged, peak):
            return None
        lx = loss.steps
        before, after = lx <= x_drop, lx > x_drop
        at_once = decay.stays and share <= self.GONE_AT_ONCE
        if before.sum() < (3 if at_once else self.MIN_POINTS_EACH_SIDE) or after.sum() < self.MIN_POINTS_EACH_SIDE:
            return None
        xb, yb = lx[before], loss.values[before]
        k = len(xb)
        pre = stats.mann_kendall(xb[k // 2 :], yb[k // 2 :])  # the half of the pre-drop stretch nearest the drop
        harm, band = None, FLAT_TOLERANCE * abs(lv.start)
        level = float(np.median(loss.values[after]))
        if level <= band:
            return None  # within the flat band of zero: converged, nothing left to fall that it could see
        collapsed = lr_collapsed(view, decay)  # 1000x within 1% of the run: stepped in a loop, no schedule
        if not (at_once or collapsed) and val_stalled_before(view, decay.logged) and view.outcome_harm() is None:
            return None  # the validation stalled first, the rate followed (a plateau schedule): no harm done
        still = frozen_outcome(view) if at_once else None  # a validation loss frozen before it learned
        late = share > self.DECAY_EARLY  # too fast only for a run that never learned
        val_fell = None if late else val_fell_at_drop(view, decay.logged, band)
        if ((pre.direction >= 0 and val_fell is None) or late) and not collapsed:
            harm = view.outcome_harm() or still
            if harm is None:
                return None  # the loss had stopped falling before the drop: it may have converged
            pre = stats.mann_kendall(xb, yb)
            if pre.direction >= 0 and not at_once:
                return None
        flat = stats.flatness(lx[after], loss.values[after], band)
        frozen = None if flat.is_flat or val_fell is None else val_frozen_after(lx[after], loss.values[after], val_fell)
        if not flat.is_flat and frozen is None and still is None:
            return None
        if pre.direction < 0 and frozen is None:
            val_fell = None  # the training loss showed the fall itself
        ended = f", and the run ended without having learned ({harm.summary})" if harm else ""
        falling = "the loss, falling until then," if pre.direction < 0 else "the loss, before it had learned anything,"
        falling = (
            f"the rate then fell {fmt_num(LR_COLLAPSE)}x in {LR_COLLAPSE_SPAN:.0%} of the run; the loss"
            if collapsed
            else falling
        )
        if val_fell is not None:
            vf = val_fell.values
            falling = (
                f"the validation loss fell {fmt_num(vf['fell'])} in its last evaluation before the rate went (step "
                f"{fmt_step(vf['at_step'])}) and then moved {fmt_num(vf['moved_after'])} at most in all those after"
                f"{' (frozen within ' + fmt_num(vf['band']) + ')' if frozen else ''}; the training loss"
            )
        return self.finding(
            confidence="medium",
            severity="warning",
            score=min(1.0, 1.0 - share),
            p_value=None if val_fell is not None or pre.direction >= 0 else pre.p_value,
            summary=f"the learning rate fell from {fmt_num(peak)} to {fmt_num(self.DECAYED * peak)} or less by step "
            f"{fmt_step(x_drop)} ({share:.0%} into the run); {falling} stayed at {fmt_num(level)} after it{ended}",
            recommendation=f"The learning-rate schedule shrinks the rate 10x by step {fmt_step(x_drop)}, {share:.0%} into "
            + lr_decay_advice(collapsed, pre.direction < 0, level),
            evidence=[
                Evidence("lr_drop", decay.key, {"peak": peak, "drop_step": x_drop, "share_of_run": share}),
                val_fell
                or trend_evidence(
                    "mann_kendall_before_drop" if harm is None else "mann_kendall_all_before_drop", loss.key, pre
                ),
                frozen
                or Evidence(
                    "flat_after_drop",
                    loss.key,
                    {"change_ci90": [flat.change_low, flat.change_high], "tolerance": flat.tolerance, "level": level},
                    (x_drop, float(lx[-1])),
                ),
            ],
        )
