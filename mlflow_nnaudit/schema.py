"""The recorder-auditor contract, written once: what the recorder leaves in a run and the
auditor reads back.

The recorder (`mlflow_nnaudit.recorder`) and the auditor (`mlflow_nnaudit.auditor`) never
import each other; they meet only in an MLflow run. This module names everything that
crosses that boundary: the metric keys (all under `METRIC_PREFIX`), the per-layer key
patterns, the params, the tags of both sides, and the diagnostics artifact with the facts
in it. Both sides spell these names through this module, so that a key renamed on one side
cannot leave the other silently reading nothing (tests/test_schema.py checks that every key
and fact a rule reads is one the recorder can write).

It imports neither torch nor MLflow (the auditor may run where neither the recorder nor
torch is installed); tests/test_schema.py checks that too.
"""

from __future__ import annotations

from typing import Any

from mlflow_nnaudit._version import __version__

#: version of this contract: bump it when a name below changes meaning or disappears
SCHEMA_VERSION = 1
#: the version both sides write (TAG_RECORDER_VERSION, TAG_VERSION, the diagnostics' `recorder_version`):
#: the package's own
PACKAGE_VERSION = __version__

# --- metrics -----------------------------------------------------------------------------------
#: every metric the recorder logs starts with this (the recorder's sink adds it; the names
#: below are without it, as the recorder's probes hand them to the sink)
METRIC_PREFIX = "nnaudit/"

TRAIN_LOSS = "train_loss"  # the training loss, every step at first, then window means
VAL_LOSS = "val_loss"  # mean of the evaluation losses since the last optimizer step
LR = "lr"  # the first parameter group's learning rate, on sampled steps and when it moved 2x or more
#: global gradient L2 norm before the step, on sampled steps. Not `grad_norm`: per-layer norms are
#: `grad_norm/<layer>`, and MLflow's file store keeps a key as a file whose path is the key, so
#: `nnaudit/grad_norm` (a file) and `nnaudit/grad_norm/fc1` (a file in a directory of the same
#: name) cannot both exist there; version 0.1 wrote `grad_norm` (see LEGACY_METRICS)
GRAD_NORM = "grad_norm_total"
NONFINITE_GRADS = "nonfinite_grads"  # parameters with a NaN/Inf gradient norm, on sampled steps
LABELS_PER_BATCH = "labels_per_batch"  # distinct class labels in a sampled classification batch
GRAD_PRESENT_BEFORE_BACKWARD = "grad_present_before_backward"  # 1 when gradients were not reset
#: 1 when an optimizer step's closure, called again (L-BFGS's line search), began its backward pass
#: with the previous call's gradients still there (`zero_grad()` outside the closure)
GRAD_PRESENT_IN_CLOSURE = "grad_present_in_closure"
AMP_SKIPPED_STEPS = "amp_skipped_steps"  # running count of steps a GradScaler skipped

#: metrics with one fixed name
METRICS = (
    TRAIN_LOSS,
    VAL_LOSS,
    LR,
    GRAD_NORM,
    NONFINITE_GRADS,
    LABELS_PER_BATCH,
    GRAD_PRESENT_BEFORE_BACKWARD,
    GRAD_PRESENT_IN_CLOSURE,
    AMP_SKIPPED_STEPS,
)

#: names earlier recorders wrote, by the name that replaced them: the auditor reads both (runs
#: recorded by 0.1 stay auditable); the recorder writes only the new ones
LEGACY_METRICS: dict[str, tuple[str, ...]] = {GRAD_NORM: ("grad_norm",)}

# per-layer metrics: `<kind>/<layer>`, the layer being the module's name in the model
LAYER_GRAD_NORM = "grad_norm"  # gradient norm of the layer's parameters
LAYER_WEIGHT_NORM = "weight_norm"  # weight norm of the layer's parameters after the step
LAYER_UPDATE_RATIO = "update_ratio"  # ||dW|| / ||W|| of the step
LAYER_DEAD_RELU = "dead_relu"  # share of a ReLU layer's units that are zero for the whole batch
LAYER_SATURATED = "saturated"  # share of a sigmoid/tanh layer's outputs on the rails

#: kinds of per-layer metrics
LAYER_KINDS = (LAYER_GRAD_NORM, LAYER_WEIGHT_NORM, LAYER_UPDATE_RATIO, LAYER_DEAD_RELU, LAYER_SATURATED)


def keys_nest(a: str, b: str) -> bool:
    """Is one of two metric names a prefix-with-slash of the other (`x` and `x/y`)? No store may
    be asked to hold both: MLflow's file store cannot (a file and a directory of one name)."""
    return b.startswith(a + "/") or a.startswith(b + "/")


def layer_key(kind: str, layer: str) -> str:
    """The name of a per-layer metric as the recorder's probes give it (no prefix): `grad_norm/fc1`."""
    return f"{kind}/{layer}"


def stored_key(name: str) -> str:
    """A metric name as MLflow stores it: `nnaudit/grad_norm`."""
    return METRIC_PREFIX + name


def layer_prefix(kind: str) -> str:
    """The stored keys of one kind of per-layer metric start with this: `nnaudit/grad_norm/`."""
    return stored_key(kind + "/")


def recorder_writes(key: str) -> bool:
    """Whether the recorder can write this stored metric key, or (ending in "/") key prefix."""
    if not key.startswith(METRIC_PREFIX):
        return False
    name = key[len(METRIC_PREFIX) :]
    if name in METRICS:
        return True
    kind, sep, _ = name.partition("/")
    return bool(sep) and kind in LAYER_KINDS


# --- params (logged once, when the recorder adopts an optimizer) --------------------------------
PARAM_OPTIMIZER = "nnaudit.optimizer"  # the optimizer's class name ("none" in a loop without one)
PARAM_OPTIMIZER_PREFIX = "nnaudit.optimizer."
#: settings of the optimizer's first parameter group: `nnaudit.optimizer.<setting>`; `lr_spread` is the
#: highest group's learning rate over the lowest's, with 2+ groups (discriminative fine-tuning rates)
OPTIMIZER_SETTINGS = ("lr", "weight_decay", "momentum", "betas", "param_groups", "lr_spread")
PARAM_MODEL_PARAMETERS = "nnaudit.model.parameters"  # parameters the optimizer trains


def optimizer_param(setting: str) -> str:
    """`nnaudit.optimizer.lr` and the like."""
    return PARAM_OPTIMIZER_PREFIX + setting


PARAM_OPTIMIZER_LR = optimizer_param("lr")
PARAM_OPTIMIZER_WEIGHT_DECAY = optimizer_param("weight_decay")
PARAM_OPTIMIZER_LR_SPREAD = optimizer_param("lr_spread")
#: the optimizer's params (its class, then its settings), also the keys of the diagnostics' `optimizer` section
OPTIMIZER_PARAMS = (PARAM_OPTIMIZER, *(optimizer_param(s) for s in OPTIMIZER_SETTINGS))
PARAMS = (*OPTIMIZER_PARAMS, PARAM_MODEL_PARAMETERS)

# --- tags ----------------------------------------------------------------------------------------
#: the recorder marks the runs it recorded (value: the package version) ...
TAG_RECORDER_VERSION = "nnaudit.recorder.version"
#: ... and the runs it started itself ("true"), when no run was active
TAG_RECORDER_STARTED_RUN = "nnaudit.recorder.started_run"
#: ... and, when the store did not take all of a run's metric points in time, how many were lost
TAG_RECORDER_LOST_POINTS = "nnaudit.recorder.lost_points"

# the auditor's tags (see the contract: users filter runs on them in the MLflow UI)
TAG_STATUS = "nnaudit.status"  # healthy | warning | failed | inconclusive
TAG_CAUSES = "nnaudit.causes"  # cause ids, comma-separated, most likely first
TAG_CAUSE_PREFIX = "nnaudit.cause."  # `nnaudit.cause.<id>`: high | medium | low
TAG_ADVISORIES = "nnaudit.advisories"  # set-up risks on a run that showed no harm, comma-separated
TAG_RECOMMENDATION = "nnaudit.recommendation"  # the most important recommendation, plain text
TAG_AUDITED_AT = "nnaudit.audited_at"  # ISO-8601 UTC time of the audit
TAG_VERSION = "nnaudit.version"  # version of the package that wrote the audit tags
#: fingerprint of the rule set that judged the run (auditor/ruleset.py): a changed rule or threshold
#: re-audits runs judged by the old one, whether or not the package version moved
TAG_RULESET = "nnaudit.ruleset"

#: the torch.nn.functional losses the recorder watches (the nn.*Loss modules call these too), by the
#: name it records as the `loss` section's `loss_function`; each is never negative on valid input
LOSS_FUNCTIONS = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "kl_div",
    "ctc_loss",
)

# --- artifacts -----------------------------------------------------------------------------------
#: the recorder's one-off facts, rewritten while training whenever they change
DIAGNOSTICS_ARTIFACT = "nnaudit/diagnostics.json"
AUDIT_ARTIFACT = "nnaudit/audit.json"  # the auditor's findings with their evidence, per run
REPORT_ARTIFACT = "nnaudit/report.html"  # the auditor's page per run

#: the fields of DIAGNOSTICS_ARTIFACT: top-level sections (one per probe that has something to
#: say, keyed by the probe's name) and the facts in them; None marks a value (a number, a list,
#: a dict not described further). Rules read these through `RunView.fact(*path)`.
_INPUT_STATS: dict[str, Any] = dict.fromkeys(
    (
        "batches",
        "features",
        "median_batch_size",
        "nonfinite_share",
        "nonfinite_features",
        "constant_features",
        "median_abs_mean",
        "median_std",
        "max_abs",
        "std_ratio",
        "feature_mean",
        "feature_std",
    )
)
_LOADER: dict[str, Any] = dict.fromkeys(
    (
        "dataset",
        "dataset_size",
        "batch_size",
        "batches_per_epoch",
        "sampler",
        "sampler_population",  # indices a WeightedRandomSampler draws from (also inside a BatchSampler)
        "shuffle",
        "drop_last",
        "iterations",
        "training_iterations",
    )
)
#: (`var`: the pooled variance, computed stably; `output_var`: with several outputs a sample, the mean of each
#: output's own variance: `recorder/probes/loss.py:_stats_summary`)
_RUNNING_STATS: dict[str, Any] = dict.fromkeys(("min", "max", "mean", "sqmean", "n", "var", "output_var"))
#: statistics of one tensor at a moment (model input, loss target): `recorder/probes/moments.py:tensor_stats`
_TENSOR_STATS: dict[str, Any] = dict.fromkeys(("numel", "dtype", "nonfinite_share", "min", "max", "mean", "std"))
#: the moments the recorder keeps evidence of (the section `moments` of the diagnostics)
MOMENT_FIRST_NONFINITE_LOSS = "first_nonfinite_loss"  # the first step whose training loss is NaN/Inf
MOMENT_FIRST_LOSS_SPIKE = "first_loss_spike"  # the first step whose loss is >= 10x its running median
MOMENT_FIRST_GRAD_JUMP = "first_grad_jump"  # the first sampled step whose grad norm is >= 10x the median
MOMENTS = (MOMENT_FIRST_NONFINITE_LOSS, MOMENT_FIRST_LOSS_SPIKE, MOMENT_FIRST_GRAD_JUMP)
_MOMENT: dict[str, Any] = {
    **dict.fromkeys(
        (
            "step",
            "loss",
            "previous_loss",
            "loss_median",
            "grad_norm",
            "grad_norm_median",
            "nonfinite_grads",
            "nonfinite_weights",
            "update_ratio_max",
            "nonfinite_update_ratios",
        )
    ),
    "inputs": _TENSOR_STATS,  # the model input of that step (the loss input where no model module ran)
    "targets": _TENSOR_STATS,  # the loss target of that step
    "previous": {"inputs": _TENSOR_STATS, "targets": _TENSOR_STATS},  # the same for the step before
}
#: per optimizer, whether its parameters learn (`recorder/probes/learning.py`)
_LEARNING: dict[str, Any] = dict.fromkeys(
    (
        "parameters",
        "sampled_steps",
        "never_grad",
        "never_grad_names",
        "never_changed",
        "never_changed_names",
        "learning",
        "requires_grad_false",
        "inputs_are_parameters",
    )
)
DIAGNOSTICS_FIELDS: dict[str, Any] = {
    "recorder_version": None,
    "steps": None,  # optimizer steps recorded
    "optimizer": dict.fromkeys(OPTIMIZER_PARAMS),  # the optimizer params above, by their param names
    "model": {
        **dict.fromkeys(
            (
                "class",
                "layers",
                "depth",
                "widths",
                "activations",
                "last_module",
                "last_module_name",
                "dropout",
                "normalization",
                "no_bias_layers",
                "no_bias_without_norm",
                "linear_stacks",
                "recurrent",
                "parameters",
                "trainable_not_in_optimizer",
                "unregistered_modules",
                # modules with trainable parameters outside the model and the followed optimizer that ran inside
                # its first training forwards and were gone once the forward returned (built inside forward on
                # every call): [{module, parameters, rebuilt: true}]
                "outside_modules",
                "requires_grad_false",
                # values with requires_grad=False when the model is attached, and the largest such
                # tensors as [name, values]
                "frozen_parameters",
                "frozen_tensors",
                "frozen_largest",
            )
        ),
        # per weight tensor before the first update: param, shape, std, lecun_std, scale_vs_lecun,
        # constant, zero (every value 0), identical_rows_share, module (the class holding it), layer_weight (a layer's
        # fan-in weight matrix/kernel, not an embedding, a norm's scale or a model's own nn.Parameter)
        "init": None,
    },
    "activations": {"layers": None},  # activation layer name -> "relu" | "sigmoid" | "tanh"
    "clipping": dict.fromkeys(
        ("calls", "kind", "limit", "measured_calls", "bite_share", "median_pre_clip_ratio", "p90_pre_clip_ratio")
    ),
    "data_loader": {"loaders": None, "train": _LOADER},
    "loss": {
        **dict.fromkeys(("loss_function", "n_classes", "first_loss", "chance_loss", "label_counts")),
        # a class-index loss given `weight=` (True when it was), its largest `label_smoothing`
        "class_weighted": None,
        # the run's binary cross-entropy (the function it is read by): "weighted" (a call had `weight=` or
        # `pos_weight=`), else its checked targets "hard" (every one exactly 0 or 1) or "soft"
        "binary_targets": None,
        "label_smoothing": None,
        # the first training loss call's input shape past the batch dimension: [C] one label's class scores
        "input_shape": None,
        # a loss function seen only with `reduction='none'` (the run reduces it in its own loss: focal,
        # PolyLoss): its label_counts, input checks and targets are read; no first_loss, chance_loss, n_classes
        "per_sample_loss": None,
        # mse_loss's reduction, read from its value on the first checked call: mean | sum | other
        "reduction": None,
        # the loss functions' training outputs over the loss backpropagated, per backward call on
        # sampled steps (the first 64): the median (below 1: terms added by hand weigh on the
        # objective), the median of the first three, how many calls it rests on, and the median
        # number of loss function calls per backward (2 or more: a sum of losses, no single criterion)
        "objective_share": None,
        "objective_share_start": None,
        "objective_steps": None,
        "objective_calls": None,
        # the factor that reads `nnaudit/train_loss` per sample when the loop backpropagated a
        # `reduction='sum'` loss itself (the median per-sample output over the sum)
        "train_loss_per_sample": None,
        "input_mismatch": dict.fromkeys(("loss", "problem", "detail")),
        # the activation (ReLU, Sigmoid, Tanh, Softplus) a cross_entropy training input came out of
        "input_activation": None,
        "targets": _RUNNING_STATS,
        "outputs": _RUNNING_STATS,
        # a regression loss's evaluation targets (the first 200 evaluation calls): the validation set's variance
        "eval_targets": _RUNNING_STATS,
    },
    "inputs": {
        "train": _INPUT_STATS,
        "eval": _INPUT_STATS,
        "fingerprints": dict.fromkeys(
            (
                "sampled_batches",
                "distinct",
                "most_common_share",
                "consecutive_repeats",
                "cycle_batches",
                "cycle_samples",
            )
        ),
    },
    "eval_in_train_mode": dict.fromkeys(("step", "mode_dependent_layers", "functional_dropout_calls")),
    "amp": {"skipped_steps": None},
    # optimizers other than the followed one: how many, their steps, and those taken after a loss of
    # their own was backpropagated (zeros when there was none: one objective, no game)
    "other_optimizers": dict.fromkeys(("optimizers", "steps", "steps_with_own_loss")),
    "moments": dict.fromkeys(MOMENTS, _MOMENT),
    # `learning.optimizer`: the followed optimizer's parameters; `learning.model_outside_optimizer`:
    # a module that ran forward passes while none of its parameters is in the optimizer
    "learning": {
        "optimizer": _LEARNING,
        "model_outside_optimizer": dict.fromkeys(("class", "parameters", "trainable")),
    },
}


def is_fact(path: tuple[str, ...]) -> bool:
    """Whether `path` names a fact (or a section of facts) DIAGNOSTICS_FIELDS describes."""
    node: Any = DIAGNOSTICS_FIELDS
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return bool(path)
