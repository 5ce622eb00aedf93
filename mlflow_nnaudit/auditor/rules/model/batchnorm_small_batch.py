"""`batchnorm_small_batch`: batch normalisation on tiny batches."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class BatchnormSmallBatch(Rule):
    """The model has batch-normalisation layers and the recorder saw training batches of at
    most 4 samples (median over sampled steps): batch statistics from so few samples are
    noise, and training and evaluation behaviour drift apart."""

    cause = "batchnorm_small_batch"
    reads = (("model", "normalization"), ("inputs", "train", "median_batch_size"))

    #: batch statistics from this many samples or fewer are noise
    MAX_SMALL_BATCH = 4

    def evaluate(self, view: RunView) -> Finding | None:
        norms = view.fact("model", "normalization") or []
        size = view.fact("inputs", "train", "median_batch_size")
        if not any("BatchNorm" in n for n in norms) or not isinstance(size, int) or size > self.MAX_SMALL_BATCH:
            return None
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.7,
            summary=f"batch normalisation with training batches of {size}",
            recommendation=f"Batch normalisation sees batches of only {size} samples: use larger batches, or replace "
            "BatchNorm with `nn.GroupNorm`/`nn.LayerNorm`, which do not depend on the batch.",
            evidence=[
                Evidence(
                    "batchnorm_batch_size",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {"median_batch_size": size, "normalization": norms},
                )
            ],
        )
