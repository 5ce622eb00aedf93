"""What the DataLoaders say about the data: dataset size, batch size, batches per epoch,
whether the sampler shuffles, how often each loader is iterated (epochs).

Fed through the probe interface (`on_loader_iter`) from a thin wrapper around
`torch.utils.data.DataLoader.__iter__` (in `recorder/patches.py`): one Python call per epoch,
never per batch. The wrapper reads attributes only and returns the loader's own iterator
untouched.

Which loader trains: a loader whose iteration starts with autograd on and the model (when
known) in training mode; evaluation loops start with `model.eval()` or under
`torch.no_grad()`. This is a heuristic: a validation loop written without either looks like
training (then the one iterated over more batches per epoch is taken as the training loader).

Loaders iterated before the session exists (the first epoch always starts before the first
optimizer step) are seen by the recorder's early probe, which the next session adopts (as the
loss probe's first calls are).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import Probe

#: loaders remembered per run (a run normally has two or three)
MAX_LOADERS = 16


def loader_facts(loader: Any) -> dict[str, Any]:
    """Dataset size, batch size, batches per epoch, shuffling and drop_last of a DataLoader, and
    for a WeightedRandomSampler how many indices it draws from; each left out when the loader
    cannot tell (iterable datasets, custom batch samplers)."""
    facts: dict[str, Any] = {"dataset": type(getattr(loader, "dataset", None)).__name__}
    try:
        facts["dataset_size"] = int(len(loader.dataset))
    except Exception:  # noqa: BLE001 - IterableDataset and friends have no length
        pass
    bs = getattr(loader, "batch_size", None)
    if bs is None:
        bs = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    if isinstance(bs, int):
        facts["batch_size"] = bs
    try:
        facts["batches_per_epoch"] = int(len(loader))
    except Exception:  # noqa: BLE001
        pass
    sampler = getattr(loader, "sampler", None)
    # DataLoader(batch_sampler=BatchSampler(WeightedRandomSampler(...), ...)): the loader's own sampler is
    # then an unused SequentialSampler; the one drawing the indices is the batch sampler's
    inner = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    if isinstance(inner, torch.utils.data.Sampler) and inner is not sampler:
        sampler = inner
    facts["sampler"] = type(sampler).__name__
    facts["shuffle"] = isinstance(sampler, torch.utils.data.RandomSampler)
    # how many dataset indices a WeightedRandomSampler (or a subclass) can draw: 0..len(weights)-1, so
    # one weight per class instead of per sample feeds those few samples only
    if isinstance(sampler, torch.utils.data.WeightedRandomSampler):
        try:
            facts["sampler_population"] = int(len(sampler.weights))
        except Exception:  # noqa: BLE001 - a sampler's own attributes are not ours to trust
            pass
    facts["drop_last"] = bool(getattr(loader, "drop_last", False))
    return facts


class LoaderProbe(Probe):
    """The run's DataLoaders; `summary()["train"]` is the one taken as the training loader."""

    name = "data_loader"

    def __init__(self) -> None:
        self.loaders: list[dict[str, Any]] = []
        self._refs: list[weakref.ref | None] = []
        self.root = None  # the model, once known (before that, autograd alone tells training)

    def attach(self, model) -> None:
        self.root = model.root

    def on_loader_iter(self, loader: Any) -> None:
        root = self.root
        training = torch.is_grad_enabled() and (root is None or root.training)
        observe_into(self.loaders, self._refs, loader, training)

    def summary(self) -> dict[str, Any]:
        if not self.loaders:
            return {}
        out: dict[str, Any] = {"loaders": self.loaders}
        train = [entry for entry in self.loaders if entry.get("training_iterations")]
        if train:
            out["train"] = max(train, key=lambda e: (e.get("batches_per_epoch", 0), e["iterations"]))
        return out


def observe_into(loaders: list[dict[str, Any]], refs: list, loader: Any, training: bool) -> None:
    for i, ref in enumerate(refs):
        if ref is not None and ref() is loader:
            entry = loaders[i]
            break
    else:
        if len(loaders) >= MAX_LOADERS:
            return
        entry = {**loader_facts(loader), "iterations": 0, "training_iterations": 0}
        loaders.append(entry)
        try:
            refs.append(weakref.ref(loader))
        except TypeError:
            refs.append(None)
    entry["iterations"] += 1
    entry["training_iterations"] += int(training)
