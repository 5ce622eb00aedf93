"""What the model is fed: per-feature statistics of its input batches, in training and in
evaluation, and the batch size.

Fed through the probe interface (`on_input`) from a forward pre-hook on the model's root
module (one Python call per forward pass);
statistics are taken on the first FIRST_TRAIN_BATCHES training batches the model is seen
to run, then only on sampled training steps, and on the first batches of each evaluation,
and stay tensors until the summary is asked for. Features are the input's
dimension 1 (columns of a [N, F] table, channels of a [N, C, H, W] image), of the first
tensor argument of the forward call; integer inputs (token ids, categorical codes) are skipped,
and a model called with ids and then a float [N, F] table is read on the table (`_table_beside`).
"""

from __future__ import annotations

from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import Probe, as_real
from mlflow_nnaudit.recorder.probes.fingerprints import BatchFingerprints

#: at most this many features are tracked (the rest of a very wide input is ignored)
MAX_FEATURES = 4096
#: evaluation batches summarised per evaluation: a different pair in each evaluation, taken in turn
#: through the longest evaluation seen so far (a validation loader is seldom shuffled, and one stored
#: class by class, as an ImageFolder lists it, would show only its first classes in its first batches:
#: their colours then read as a preprocessing difference)
EVAL_BATCHES = 2
#: training batches summarised whether their step is sampled or not, from the first one the model
#: is seen to run: a run of a few steps (a batch larger than the dataset, ten epochs, ten steps)
#: may end before its first sampled step, and a rule that needs a few batches to call a feature
#: constant should not depend on how the sampling budget fell (a fixed cost of three batches)
FIRST_TRAIN_BATCHES = 3


class _RunningStats:
    """Per-feature running min/max/mean/mean-of-squares and the non-finite count, as tensors."""

    def __init__(self) -> None:
        self.n = 0
        self.min: torch.Tensor | None = None
        self.max: torch.Tensor | None = None
        self.sum: torch.Tensor | None = None
        self.sqsum: torch.Tensor | None = None
        self.nonfinite: torch.Tensor | None = None
        self.values = 0
        self.batch_sizes: list[int] = []

    def add(self, x: torch.Tensor) -> None:
        x = as_real(x.detach())
        if x.dim() < 2:
            x = x.reshape(-1, 1)
        feats = min(int(x.shape[1]), MAX_FEATURES)
        flat = x[:, :feats].transpose(0, 1).reshape(feats, -1).float()  # [F, samples]
        finite = torch.isfinite(flat)
        clean = torch.where(finite, flat, torch.zeros((), device=flat.device))
        big = torch.finfo(torch.float32).max
        bmin = torch.where(finite, flat, torch.full((), big, device=flat.device)).amin(dim=1)
        bmax = torch.where(finite, flat, torch.full((), -big, device=flat.device)).amax(dim=1)
        count = flat.shape[1]
        s, sq, bad = clean.sum(dim=1), (clean * clean).sum(dim=1), (~finite).sum(dim=1)  # bad: per feature
        if self.sum is None or self.sum.shape != s.shape:
            self.min, self.max, self.sum, self.sqsum, self.nonfinite = bmin, bmax, s, sq, bad
            self.values = count
        else:
            self.min = torch.minimum(self.min, bmin)
            self.max = torch.maximum(self.max, bmax)
            self.sum, self.sqsum, self.nonfinite = self.sum + s, self.sqsum + sq, self.nonfinite + bad
            self.values += count
        self.n += 1
        if len(self.batch_sizes) < 1000:  # enough for a median; memory stays flat on long runs
            self.batch_sizes.append(int(x.shape[0]))

    def summary(self) -> dict[str, Any] | None:
        if self.sum is None or self.values == 0:
            return None
        mean = self.sum / self.values
        std = (self.sqsum / self.values - mean * mean).clamp_min(0).sqrt()
        constant = self.max <= self.min
        nonconst_std = std[~constant]
        sizes = sorted(self.batch_sizes)
        return {
            "batches": self.n,
            "features": int(mean.numel()),
            "median_batch_size": sizes[len(sizes) // 2],
            "nonfinite_share": float(self.nonfinite.sum()) / float(self.values * mean.numel()),
            # features NaN/Inf in every value seen (a constant column standardised by its zero std: 0 / 0)
            "nonfinite_features": int((self.nonfinite >= self.values).sum()),
            "constant_features": int(constant.sum()),
            "median_abs_mean": float(mean.abs().median()),
            "median_std": float(std.median()),
            "max_abs": float(torch.maximum(self.max.abs(), self.min.abs()).max()),
            "std_ratio": float(nonconst_std.max() / nonconst_std.min().clamp_min(1e-12)) if len(nonconst_std) else 1.0,
            "feature_mean": [round(float(v), 6) for v in mean[:64]],
            "feature_std": [round(float(v), 6) for v in std[:64]],
        }


def _table_beside(a: Any, ids: torch.Tensor) -> bool:
    """A plain float [N, F] table passed after integer ids of the same N (`model(cat_ids, counts)`): not a
    mask aligned with the ids (their shape) or over a sequence ([S, S]: the nn.Transformer tutorial's
    `model(data, src_mask)`), not an RNN's [layers, N, H] hidden state, nor a sparse or nested tensor."""
    if not isinstance(a, torch.Tensor) or not a.is_floating_point() or a.layout != torch.strided or a.is_nested:
        return False
    return a.dim() == 2 and a.shape[0] == ids.shape[0] and a.shape[0] != a.shape[1] and a.shape != ids.shape


class DataProbe(Probe):
    """Input statistics of training batches (sampled steps) and evaluation batches."""

    name = "inputs"

    def __init__(self) -> None:
        self.train = _RunningStats()
        self.eval = _RunningStats()
        self._eval_batches_this_phase = 0  # evaluation forwards seen in the current evaluation
        self._eval_phases = 0  # evaluations that began (a training forward ends one)
        self._eval_longest = 0  # the most evaluation forwards one evaluation has had
        self._train_forwards = 0  # training forwards seen (the first FIRST_TRAIN_BATCHES are summarised)
        self.fingerprints = BatchFingerprints()  # repeated batches (sampled training steps)

    def on_input(self, args: tuple, evaluating: bool, sampled: bool) -> None:
        if not evaluating:
            if self._eval_batches_this_phase:
                self._eval_phases += 1
                self._eval_longest = max(self._eval_longest, self._eval_batches_this_phase)
            self._eval_batches_this_phase = 0
            first = self._train_forwards < FIRST_TRAIN_BATCHES
            self._train_forwards += 1
            if not sampled and not first:  # the common case, kept cheap: a training forward not sampled
                if self.fingerprints.wants_early():
                    x = next((a for a in args if isinstance(a, torch.Tensor)), None)
                    if x is not None and x.dim() > 0:
                        self.fingerprints.add(x)
                return
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is None or x.dim() == 0 or x.numel() == 0:
            return
        if not evaluating and (x.is_floating_point() if sampled else self.fingerprints.wants_early()):
            self.fingerprints.add(x)  # as on an ordinary step (any dtype among the first batches)
        if not x.is_floating_point():  # ids first, then the features (a CTR model's `model(cat_ids, counts)`)
            x = next((a for a in args if _table_beside(a, x)), None)
            if x is None or x.numel() == 0:
                return
        with torch.no_grad():
            if not evaluating:
                self.train.add(x)
            else:
                if self._eval_wanted(self._eval_batches_this_phase):
                    self.eval.add(x)
                self._eval_batches_this_phase += 1

    def _eval_wanted(self, i: int) -> bool:
        """Whether the i-th forward of this evaluation is summarised: positions 2k and 2k+1 of the k-th
        evaluation, counted around the longest evaluation seen before it (the first: its first two)."""
        span = self._eval_longest
        if span <= EVAL_BATCHES:
            return i < EVAL_BATCHES
        return i < span and (i - EVAL_BATCHES * self._eval_phases) % span < EVAL_BATCHES

    def summary(self) -> dict[str, Any]:
        out = {}
        for name, stats in (("train", self.train), ("eval", self.eval)):
            s = stats.summary()
            if s is not None:
                out[name] = s
        prints = self.fingerprints.summary()
        if prints:
            out["fingerprints"] = prints
        return out
