"""`eval_mode_not_set`: evaluation ran with the model in training mode."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class EvalModeNotSet(Rule):
    """The recorder sees a loss computed with autograd off (an evaluation) while the model
    is still in training mode, and the model has layers that behave differently in the two
    modes (dropout, batch normalisation): the validation numbers are computed with dropout
    on and batch statistics of the validation batches."""

    cause = "eval_mode_not_set"
    reads = (("eval_in_train_mode",),)

    def evaluate(self, view: RunView) -> Finding | None:
        seen = view.fact("eval_in_train_mode")
        if not isinstance(seen, dict) or not seen.get("mode_dependent_layers"):
            return None
        layers = ", ".join(seen["mode_dependent_layers"])
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.8,
            summary=f"evaluation ran with the model in training mode ({layers} active)",
            recommendation=f"Evaluation ran with the model in training mode, so {layers} behaved as in training: call "
            "`model.eval()` before evaluating (and `model.train()` after), inside `torch.no_grad()`.",
            evidence=[Evidence("eval_in_train_mode", schema.DIAGNOSTICS_ARTIFACT, dict(seen))],
        )
