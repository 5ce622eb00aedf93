"""`insufficient_capacity`: too small a model for the task."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import NO_LEARNING, PLATEAU_MAX_IMPROVEMENT


class InsufficientCapacity(Rule):
    """Too small a model for the task. With the recorder: a hidden layer narrower than the
    output (a bottleneck that cannot carry the classes apart), or no hidden layer at all,
    while the training loss underfits: it made less than 40% progress and the validation
    loss is no more than 10% above it (no generalisation gap, so more data or regularisation
    would not help). From the curves alone (no recorder): less than 30% progress, the
    training loss flat from the first half of the run on, and no gap; low confidence, since
    a hard task's noise floor, too much regularisation or a broken set-up look the same. A curve
    flat from the start (less than 5% progress) is no learning at all, not a small model: the
    curve-only reading stays silent there and leaves the symptom (`plateau`), and it scores
    half as much as the plateau it comes with, so a guess never outranks the symptom.
    The recorder's widths are those of the linear and convolution layers only: a model with
    recurrent or attention layers (an LSTM before a linear head) holds hidden layers the widths
    do not list, so its size is not judged from them. Linear layers that follow one another in an
    `nn.Sequential` with no activation between them (`model.linear_stacks`), chaining every weight
    layer of a model with no activation module (`helpers.linear_stacks`), are one linear map whatever
    their widths: named so, on the same underfitting."""

    cause = "insufficient_capacity"
    explained_by = (
        "too_much_regularization",
        "bad_weight_init",
        "dead_relu",
        "saturated_activations",
        "learning_rate_too_low",
        "network_too_deep",
        "frozen_parameters",
        "loss_input_mismatch",
        "labels_unrelated",
        "vanishing_gradients",
        "inputs_not_normalized",
        "data_not_shuffled",
        "repeated_batch",
        "batch_size_too_large",
        "lr_decay_too_fast",
    )
    reads = (("model", "widths"), ("model", "depth"), ("model", "init"), *helpers.LINEAR_STACK_READS)

    #: with the recorder, the training loss made less than this share of progress: underfitting (a
    #: healthy run on a noisy task gets ~50% on the sample task; a fitting one far more)
    UNDERFIT_MAX_IMPROVEMENT = 0.4
    #: from the curves alone, the stricter "stuck" line (shared with plateau)
    CURVE_MAX_IMPROVEMENT = PLATEAU_MAX_IMPROVEMENT

    def evaluate(self, view: RunView) -> Finding | None:
        uf = view.underfit()
        if uf is None:
            return None
        widths = view.fact("model", "widths")
        if view.recorded() and isinstance(widths, list) and widths:
            if _layers_widths_omit(view):
                return None  # its recurrent/attention layers are hidden layers the widths do not show
            if not uf.signature(self.UNDERFIT_MAX_IMPROVEMENT, need_flat=False):
                return None
            hidden, out = widths[:-1], widths[-1]
            if stacks := helpers.linear_stacks(view):
                what = (
                    f"its linear layers {stacks[0][0]} and {stacks[0][1]} follow one another with no activation "
                    "between them, so together they are one linear map"
                )
            elif hidden and min(hidden) >= out:
                return None
            else:
                what = (
                    f"its narrowest hidden layer has {min(hidden)} units for {out} outputs"
                    if hidden
                    else f"it has no hidden layer (a single {view.fact('model', 'depth')}-layer linear map)"
                )
            confidence, evidence_src = "medium", "recorder"
        elif not view.recorded():
            if not uf.signature(self.CURVE_MAX_IMPROVEMENT) or uf.improvement < NO_LEARNING:
                return None
            what, confidence, evidence_src = "the curves alone cannot show the model's size", "low", "curves"
        else:
            return None
        gap = f", validation {fmt_num(uf.val_end)}" if uf.val_end is not None else ""
        return self.finding(
            confidence=confidence,
            severity="warning",
            score=(1.0 - uf.improvement) * (0.5 if evidence_src == "curves" else 1.0),
            summary=f"the training loss ended at {fmt_num(uf.train_end)}, only {uf.improvement:.0%} below its start"
            f"{gap}; {what}",
            recommendation=f"The model underfits: the training loss ended at {fmt_num(uf.train_end)}, only "
            f"{uf.improvement:.0%} below its start, with no gap to validation{'' if evidence_src == 'curves' else ', and ' + what}. "
            + (
                "Put an activation (nn.ReLU()) between the linear layers: without one, more layers add no capacity."
                if "no activation" in what
                else "Make the model bigger (wider hidden layers, at least as wide as the number of classes, or one "
                "or two more layers) and check that the training loss then goes lower."
            ),
            evidence=[
                Evidence(
                    "underfitting",
                    view.curve(TRAIN_LOSS).key,
                    {
                        "improvement": uf.improvement,
                        "train_end": uf.train_end,
                        "val_end": uf.val_end,
                        "flat_from_share": uf.flat_from,
                        "widths": widths if evidence_src == "recorder" else None,
                    },
                )
            ],
        )


#: the fan-in weights of the layers the recorder's `widths` leave out (torch's RNN/LSTM/GRU and
#: their cells, MultiheadAttention), by their parameter names
_UNLISTED_WEIGHTS = ("weight_ih", "weight_hh", "weight_hr", "in_proj_weight", "q_proj_weight")


def _layers_widths_omit(view: RunView) -> list[str]:
    """The model's recurrent and attention weights the recorder measured at init: layers with a
    width of their own that `widths` (linear and convolution layers) does not list."""
    init = view.fact("model", "init")
    if not isinstance(init, list):
        return []
    names = [w.get("param") for w in init if isinstance(w, dict) and isinstance(w.get("param"), str)]
    return [n for n in names if n.rsplit(".", 1)[-1].startswith(_UNLISTED_WEIGHTS)]
