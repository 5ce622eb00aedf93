"""The rules: one class per failure cause, one module per cause, filed under the catalog's
category (`rules/<category>/<cause_id>.py`). `ALL_RULES` is the registry the auditor runs.

The order of `ALL_RULES` matters: findings of equal rank keep it (see `verdict.rank_findings`).
"""

from __future__ import annotations

from collections.abc import Iterable

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.data.class_imbalance import ClassImbalance
from mlflow_nnaudit.auditor.rules.data.constant_features import ConstantFeatures
from mlflow_nnaudit.auditor.rules.data.data_not_shuffled import DataNotShuffled
from mlflow_nnaudit.auditor.rules.data.dataset_suspect import DatasetSuspect
from mlflow_nnaudit.auditor.rules.data.dataset_too_small import DatasetTooSmall
from mlflow_nnaudit.auditor.rules.data.inputs_not_normalized import InputsNotNormalized
from mlflow_nnaudit.auditor.rules.data.labels_unrelated import LabelsUnrelated
from mlflow_nnaudit.auditor.rules.data.nonfinite_inputs import NonfiniteInputs
from mlflow_nnaudit.auditor.rules.data.repeated_batch import RepeatedBatch
from mlflow_nnaudit.auditor.rules.data.targets_not_normalized import TargetsNotNormalized
from mlflow_nnaudit.auditor.rules.data.train_val_preprocessing_mismatch import TrainValPreprocessingMismatch
from mlflow_nnaudit.auditor.rules.dynamics.diverging import Diverging
from mlflow_nnaudit.auditor.rules.dynamics.not_converged import NotConverged
from mlflow_nnaudit.auditor.rules.dynamics.oscillating_loss import OscillatingLoss
from mlflow_nnaudit.auditor.rules.dynamics.overfitting import Overfitting
from mlflow_nnaudit.auditor.rules.dynamics.plateau import Plateau
from mlflow_nnaudit.auditor.rules.loss.initial_loss_mismatch import InitialLossMismatch
from mlflow_nnaudit.auditor.rules.loss.loss_input_mismatch import LossInputMismatch
from mlflow_nnaudit.auditor.rules.loss.loss_metric_disagreement import LossMetricDisagreement
from mlflow_nnaudit.auditor.rules.loss.nonfinite_loss import NonFiniteLoss
from mlflow_nnaudit.auditor.rules.model.bad_weight_init import BadWeightInit
from mlflow_nnaudit.auditor.rules.model.batchnorm_small_batch import BatchnormSmallBatch
from mlflow_nnaudit.auditor.rules.model.dead_relu import DeadRelu
from mlflow_nnaudit.auditor.rules.model.eval_mode_not_set import EvalModeNotSet
from mlflow_nnaudit.auditor.rules.model.final_layer_activation import FinalLayerActivation
from mlflow_nnaudit.auditor.rules.model.frozen_parameters import FrozenParameters
from mlflow_nnaudit.auditor.rules.model.insufficient_capacity import InsufficientCapacity
from mlflow_nnaudit.auditor.rules.model.missing_bias import MissingBias
from mlflow_nnaudit.auditor.rules.model.network_too_deep import NetworkTooDeep
from mlflow_nnaudit.auditor.rules.model.no_regularization import NoRegularization
from mlflow_nnaudit.auditor.rules.model.saturated_activations import SaturatedActivations
from mlflow_nnaudit.auditor.rules.model.too_much_regularization import TooMuchRegularization
from mlflow_nnaudit.auditor.rules.optimisation.batch_size_too_large import BatchSizeTooLarge
from mlflow_nnaudit.auditor.rules.optimisation.exploding_gradients import ExplodingGradients
from mlflow_nnaudit.auditor.rules.optimisation.gradient_clipping_masks_lr import GradientClippingMasksLr
from mlflow_nnaudit.auditor.rules.optimisation.gradients_not_zeroed import GradientsNotZeroed
from mlflow_nnaudit.auditor.rules.optimisation.learning_rate_too_high import LearningRateTooHigh
from mlflow_nnaudit.auditor.rules.optimisation.learning_rate_too_low import LearningRateTooLow
from mlflow_nnaudit.auditor.rules.optimisation.lr_decay_too_fast import LrDecayTooFast
from mlflow_nnaudit.auditor.rules.optimisation.update_ratio_abnormal import UpdateRatioAbnormal
from mlflow_nnaudit.auditor.rules.optimisation.vanishing_gradients import VanishingGradients

ALL_RULES: tuple[Rule, ...] = (
    NonFiniteLoss(),
    Diverging(),
    LearningRateTooHigh(),
    LearningRateTooLow(),
    ExplodingGradients(),
    NotConverged(),
    Overfitting(),
    Plateau(),
    OscillatingLoss(),
    LossInputMismatch(),
    InitialLossMismatch(),
    DataNotShuffled(),
    ClassImbalance(),
    EvalModeNotSet(),
    FrozenParameters(),
    InputsNotNormalized(),
    NonfiniteInputs(),
    ConstantFeatures(),
    TrainValPreprocessingMismatch(),
    BadWeightInit(),
    DeadRelu(),
    SaturatedActivations(),
    BatchnormSmallBatch(),
    MissingBias(),
    GradientsNotZeroed(),
    VanishingGradients(),
    UpdateRatioAbnormal(),
    TargetsNotNormalized(),
    FinalLayerActivation(),
    NoRegularization(),
    TooMuchRegularization(),
    LabelsUnrelated(),
    DatasetSuspect(),
    LossMetricDisagreement(),
    RepeatedBatch(),
    DatasetTooSmall(),
    BatchSizeTooLarge(),
    GradientClippingMasksLr(),
    LrDecayTooFast(),
    NetworkTooDeep(),
    InsufficientCapacity(),
)


def curves_read_by(rules: Iterable[Rule]) -> tuple[str, ...]:
    """The recorder's metric keys and key prefixes (those ending in "/") that the rules read
    directly, besides the curves they read by role: what the audit must fetch for them. Read
    off each rule's `reads`, so that a rule that starts reading a new curve gets it fetched."""
    keys = (r for rule in rules for r in rule.reads)
    return tuple(dict.fromkeys(k for k in keys if isinstance(k, str) and k.startswith(schema.METRIC_PREFIX)))


__all__ = ["ALL_RULES", "Evidence", "Finding", "Rule", "RunView", "curves_read_by"]
