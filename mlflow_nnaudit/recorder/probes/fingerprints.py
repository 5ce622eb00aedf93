"""Batch fingerprints: is the same batch fed again and again?

The data probe hands the model's input batch here on the first `EARLY_BATCHES` training
forward passes (a loader that repeats its batch does so from the start) and on sampled
training steps. A fingerprint
is the batch's shape plus 16 values read at evenly spaced positions of the flattened batch:
a copy of 16 numbers per sampled step, kept on the batch's device until the summary (no
sync during training). Two different batches of real data essentially never agree on all 16
values; the same batch always does. The summary reports how many distinct fingerprints the
sampled batches had and the share of the most common one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import as_real

#: values read per batch
POINTS = 16
#: sampled batches fingerprinted per run (memory stays flat on long runs)
MAX_BATCHES = 500
#: training batches always fingerprinted at the start of a run
EARLY_BATCHES = 8


class BatchFingerprints:
    def __init__(self) -> None:
        self._prints: list[tuple[tuple[int, ...], torch.Tensor]] = []

    def wants_early(self) -> bool:
        return len(self._prints) < EARLY_BATCHES

    def add(self, x: torch.Tensor) -> None:
        if len(self._prints) >= MAX_BATCHES or x.numel() == 0:
            return
        flat = as_real(x.detach()).reshape(-1)
        idx = torch.linspace(0, flat.numel() - 1, POINTS, device=flat.device).long()
        self._prints.append((tuple(x.shape), flat[idx].float().clone()))

    def summary(self) -> dict[str, Any]:
        if not self._prints:
            return {}
        keys = [(shape, tuple(round(v, 6) for v in values.cpu().tolist())) for shape, values in self._prints]
        counts = Counter(keys)
        return {
            "sampled_batches": len(keys),
            "distinct": len(counts),
            "most_common_share": max(counts.values()) / len(keys),
        }
