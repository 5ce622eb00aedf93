"""`nonfinite_inputs`: NaN or Inf in the model's inputs."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class NonfiniteInputs(Rule):
    """The recorder counts NaN and Inf values in the sampled training and evaluation input
    batches; any at all is reported."""

    cause = "nonfinite_inputs"
    PHASES = ("train", "eval")  # the input statistics the recorder keeps apart
    reads = (("inputs", "train", "nonfinite_share"), ("inputs", "eval", "nonfinite_share"))

    def evaluate(self, view: RunView) -> Finding | None:
        shares = {phase: view.fact("inputs", phase, "nonfinite_share") for phase in self.PHASES}
        bad = {k: v for k, v in shares.items() if isinstance(v, (int, float)) and v > 0}
        if not bad:
            return None
        where = " and ".join(f"{v:.2%} of the {k} input values" for k, v in bad.items())
        return self.finding(
            confidence="high",
            severity="failed",
            score=1.0,
            summary=f"NaN/Inf in the inputs: {where}",
            recommendation=f"The inputs contain NaN or Inf ({where}): find them with `torch.isfinite(x).all()` on "
            "the dataset, then impute or drop them (and check divisions and logs in the preprocessing).",
            evidence=[Evidence("input_nonfinite", schema.DIAGNOSTICS_ARTIFACT, bad)],
        )
