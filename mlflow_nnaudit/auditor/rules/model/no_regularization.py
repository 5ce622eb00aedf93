"""`no_regularization`: the model overfits with no weight decay and no dropout."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.dynamics.overfitting import Overfitting


class NoRegularization(Rule):
    """The model overfits (see `overfitting`) and the recorder saw no regularisation at all:
    optimizer weight decay 0 and no dropout layer."""

    cause = "no_regularization"
    explained_by = ("train_val_preprocessing_mismatch", "gradients_not_zeroed")
    reads = (("optimizer", schema.PARAM_OPTIMIZER_WEIGHT_DECAY), ("model", "dropout"), *Overfitting.reads)

    def evaluate(self, view: RunView) -> Finding | None:
        wd = view.fact("optimizer", schema.PARAM_OPTIMIZER_WEIGHT_DECAY)
        dropout = view.fact("model", "dropout")
        if wd is None or dropout is None or wd > 0 or dropout:
            return None
        if Overfitting().evaluate(view) is None:
            return None
        return self.finding(
            confidence="medium",
            severity="warning",
            score=0.6,
            summary="the model overfits and has no weight decay and no dropout",
            recommendation="The model overfits with no regularisation at all: add weight decay (e.g. AdamW with "
            "weight_decay=0.01), dropout (p=0.1-0.5) between hidden layers, data augmentation, or early stopping.",
            evidence=[
                Evidence("regularisation", schema.DIAGNOSTICS_ARTIFACT, {"weight_decay": wd, "dropout": dropout})
            ],
        )
