"""`eval_mode_not_set`: evaluation ran with the model in training mode."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class EvalModeNotSet(Rule):
    """The recorder sees a loss computed with autograd off (an evaluation) while the model
    is still in training mode, and the model has layers that behave differently in the two
    modes (dropout, batch normalisation): the validation numbers are computed with dropout
    on and batch statistics of the validation batches. Or the model is in eval mode but its forward
    calls dropout through the functional API without its mode (`F.dropout(x, p)`: `training`
    defaults to True), seen as a functional dropout in training mode with autograd off while the
    model was in eval mode: the same harm, from the forward's code."""

    cause = "eval_mode_not_set"
    reads = (("eval_in_train_mode",),)

    def evaluate(self, view: RunView) -> Finding | None:
        seen = view.fact("eval_in_train_mode")
        if not isinstance(seen, dict):
            return None
        if not seen.get("mode_dependent_layers"):
            return self._functional(seen)
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

    def _functional(self, seen: dict) -> Finding | None:
        calls = seen.get("functional_dropout_calls")
        if not isinstance(calls, int) or calls <= 0:
            return None
        return self.finding(
            confidence="high",
            severity="warning",
            kind="bug",
            score=0.8,
            summary=f"the model was in eval mode, but a functional dropout still dropped units in evaluation "
            f"({calls} call{'s' if calls > 1 else ''} of F.dropout in training mode with autograd off)",
            recommendation="The forward pass calls dropout through the functional API, whose `training` argument "
            "defaults to True, so `model.eval()` does not switch it off: write `F.dropout(x, p, training=self.training)` "
            "or use an `nn.Dropout(p)` module.",
            evidence=[Evidence("functional_dropout_in_eval", schema.DIAGNOSTICS_ARTIFACT, dict(seen))],
        )
