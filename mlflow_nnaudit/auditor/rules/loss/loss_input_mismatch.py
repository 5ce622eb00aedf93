"""`loss_input_mismatch`: the loss function gets the wrong kind of input."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class LossInputMismatch(Rule):
    """The recorder checks the input of the loss function on the first training calls and on
    sampled steps: rows of probabilities (each in [0, 1], summing to 1) fed to
    `cross_entropy` / `nn.CrossEntropyLoss` (softmax applied twice), input that is not
    log-probabilities fed to `nll_loss` (logits without `log_softmax`), or input entirely in
    [0, 1] fed to `binary_cross_entropy_with_logits` (sigmoid applied twice)."""

    cause = "loss_input_mismatch"
    reads = (("loss", "input_mismatch"),)

    #: what to do about each problem the recorder names
    FIXES = {
        "probabilities": "remove the softmax/sigmoid at the end of the model and feed raw logits to the loss "
                         "(apply softmax only when you need probabilities, e.g. at inference)",
        "not_log_probabilities": "apply `torch.log_softmax(logits, dim=1)` before `nll_loss`, or use "
                                 "`nn.CrossEntropyLoss` on the raw logits",
    }

    def evaluate(self, view: RunView) -> Finding | None:
        mismatch = view.fact("loss", "input_mismatch")
        if not mismatch:
            return None
        fix = self.FIXES.get(mismatch.get("problem"), "feed the loss the kind of input its documentation asks for")
        return self.finding(
            confidence="high",
            severity="failed" if mismatch.get("problem") == "not_log_probabilities" else "warning",
            score=0.9,
            summary=f"{mismatch['loss']} was fed the wrong kind of input: {mismatch['detail']}",
            recommendation=f"The loss function {mismatch['loss']} gets the wrong input: {mismatch['detail']}. "
            f"Fix: {fix}.",
            evidence=[Evidence("loss_input_check", schema.DIAGNOSTICS_ARTIFACT, dict(mismatch))],
        )
