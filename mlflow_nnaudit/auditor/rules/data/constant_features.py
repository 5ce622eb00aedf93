"""`constant_features`: input features that never change."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class ConstantFeatures(Rule):
    """Input features whose minimum equals their maximum over every sampled training batch
    (at least 3 batches): they carry no information and break standardisation (division by a
    zero std gives NaN)."""

    cause = "constant_features"
    reads = (("inputs", "train"),)

    #: sampled batches needed before "never changed" means anything
    MIN_BATCHES = 3

    def applies(self, view: RunView) -> bool:
        """Not on image inputs (a convolutional first layer): a border pixel that is always zero
        (MNIST, sklearn digits) is part of the images, and convolutions share weights across it."""
        return not view.image_inputs()

    def evaluate(self, view: RunView) -> Finding | None:
        st = view.fact("inputs", "train")
        if not isinstance(st, dict) or st.get("constant_features", 0) < 1 or st.get("batches", 0) < self.MIN_BATCHES:
            return None
        k, n = st["constant_features"], st["features"]
        return self.finding(
            confidence="medium",
            severity="warning",
            score=k / max(n, 1),
            summary=f"{k} of {n} input features never changed in {st['batches']} sampled batches",
            recommendation=f"{k} of the {n} input features are constant: drop them (or make sure standardisation "
            "divides by max(std, eps)), and check the feature pipeline for a column filled by mistake.",
            evidence=[
                Evidence(
                    "constant_features",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {"constant": k, "features": n, "batches": st["batches"]},
                )
            ],
        )
