"""`frozen_parameters`: trainable parameters that no optimizer updates."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class FrozenParameters(Rule):
    """The recorder compares the model's parameters with the optimizer's parameter groups:
    parameters that require gradients but were never handed to any optimizer group can never
    change (typically the optimizer was built before layers were added or replaced, or from
    a sub-module's parameters only). Deliberately frozen parameters (`requires_grad=False`)
    are not reported."""

    cause = "frozen_parameters"
    reads = (("model", "trainable_not_in_optimizer"),)

    #: parameter names listed in the text at most
    NAMED = 5

    def evaluate(self, view: RunView) -> Finding | None:
        missing = view.fact("model", "trainable_not_in_optimizer")
        if not missing:
            return None
        names = ", ".join(missing[: self.NAMED]) + (" ..." if len(missing) > self.NAMED else "")
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.7,
            summary=f"{len(missing)} trainable parameter tensors are in no optimizer group: {names}",
            recommendation=f"These parameters require gradients but no optimizer updates them: {names}. Build the "
            "optimizer after the model is complete, from `model.parameters()` (or list every sub-module you train).",
            evidence=[Evidence("parameters_vs_optimizer", schema.DIAGNOSTICS_ARTIFACT, {"not_in_optimizer": missing})],
        )
