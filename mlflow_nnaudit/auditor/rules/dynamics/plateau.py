"""`plateau`: the loss goes flat early, well above a good loss."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num, fmt_step
from mlflow_nnaudit.auditor.rules.helpers import NO_LEARNING, PLATEAU_MAX_IMPROVEMENT


class Plateau(Rule):
    """Training (and validation, where logged) loss goes flat early, well above a good loss:
    the curve is flat from some point in the first half on (an equivalence test: the 90%
    interval of the Theil-Sen change over the rest of the run lies within +/-5% of the
    starting loss, and no significant downward trend remains there), and the loss lost less
    than 30% of its starting value before that. A converged run also ends flat, but after a
    large drop, so it is not a plateau."""

    cause = "plateau"
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("loss_input_mismatch", "frozen_parameters", "final_layer_activation", "learning_rate_too_high",
                      "bad_weight_init", "dead_relu", "saturated_activations", "network_too_deep",
                      "too_much_regularization", "lr_decay_too_fast", "learning_rate_too_low", "labels_unrelated",
                      "repeated_batch", "data_not_shuffled", "insufficient_capacity")

    #: the flat stretch must start within this share of the run ("early")
    FLAT_FROM_BY = 0.5
    #: less progress than this before the stall is "well above a good loss" (shared: "stuck")
    MAX_IMPROVEMENT = PLATEAU_MAX_IMPROVEMENT
    #: less progress than this is no learning at all: a failed run, medium confidence (shared)
    NO_LEARNING = NO_LEARNING

    def evaluate(self, view: RunView) -> Finding | None:
        st = view.stall(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        if (st is None or lv is None or st.start_fraction is None or st.start_fraction > self.FLAT_FROM_BY
                or lv.start <= 0):
            return None
        improvement = (lv.start - st.level) / abs(lv.start)
        if improvement >= self.MAX_IMPROVEMENT:
            return None
        tail = view.trend(TRAIN_LOSS, st.start_fraction, 1.0)
        if tail is not None and tail.direction < 0:
            return None  # within tolerance, but still significantly falling: slow, not stuck
        vst = view.stall(VAL_LOSS)
        val_flat = vst is not None and vst.start_fraction is not None
        if view.finite_curve(VAL_LOSS) is not None and not val_flat:
            return None  # validation still moving: not a plateau of both
        curve = view.curve(TRAIN_LOSS)
        no_learning = improvement < self.NO_LEARNING
        return self.finding(
            confidence="medium" if no_learning else "low",
            severity="failed" if no_learning else "warning",
            score=1.0 - improvement,
            summary=f"the training loss has been flat at {fmt_num(st.level)} since step {fmt_step(st.start_x)} "
            f"({improvement:.0%} below where it started)",
            recommendation=f"Learning stopped at step {fmt_step(st.start_x)} with the loss at {fmt_num(st.level)}, "
            f"only {improvement:.0%} below its start: check that inputs are normalised and labels match inputs, "
            "try a learning rate 10x higher and 10x lower, and check the initialisation and the output layer.",
            evidence=[Evidence("stall", curve.key, {"flat_from_share": st.start_fraction, "level": st.level,
                                                    "start": lv.start, "improvement_share": improvement},
                               (st.start_x, float(curve.x()[-1])))],
        )
