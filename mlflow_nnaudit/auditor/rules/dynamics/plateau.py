"""`plateau`: the loss goes flat early, well above a good loss."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, RunView, fmt_num, fmt_step
from mlflow_nnaudit.auditor.rules.helpers import BLOWUP_READS, NO_LEARNING, PLATEAU_MAX_IMPROVEMENT, start_level, stuck


class Plateau(helpers.PlateauReadings):
    """Training (and validation, where logged) loss goes flat early, well above a good loss: flat
    from some point in the first half on (the 90% interval of the Theil-Sen change over the rest
    lies within +/-5% of the start), after losing less than 30% of its start, across 3+ validation
    evaluations where 2+ are logged (Lightning's early-stopping patience: a 2-epoch run has barely begun).
    A tail still falling significantly is slow, not stuck, only if at its rate one more run as long
    gains 5% of the start; so is a validation loss lower at every evaluation through the stretch (3+
    falls in a row) at such a rate (`helpers.val_falling_since`): a minibatch-noisy training loss can
    look flat while the full-set validation loss still falls. A converged run also ends flat, after a large drop. Progress is measured from
    before an early blow-up (`stats.detect_blowup`), not from its peak. A loss stuck exactly (a
    constant tail, or a tail at ln C: `stats.stuck_loss`), or a validation loss at or no better
    than chance over 5+ evaluations with the training loss not below chance either (and not still
    falling: `helpers.val_at_chance`), is no learning at all: failed, and a bug or a run destroyed
    early, not a slow optimiser. So is a regression's validation MSE no better than predicting the
    targets' mean (their variance, within 5%) over 5+ evaluations, the training loss not below it
    either (`helpers.val_at_mean`; medium confidence: the variance is estimated), however noisy the
    per-step training loss; without the recorder, a validation R² the run logged that never got above 0.05
    (`helpers.val_r2_at_mean`). Without a known class count, C is the k whose ln k (k = 2..10,
    within 0.5%) a loss curve starts at (`helpers.guessed_classes`; medium confidence). Listed
    after the cause found upstream. Else the curve-only readings of `helpers.no_learning_reading`."""

    cause = "plateau"
    reads = (*BLOWUP_READS, *helpers.MEAN_READS, *helpers.LINEAR_STACK_READS)
    #: upstream causes it follows from, when found too (listed after them). Not insufficient_capacity:
    #: from the curves alone that is a guess, and a guess must not outrank the symptom (issue 11); only
    #: a model the recorder saw is one linear map (`PlateauReadings`)
    consequence_of = (
        *("loss_input_mismatch", "frozen_parameters", "final_layer_activation", "learning_rate_too_high"),
        *("bad_weight_init", "dead_relu", "saturated_activations", "vanishing_gradients", "network_too_deep"),
        *("too_much_regularization", "lr_decay_too_fast", "learning_rate_too_low", "labels_unrelated"),
        *("repeated_batch", "data_not_shuffled", "gradients_not_zeroed", "batch_size_too_large", "missing_bias"),
        "targets_not_normalized",  # a regression stalled with targets far from unit scale: the scale first
    )

    #: the flat stretch must start within this share of the run ("early")
    FLAT_FROM_BY = 0.5
    #: less progress than this before the stall is "well above a good loss" (shared: "stuck")
    MAX_IMPROVEMENT = PLATEAU_MAX_IMPROVEMENT
    #: less progress than this is no learning at all: a failed run, medium confidence (shared)
    NO_LEARNING = NO_LEARNING
    #: a tail falling this share of the start (or more) per run length is slow, not stuck (NO_LEARNING)
    STILL_FALLING = NO_LEARNING
    #: a validation loss exactly constant over this many evaluations means the weights never changed
    FROZEN_VAL_POINTS = 5
    #: validation evaluations a stall must span (Lightning's EarlyStopping default patience)
    PATIENCE = 3

    def stalled(self, view: RunView) -> Finding | None:
        vsk, va = stuck(view, VAL_LOSS), view.finite_curve(VAL_LOSS, min_points=self.FROZEN_VAL_POINTS)
        if vsk is not None and vsk.constant and va is not None and not helpers.learned_before_frozen(view, va):
            # the validation loss never moved at all over many evaluations: the weights never changed, whatever
            # the training curve does (an optimiser handed the data instead of the weights)
            return self._stuck_finding(view, vsk, VAL_LOSS, None)
        vch = helpers.val_at_chance(view, self.FROZEN_VAL_POINTS) or helpers.val_at_mean(view, self.FROZEN_VAL_POINTS)
        if vch is not None:  # nothing learned: not even the training loss got below chance (or the mean)
            return self._stuck_finding(view, vch, VAL_LOSS, None)
        st, lv = view.stall(TRAIN_LOSS), view.levels(TRAIN_LOSS)
        flat_from = st.start_fraction if st is not None else None
        if flat_from is None or flat_from > self.FLAT_FROM_BY or lv is None or lv.start <= 0:
            return None
        start = start_level(view) or lv.start
        improvement = (start - st.level) / abs(start)
        if improvement >= self.MAX_IMPROVEMENT:
            return None
        va = view.curve(VAL_LOSS)  # evaluations spread over the run, the k-th of n at k/n of it (one per epoch)
        n_val = int(va.finite.sum()) if va is not None else 0
        # one evaluation (at the end) says nothing of how often the run is evaluated: the training stall decides
        if n_val >= 2 and sum((k + 1) / n_val >= flat_from for k in range(n_val)) < self.PATIENCE:
            return None  # flat over fewer evaluations than any early stopping waits: too short to call
        vst = view.stall(VAL_LOSS)
        if view.finite_curve(VAL_LOSS) is not None and (vst is None or vst.start_fraction is None):
            return None  # validation still moving: not a plateau of both
        if helpers.val_falling_since(view, flat_from, start, self.PATIENCE, self.STILL_FALLING):
            return None  # lower at every evaluation since, by a margin that matters: a stall must be a stall
        sk = stuck(view)
        if sk is not None and sk.chance_k is not None:
            # sitting at chance (ln C) is no learning beyond a uniform guess, even after a drop from a worse
            # start and whatever drift within the band remains (the band is the effect size)
            return self._stuck_finding(view, sk, TRAIN_LOSS, start)
        tail = view.trend(TRAIN_LOSS, st.start_fraction, 1.0)
        curve = view.curve(TRAIN_LOSS)
        if tail is not None and tail.direction < 0:
            # still significantly falling: slow, not stuck, if the fall matters (a p-value is no effect size):
            # at its Theil-Sen rate, one more run as long must gain STILL_FALLING of the start
            if -tail.slope * float(np.ptp(curve.x()[curve.finite])) >= self.STILL_FALLING * abs(start):
                return None
        no_learning = improvement < self.NO_LEARNING
        # a constant away from chance counts only when the loss never improved on its start
        if sk is not None and sk.constant and no_learning:
            return self._stuck_finding(view, sk, TRAIN_LOSS, start)
        return self.finding(
            confidence="medium" if no_learning else "low",
            severity="failed" if no_learning else "warning",
            score=1.0 - improvement,
            summary=f"the training loss has been flat at {fmt_num(st.level)} since step {fmt_step(st.start_x)} "
            f"({improvement:.0%} below where it started)",
            recommendation=f"Learning stopped at step {fmt_step(st.start_x)} with the loss at {fmt_num(st.level)}, "
            f"only {improvement:.0%} below its start: check that inputs are normalised and labels match inputs, "
            "try a learning rate 10x higher and 10x lower, and check the initialisation and the output layer.",
            evidence=[
                Evidence(
                    "stall",
                    curve.key,
                    {"flat_from_share": st.start_fraction, "level": st.level, "start": start}
                    | {"improvement_share": improvement},
                    (st.start_x, float(curve.x()[-1])),
                )
            ],
        )

    def _stuck_finding(self, view: RunView, sk, role: str, start: float | None) -> Finding:
        """No learning at all: a loss stuck exactly (constant, or at ln C)."""
        at = helpers.stuck_words(view, sk)
        name = "validation" if role == VAL_LOSS else "training"
        return self.finding(
            # a class count guessed from where the curves started is a reading, not a fact: one step less sure
            confidence="high" if sk.constant or sk.known_classes else "medium",
            severity="failed",
            kind="outcome",
            score=1.0,
            summary=f"the {name} loss is stuck {at}: the model learned nothing at all",
            recommendation=f"The {name} loss is stuck {at}: the model learned nothing at all, which is a bug or a "
            f"run destroyed early, not a slow optimiser. {helpers.stuck_checks(sk)}",
            evidence=[
                Evidence(
                    "stuck_loss",
                    view.curve(role).key,
                    {"level": sk.level, "chance_k": sk.chance_k, "constant": sk.constant, "spread": sk.spread}
                    | {"start": start, "targets_variance": sk.variance}
                    | ({"val_r2": sk.r2} if sk.r2 is not None else {}),
                )
            ],
        )
