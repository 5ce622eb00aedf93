"""`saturated_activations`: sigmoid/tanh outputs stuck on the rails."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, RunView
from mlflow_nnaudit.auditor.rules.helpers import LayerShareRule


class SaturatedActivations(LayerShareRule):
    """On sampled steps the recorder hooks every Sigmoid and Tanh module and measures the share
    of outputs on the rails (pre-activation beyond +/-5, where the gradient vanishes: tanh' < 2e-4).
    Reported when, over the second half of the run, the median share is at least 20% in some
    layer: DeepDiagnosis's "more than half the units saturated", with saturated read as
    practitioners read it (|tanh| > 0.99, gradient under 2%, pre-activation beyond +/-2.65), which
    for a bell-shaped pre-activation puts 20% beyond the recorder's stricter +/-5 (a tanh MLP at
    PyTorch's default or Xavier init puts none there, at 3x that scale 0.4%, at 10x 37%, with 64%
    past 0.99). A transformer's pooler (`bert.pooler.activation`, any layer named `pooler`) is not
    counted: its tanh over the first token is the architecture's design, saturated or not. Nor is the
    model's output activation (the last module, `model.last_module_name`): a sigmoid before `BCELoss`
    on the rails is a confident prediction, its gradient the loss's business (a binary MLP at 90%
    training accuracy has ~28% of its outputs there)."""

    cause = "saturated_activations"
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("learning_rate_too_high", "bad_weight_init", "inputs_not_normalized")
    KIND = schema.LAYER_SATURATED
    reads = (schema.layer_prefix(KIND),)
    EVIDENCE_TEST = "saturated_units"

    #: share of a layer's outputs beyond +/-5 that must be saturated: half the layer past |tanh| = 0.99 for a
    #: bell-shaped pre-activation (DeepDiagnosis's 50%, read at the usual 0.99 rail instead of +/-5; see the docstring)
    THRESHOLD = 0.2

    #: layers whose saturation is by design (BERT-style poolers)
    BY_DESIGN = ("pooler",)

    def considered(self, layer: str, view: RunView) -> bool:
        if layer == view.fact("model", "last_module_name"):
            return False  # the output activation: confidence, not a vanishing gradient
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
