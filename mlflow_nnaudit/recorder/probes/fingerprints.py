"""Batch fingerprints: is the same batch fed again and again?

The data probe hands the model's input batch here on the first `EARLY_BATCHES` training
forward passes (a loader that repeats its batch does so from the start) and on sampled
training steps. A fingerprint
is the batch's shape plus 16 values read at evenly spaced positions of the flattened batch:
a copy of 16 numbers per sampled step, kept on the batch's device until the summary (no
sync during training). Two different batches of real data essentially never agree on all 16
values; the same batch always does. The summary reports how many distinct fingerprints the
sampled batches had and the share of the most common one, and how the first `EARLY_BATCHES`
(consecutive training forwards) followed each other: the share of them that repeated the batch
just before (a loader bug feeds the same batch step after step), and, when they went round a
fixed cycle of two or more distinct batches, its length and its samples (a training set of a few
batches fed in the same order every epoch: repeats across epochs are its design, and the cycle
is the training set's size).
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
#: training batches always fingerprinted at the start of a run (consecutive forwards: a cycle of
#: up to 8 batches shows twice among them)
EARLY_BATCHES = 16


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
        out: dict[str, Any] = {
            "sampled_batches": len(keys),
            "distinct": len(counts),
            "most_common_share": max(counts.values()) / len(keys),
        }
        early = keys[:EARLY_BATCHES]
        if len(early) >= 2:
            out["consecutive_repeats"] = sum(a == b for a, b in zip(early, early[1:])) / (len(early) - 1)
        period = _cycle(early)
        if period is not None:
            out["cycle_batches"] = period
            out["cycle_samples"] = sum(shape[0] if shape else 1 for shape, _ in early[:period])
        return out


def _cycle(keys: list) -> int | None:
    """The length k >= 2 of the cycle the fingerprints go round (k distinct batches, then the
    same k again in the same order), when the list holds at least one full repeat of it; None
    when there is no such cycle (a batch fed twice in a row, or no batch seen again)."""
    for k in range(2, len(keys) // 2 + 1):
        if len(set(keys[:k])) == k and all(keys[i] == keys[i - k] for i in range(k, len(keys))):
            return k
    return None
