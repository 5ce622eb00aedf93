"""What the DataLoaders say about the data: dataset size, batch size, batches per epoch,
whether the sampler shuffles, how often each loader is iterated (epochs).

Fed by a thin wrapper around `torch.utils.data.DataLoader.__iter__` (installed with the
recorder's other hooks, `install_loader_hooks`): one Python call per epoch, never per batch.
The wrapper reads attributes only and returns the loader's own iterator untouched.

Which loader trains: a loader whose iteration starts with autograd on and the model (when
known) in training mode; evaluation loops start with `model.eval()` or under
`torch.no_grad()`. This is a heuristic: a validation loop written without either looks like
training (then the one iterated over more batches per epoch is taken as the training loader).

Loaders iterated before the session exists (the first epoch always starts before the first
optimizer step) are kept in a small module-level list that the next session's probe adopts.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import Probe

#: loaders remembered per run (a run normally has two or three)
MAX_LOADERS = 16
_pending: list[dict[str, Any]] = []


def loader_facts(loader: Any) -> dict[str, Any]:
    """Dataset size, batch size, batches per epoch, shuffling and drop_last of a DataLoader,
    each left out when the loader cannot tell (iterable datasets, custom batch samplers)."""
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
    facts["sampler"] = type(sampler).__name__
    facts["shuffle"] = isinstance(sampler, torch.utils.data.RandomSampler)
    facts["drop_last"] = bool(getattr(loader, "drop_last", False))
    return facts


class LoaderProbe(Probe):
    """The run's DataLoaders; `summary()["train"]` is the one taken as the training loader."""

    name = "data_loader"

    def __init__(self) -> None:
        self.loaders: list[dict[str, Any]] = []
        self._refs: list[weakref.ref | None] = []
        self.root = None
        while _pending:  # loaders iterated before this session started belong to it
            entry = _pending.pop(0)
            self._refs.append(entry.pop("_ref"))
            self.loaders.append(entry)

    def attach(self, model) -> None:
        self.root = model.root

    def observe_iter(self, loader: Any, training: bool) -> None:
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


def _on_iter(loader: Any) -> None:
    from mlflow_nnaudit.recorder.config import current_config
    from mlflow_nnaudit.recorder.hooks import RECORDER  # late: hooks imports this module

    if current_config() is None:
        return
    session = RECORDER.session
    probe = None if session is None else next((p for p in session.probes if isinstance(p, LoaderProbe)), None)
    root = probe.root if probe is not None else None
    training = torch.is_grad_enabled() and (root is None or root.training)
    if probe is not None:
        probe.observe_iter(loader, training)
    elif session is None and len(_pending) < MAX_LOADERS:
        if not any(e["_ref"]() is loader for e in _pending):
            entry = {**loader_facts(loader), "iterations": 0, "training_iterations": 0, "_ref": weakref.ref(loader)}
            _pending.append(entry)
        else:
            entry = next(e for e in _pending if e["_ref"]() is loader)
        entry["iterations"] += 1
        entry["training_iterations"] += int(training)


_installed: dict[str, Any] = {}


def install_loader_hooks() -> None:
    """Wrap `DataLoader.__iter__` once (subclasses that override `__iter__` and call super()
    are seen too)."""
    if _installed:
        return
    from torch.utils.data import DataLoader

    original = DataLoader.__iter__

    @functools.wraps(original)
    def __iter__(self):
        try:
            _on_iter(self)
        except Exception:  # noqa: BLE001 - never raise into training
            pass
        return original(self)

    __iter__.__nnaudit_original__ = original
    DataLoader.__iter__ = __iter__
    _installed["iter"] = original


def uninstall_loader_hooks() -> None:
    from torch.utils.data import DataLoader

    original = _installed.pop("iter", None)
    if original is not None and getattr(DataLoader.__iter__, "__nnaudit_original__", None) is original:
        DataLoader.__iter__ = original
    _pending.clear()
