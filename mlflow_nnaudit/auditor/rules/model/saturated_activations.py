"""`saturated_activations`: sigmoid/tanh outputs stuck on the rails."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding
from mlflow_nnaudit.auditor.rules.helpers import LayerShareRule


class SaturatedActivations(LayerShareRule):
    """On sampled steps the recorder hooks every Sigmoid and Tanh module and measures the share
    of outputs on the rails (pre-activation beyond +/-5, where the gradient vanishes).
    Reported when, over the second half of the run, the median share is at least 50% in some
    layer. A transformer's pooler (`bert.pooler.activation`, any layer named `pooler`) is not
    counted: its tanh over the first token is the architecture's design, saturated or not."""

    cause = "saturated_activations"
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("learning_rate_too_high", "bad_weight_init", "inputs_not_normalized")
    KIND = schema.LAYER_SATURATED
    reads = (schema.layer_prefix(KIND),)
    EVIDENCE_TEST = "saturated_units"

    #: share of a layer's outputs that must be saturated (AutoTrainer 70%, DeepDiagnosis 50%)
    THRESHOLD = 0.5

    #: layers whose saturation is by design (BERT-style poolers)
    BY_DESIGN = ("pooler",)

    def considered(self, layer: str) -> bool:
        return not any(name in layer.lower() for name in self.BY_DESIGN)

    def describe(self, bad: dict[str, float], worst: str, evidence: list[Evidence]) -> Finding:
        return self.finding(
            confidence="high",
            severity="warning",
            score=bad[worst],
            summary=f"{bad[worst]:.0%} of the outputs of {worst} sit on the sigmoid/tanh rails",
            recommendation=f"{bad[worst]:.0%} of the activations of layer {worst} are saturated, so their gradients "
            "vanish: scale the initial weights down (`nn.init.xavier_uniform_`), normalise the inputs, add "
            "normalisation layers, or use ReLU-family activations in hidden layers.",
            evidence=evidence,
        )
