"""The rules: one class per failure cause. `ALL_RULES` is the registry the auditor runs."""

from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.dynamics import Diverging, NotConverged, OscillatingLoss, Overfitting, Plateau
from mlflow_nnaudit.auditor.rules.loss import NonFiniteLoss
from mlflow_nnaudit.auditor.rules.optimisation import LearningRateTooHigh, LearningRateTooLow
from mlflow_nnaudit.auditor.rules.recorded import (
    BadWeightInit,
    BatchnormSmallBatch,
    ClassImbalance,
    ConstantFeatures,
    DataNotShuffled,
    DeadRelu,
    EvalModeNotSet,
    FrozenParameters,
    GradientsNotZeroed,
    InitialLossMismatch,
    InputsNotNormalized,
    LossInputMismatch,
    MissingBias,
    NonfiniteInputs,
    SaturatedActivations,
    TrainValPreprocessingMismatch,
)

ALL_RULES: tuple[Rule, ...] = (
    NonFiniteLoss(),
    Diverging(),
    LearningRateTooHigh(),
    LearningRateTooLow(),
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
)

__all__ = ["ALL_RULES", "Evidence", "Finding", "Rule", "RunView"]
