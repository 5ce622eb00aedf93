"""`constant_features`: input features that never change."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import NAN_COLUMN_READS, nan_columns


class ConstantFeatures(Rule):
    """Input features whose minimum equals their maximum over every sampled training batch
    (at least 3 batches): they carry no information and break standardisation (division by a
    zero std gives NaN). When some of them are NaN/Inf in every value and those are all the
    NaN/Inf the inputs hold (`helpers.nan_columns`), the zero std has already done it: the finding
    is then high confidence and `failed`, and the NaN inputs follow from it."""

    cause = "constant_features"
    reads = (("inputs", "train"), *NAN_COLUMN_READS)

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
        nan = nan_columns(view)
        said = f"{k} of {n} input features never changed in {st['batches']} sampled batches"
        fix = f"{k} of the {n} input features are constant: drop them (or make sure standardisation divides by max(std, eps))"
        if nan:
            said += (
                f"; {nan} of them are NaN/Inf in every value, as (x - mean) / std gives for a constant column (0 / 0)"
            )
            fix = (
                f"{nan} input feature(s) are NaN/Inf in every sample, which is what standardising a constant column "
                "gives: its std is 0, and (x - mean) / std = 0 / 0. Drop the constant columns before scaling, or divide "
                "by max(std, eps) as scikit-learn's StandardScaler does (it sets a zero std to 1)"
            )
        return self.finding(
            confidence="high" if nan else "medium",
            severity="failed" if nan else "warning",
            score=k / max(n, 1),
            summary=said,
            recommendation=f"{fix}; and check the feature pipeline for a column filled by mistake.",
            evidence=[
                Evidence(
                    "constant_features",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {"constant": k, "features": n, "batches": st["batches"], "nan_columns": nan or 0},
                )
            ],
        )
