"""`dead_relu`: ReLU units that never activate."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding
from mlflow_nnaudit.auditor.rules.helpers import LayerShareRule


class DeadRelu(LayerShareRule):
    """On sampled steps the recorder hooks every ReLU module and measures the share of its
    units (features, or channels) that output zero for every sample of the batch. Reported
    when, over the second half of the run, the median share is at least 50% in some layer."""

    cause = "dead_relu"
    #: upstream causes it follows from, when found too (listed after them): units killed by an
    #: explosion are the learning rate's consequence
    consequence_of = ("learning_rate_too_high", "bad_weight_init", "inputs_not_normalized")
    KIND = schema.LAYER_DEAD_RELU
    reads = (schema.layer_prefix(KIND),)
    EVIDENCE_TEST = "dead_units"

    #: share of a layer's units that must be dead (AutoTrainer 70%, DeepDiagnosis 50%)
    THRESHOLD = 0.5
    #: a layer this dead barely computes anything: a failed run
    FAILED_SHARE = 0.9

    def describe(self, bad: dict[str, float], worst: str, evidence: list[Evidence]) -> Finding:
        return self.finding(
            confidence="high",
            severity="failed" if bad[worst] >= self.FAILED_SHARE else "warning",
            score=bad[worst],
            summary=f"{bad[worst]:.0%} of the units after ReLU layer {worst} never activate"
            + (f" (and {len(bad) - 1} more layers)" if len(bad) > 1 else ""),
            recommendation=f"{bad[worst]:.0%} of the ReLU units of layer {worst} are dead (always 0). When the loss "
            "blew up first, the explosion killed them: lower the learning rate (see `learning_rate_too_high`). "
            "Otherwise use He initialisation (`nn.init.kaiming_normal_`) with zero biases, or switch to "
            "`nn.LeakyReLU`/`nn.GELU`; normalised inputs help too.",
            evidence=evidence,
        )
