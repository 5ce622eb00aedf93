"""`missing_bias`: weight layers without a bias and without a normalisation layer after them."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, is_lm_head


class MissingBias(Rule):
    """Linear or convolution layers created with `bias=False` whose next layer is not a
    normalisation layer (which would make a bias redundant). Low confidence: some
    architectures leave biases out on purpose. A language model's `lm_head` is one of them (its
    weight is tied to the token embedding in GPT-2, nanoGPT, LLaMA): not listed."""

    cause = "missing_bias"
    reads = (("model", "no_bias_without_norm"),)

    #: layer names listed in the text at most
    NAMED = 5

    def evaluate(self, view: RunView) -> Finding | None:
        layers = view.fact("model", "no_bias_without_norm")
        layers = [n for n in layers if not is_lm_head(n)] if isinstance(layers, list) else []
        if not layers:
            return None
        names = ", ".join(layers[: self.NAMED])
        return self.finding(
            confidence="low",
            severity="warning",
            score=0.3,
            summary=f"layers without bias and without a following normalisation layer: {names}",
            recommendation=f"Layers {names} have no bias term and no normalisation after them: unless this is "
            "deliberate, create them with `bias=True` (the default).",
            evidence=[Evidence("no_bias_layers", schema.DIAGNOSTICS_ARTIFACT, {"layers": layers})],
        )
