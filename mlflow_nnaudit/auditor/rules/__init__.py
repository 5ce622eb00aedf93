"""The rules: one class per failure cause. `ALL_RULES` is the registry the auditor runs."""

from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.dynamics import Diverging, NotConverged, OscillatingLoss, Overfitting, Plateau
from mlflow_nnaudit.auditor.rules.loss import NonFiniteLoss
from mlflow_nnaudit.auditor.rules.optimisation import LearningRateTooHigh, LearningRateTooLow
from mlflow_nnaudit.auditor.rules.recorded import (
    ClassImbalance,
    DataNotShuffled,
    EvalModeNotSet,
    FrozenParameters,
    InitialLossMismatch,
    LossInputMismatch,
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
)

__all__ = ["ALL_RULES", "Evidence", "Finding", "Rule", "RunView"]
