"""`class_imbalance`: one class far outnumbers another in the training labels."""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class ClassImbalance(Rule):
    """The recorder counts the class labels fed to the classification loss on sampled
    batches. Reported when the most common class outnumbers the rarest class that occurs at
    least 10 to 1 (classes that never occur are not counted). Not decided when the batches arrive sorted by label (see `data_not_shuffled`):
    batches sampled at regular steps from a sorted stream give a biased histogram."""

    cause = "class_imbalance"
    explained_by = ("data_not_shuffled",)
    reads = (("loss", "label_counts"),)

    #: the most common class outnumbers the rarest present class this many times
    RATIO = 10.0
    #: labels counted before the histogram means anything
    MIN_LABELS = 50

    def applies(self, view: RunView) -> bool:
        """Not on token-id labels (a language model): a Zipf-shaped histogram is what text is."""
        return not view.token_id_labels()

    def evaluate(self, view: RunView) -> Finding | None:
        counts = view.fact("loss", "label_counts")
        if not isinstance(counts, list) or len(counts) < 2 or sum(counts) < self.MIN_LABELS:
            return None
        c = np.asarray(counts, dtype=float)
        present = c[c > 0]
        share = c.max() / c.sum()
        ratio = c.max() / present.min() if len(present) else math.inf
        if ratio < self.RATIO:
            return None
        top = int(np.argmax(c))
        return self.finding(
            confidence="high",
            severity="warning",
            score=min(1.0, share),
            summary=f"class {top} makes up {share:.0%} of the sampled labels ({ratio:.0f}x the rarest class)",
            recommendation=f"Class {top} makes up {share:.0%} of the training labels: weight the loss "
            "(`nn.CrossEntropyLoss(weight=...)` with inverse class frequencies) or resample "
            "(`torch.utils.data.WeightedRandomSampler`), and judge the model by per-class recall or F1, not accuracy.",
            evidence=[
                Evidence(
                    "label_histogram",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {"label_counts": counts, "max_share": share, "max_to_min_ratio": ratio},
                )
            ],
        )
