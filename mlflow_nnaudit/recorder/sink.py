"""The only part of the recorder that talks to MLflow: buffers metrics and writes them in
batches, so that training pays for a database write every few seconds, not every step."""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from mlflow_nnaudit.schema import METRIC_PREFIX  # the sink adds it to every key

_BATCH = 1000  # MLflow's log_batch takes at most 1000 metrics per call
#: buffered points kept at most while the store cannot be written (memory stays flat)
MAX_BUFFERED = 200_000
#: a flush is due at this many buffered points, however long `flush_every_seconds` is
FLUSH_AT_POINTS = 20_000
#: what writing one metric point is assumed to cost before a flush has measured it (MLflow's
#: sqlite store takes ~70-100 us a point in `log_batch`; a tracking server less per point)
PRIOR_SECONDS_PER_POINT = 1e-4
#: flushes smaller than this do not update the measured cost (the per-call cost dominates them)
MEASURE_FROM_POINTS = 200


def to_floats(values: list[Any]) -> list[float]:
    """Turn buffered values (floats or 0-d tensors, possibly on an accelerator) into floats with
    as few device synchronisations as possible: one stack-and-copy per device and dtype (a
    flush holds thousands of losses; a per-value conversion would cost microseconds each)."""
    out: list[float | None] = [None] * len(values)
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, (int, float)):
            out[i] = float(v)
        else:
            groups.setdefault((v.device, v.dtype, v.dim() == 0), []).append(i)
    if groups:
        import torch

        for (_, _, scalar), idx in groups.items():
            parts = [values[i] for i in idx] if scalar else [values[i].reshape(()) for i in idx]
            with torch.no_grad():
                floats = torch.stack(parts).double().cpu().tolist()
            for i, f in zip(idx, floats):
                out[i] = f
    return out  # type: ignore[return-value]


class MlflowSink:
    """Buffered writes of `nnaudit/` metrics, params and tags into one run."""

    def __init__(self, run_id: str, client=None) -> None:
        from mlflow.tracking import MlflowClient

        self.run_id = run_id
        self.client = client or MlflowClient()
        self._keys: list[str] = []
        self._values: list[Any] = []
        self._steps: list[int] = []
        self._stamps: list[int] = []
        self._last_flush = time.monotonic()
        self._backlog = 0  # points a failed flush left behind (the count trigger waits for new ones)
        self.dropped = 0
        #: measured wall time of writing one point (smoothed over flushes): the recorder spends
        #: its write budget by this figure (how many losses go into one point, how often to sample)
        self.seconds_per_point = PRIOR_SECONDS_PER_POINT

    def add(self, key: str, value: Any, step: int, timestamp_ms: int | None = None) -> None:
        if len(self._keys) >= MAX_BUFFERED:
            self.dropped += 1
            return
        self._keys.append(METRIC_PREFIX + key)
        self._values.append(value)
        self._steps.append(step)
        self._stamps.append(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))

    def due(self, every_seconds: float, also_waiting: int = 0) -> bool:
        """Is a flush due: `every_seconds` passed, or too many points wait (counting
        `also_waiting` points the caller holds for this sink)?"""
        waiting = len(self._keys) + also_waiting
        if not waiting:
            return False
        return waiting >= FLUSH_AT_POINTS + self._backlog or time.monotonic() - self._last_flush >= every_seconds

    @property
    def buffered(self) -> int:
        """Points waiting for the next flush."""
        return len(self._keys)

    def flush(self) -> None:
        """Write everything buffered. On failure the buffer is kept for the next try."""
        self._last_flush = time.monotonic()
        if not self._keys:
            return
        try:
            t0 = time.perf_counter()
            values = to_floats(self._values)
            metrics = [Metric(k, v, t, s) for k, v, t, s in zip(self._keys, values, self._stamps, self._steps)]
            for i in range(0, len(metrics), _BATCH):
                self.client.log_batch(self.run_id, metrics=metrics[i : i + _BATCH], synchronous=True)
                # drop what was written, so that a failure half-way does not write it twice
                del self._keys[:_BATCH], self._values[:_BATCH], self._steps[:_BATCH], self._stamps[:_BATCH]
            if len(metrics) >= MEASURE_FROM_POINTS:
                measured = (time.perf_counter() - t0) / len(metrics)
                self.seconds_per_point = 0.5 * self.seconds_per_point + 0.5 * measured
        finally:
            self._backlog = len(self._keys)

    def log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        if items:
            self.client.log_batch(self.run_id, params=items, synchronous=True)

    def set_tags(self, tags: dict[str, Any]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        if items:
            self.client.log_batch(self.run_id, tags=items, synchronous=True)
