"""The only part of the recorder that talks to MLflow: buffers metrics and hands them, in
batches, to a background writer thread, so that a training step never waits on the store.

Training pays for turning buffered values into floats every few seconds; the writes
themselves (and, against a remote store, creating the run the recorder starts) happen on the
writer thread. Its queue is bounded: while the store does not answer, what does not fit is
dropped and counted, never waited for. When a run ends the writer gets a bounded time to
catch up (it must keep making progress); what is still unwritten then is reported as lost, in
one warning, and as the run's `nnaudit.recorder.lost_points` tag once the store answers again.
The other writes (the run's tags, params, the diagnostics artifact) carry no points but are
never lost silently either: one that failed all its attempts is tried once more when the run
ends (they can be written twice without harm), and what the store still does not take then is
named in a warning of its own.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from mlflow.entities import Metric, Param, RunTag

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.config import RecorderConfig, describe, warn

METRIC_PREFIX = schema.METRIC_PREFIX
_BATCH = 1000  # MLflow's log_batch takes at most 1000 metrics per call
#: buffered points kept at most while the store cannot be written (memory stays flat)
MAX_BUFFERED = 200_000
#: metric points queued for the writer at most; a flush that does not fit is dropped (and counted)
MAX_QUEUED = 200_000
#: a flush is due at this many buffered points, however long `flush_every_seconds` is
FLUSH_AT_POINTS = 20_000
#: what writing one metric point is assumed to cost before a flush has measured it (MLflow's
#: sqlite store takes ~70-100 us a point in `log_batch`; a tracking server less per point)
PRIOR_SECONDS_PER_POINT = 1e-4
#: flushes smaller than this do not update the measured cost (the per-call cost dominates them)
MEASURE_FROM_POINTS = 200
#: when a run ends, the writer may go on writing while it makes progress, but no single write
#: may take longer than this (MLflow's HTTP client retries for minutes against a dead server)
CLOSE_STALL_SECONDS = 5.0
#: a run the recorder starts against a remote store is given up when not created within this time
RUN_START_SECONDS = 20.0
#: a write that failed is tried this many times in all before its points are counted as lost
MAX_ATTEMPTS = 3
TAG_LOST_POINTS = schema.TAG_RECORDER_LOST_POINTS
#: stores on this machine's disk: the recorder starts its run on them as `mlflow.start_run()` does
#: (nothing there waits on a network); anywhere else the run is created on the writer thread
LOCAL_SCHEMES = ("sqlite", "file", "")


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


def store_is_local(tracking_uri: str) -> bool:
    """Is this tracking URI a store on this machine's disk (sqlite, a file store, a path)?"""
    scheme = (
        tracking_uri.split(":", 1)[0].lower()
        if "://" in tracking_uri or tracking_uri.startswith(("sqlite:", "file:"))
        else ""
    )
    return scheme in LOCAL_SCHEMES


class RunStart:
    """A run the recorder starts itself (no run was active at the first step), created on the
    writer thread as `mlflow.start_run()` would create it (same experiment, same context tags).

    MLflow's active run is per thread: the run becomes the training thread's active run
    (so that the user's own `mlflow.log_metric` calls land in it, as with MLflow's autologgers)
    only when that thread calls `activate()` after creation succeeded; never earlier."""

    def __init__(self) -> None:
        self.run = None  # mlflow.entities.Run once created
        self.error: BaseException | None = None
        self.began = time.monotonic()
        self.activated = False
        self.given_up = False
        #: the training thread (made on its first step): only it may make the run active
        self.thread = threading.get_ident()

    def create(self, client):
        """On the writer thread: create the run (the store may take long, or never answer)."""
        import mlflow.tracking.fluent as fluent
        from mlflow.tracking.context import registry as context_registry

        experiment_id = fluent._get_experiment_id()
        return client.create_run(experiment_id=experiment_id, tags=context_registry.resolve_tags({}))

    def deactivate(self) -> bool:
        """On the training thread: take this run off the active-run stack if it is on top."""
        import mlflow.tracking.fluent as fluent

        stack = getattr(fluent, "_active_run_stack", None)
        stack = stack.get() if stack is not None else None
        if stack and self.run is not None and stack[-1].info.run_id == self.run.info.run_id:
            stack.pop()
            return True
        return False

    @property
    def pending(self) -> bool:
        """Neither made active nor given up yet."""
        return not (self.activated or self.given_up)

    def activate(self, config: RecorderConfig | None):
        """On the training thread: once the run exists, make it the active MLflow run and return
        it; give up (one warning) when creation failed or takes longer than RUN_START_SECONDS.
        Returns None while waiting and after giving up."""
        if not self.pending:
            return None
        run = self.run
        if run is not None:
            import mlflow
            import mlflow.tracking.fluent as fluent

            stack = getattr(fluent, "_active_run_stack", None)
            stack = stack.get() if stack is not None else None
            if stack:
                return None  # another run became active meanwhile: the caller follows that one
            self.activated = True
            if stack is None:  # an MLflow without the thread-local stack: its own way (one call to the store)
                return mlflow.start_run(run_id=run.info.run_id)
            stack.append(fluent.ActiveRun(run))
            return stack[-1]
        waited = time.monotonic() - self.began
        if self.error is not None or waited > RUN_START_SECONDS:
            self.given_up = True
            reason = (
                f"{type(self.error).__name__}: {self.error}"
                if self.error is not None
                else (f"no answer in {RUN_START_SECONDS:.0f} s")
            )
            warn(
                config,
                f"could not start an MLflow run ({reason}); training goes on, this run's evidence is not recorded",
            )
        return None


def _refused(exc: BaseException) -> bool:
    """Did the store answer and refuse the write (a bad value, a param already set otherwise)?
    Trying again cannot help then; any other error (no answer, a locked database) may pass."""
    code = getattr(exc, "error_code", None)
    return code in ("INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST", "RESOURCE_DOES_NOT_EXIST")


class MlflowSink:
    """Buffered writes of `nnaudit/` metrics, params and tags into one run, through a
    background writer thread (see the module docstring)."""

    def __init__(
        self, run_id: str | None, client=None, start: RunStart | None = None, config: RecorderConfig | None = None
    ) -> None:
        import mlflow

        self.run_id = run_id
        self.start = start  # set when the writer must create the run first (run_id is None until then)
        self.config = config
        self._client = client
        self._tracking_uri = mlflow.get_tracking_uri() if client is None else None
        self._keys: list[str] = []
        self._values: list[Any] = []
        self._steps: list[int] = []
        self._stamps: list[int] = []
        self._last_flush = time.monotonic()
        self.dropped = 0  # points lost: buffer or queue full, failed writes, unwritten at close
        #: the other writes lost (tags, params, artifacts, the run's end), as `_describe` names them
        self.lost_writes: dict[str, None] = {}
        #: writes without points that failed every attempt although the store did not refuse them:
        #: tried again when the run ends (writer side, guarded by `_cond`)
        self._unwritten: list[tuple[str, Any]] = []
        #: measured wall time of writing one point (smoothed over writes): the recorder spends
        #: its write budget by this figure (how many losses go into one point, how often to sample)
        self.seconds_per_point = PRIOR_SECONDS_PER_POINT
        # the writer thread's side; everything below is guarded by `_cond`
        self._cond = threading.Condition()
        self._jobs: collections.deque = collections.deque()
        self._queued_points = 0
        self._busy_since: float | None = None  # when the job being written began (None: idle)
        self._busy_points = 0
        self._busy_job: tuple[str, Any] | None = None  # (kind, payload) being written
        self._last_progress = 0.0  # when the writer last finished a job
        self._closed = False  # no more jobs; the writer ends once the queue is done
        self._abandoned = False  # the writer drops what is left instead of writing it
        self._thread: threading.Thread | None = None
        self._warned = False
        self.failing = False  # the last write failed (the store does not answer or refuses)

    # --- the training thread's side ----------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self._tracking_uri)
        return self._client

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
        return waiting >= FLUSH_AT_POINTS or time.monotonic() - self._last_flush >= every_seconds

    @property
    def buffered(self) -> int:
        """Points waiting for the next flush."""
        return len(self._keys)

    @property
    def queued(self) -> int:
        """Points handed to the writer and not written yet."""
        with self._cond:
            return self._queued_points + self._busy_points

    def flush(self) -> None:
        """Hand everything buffered to the writer (never waits for the store). Points that do not
        fit in the writer's queue are dropped and counted."""
        self._last_flush = time.monotonic()
        if not self._keys:
            return
        values = to_floats(self._values)
        metrics = [Metric(k, v, t, s) for k, v, t, s in zip(self._keys, values, self._stamps, self._steps)]
        self._keys, self._values, self._steps, self._stamps = [], [], [], []
        for i in range(0, len(metrics), _BATCH):
            self._put("metrics", metrics[i : i + _BATCH], len(metrics[i : i + _BATCH]))

    def log_params(self, params: dict[str, Any]) -> None:
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        if items:
            self._put("params", items)

    def set_tags(self, tags: dict[str, Any]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        if items:
            self._put("tags", items)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Write a text artifact (replacing a queued, not yet written, version of the same file)."""
        with self._cond:
            for job in list(self._jobs):
                if job[0] == "text" and job[1][1] == artifact_file:
                    self._jobs.remove(job)
            self._forget_unwritten_text(artifact_file)
        self._put("text", (text, artifact_file))

    def _forget_unwritten_text(self, artifact_file: str) -> None:
        """With `_cond` held: drop a failed earlier version of this file from the retries at the run's
        end (a newer version is queued or written; retrying the old one would overwrite it)."""
        self._unwritten = [j for j in self._unwritten if not (j[0] == "text" and j[1][1] == artifact_file)]

    def close(self, wait_seconds: float = CLOSE_STALL_SECONDS) -> int:
        """Flush, then let the writer finish while it makes progress (no write may stall longer
        than `wait_seconds`); what is left unwritten is dropped. Returns the points lost in all,
        after one warning saying how many (and a tag on the run, when the store takes it)."""
        self.flush()
        start = self.start
        if self._thread is None and not self._jobs:
            return self._report_lost()
        answered = self._wait_idle(wait_seconds)
        if answered and self.run_id is not None:
            last = False
            with self._cond:
                again, self._unwritten = (self._unwritten, []) if not self.failing else ([], self._unwritten)
            for kind, payload in again:  # failed earlier; the store answers now: one more try each
                self._put(kind, payload, attempts=MAX_ATTEMPTS - 1)
                last = True
            if self.dropped and not self.failing:
                self._put("tags", [RunTag(TAG_LOST_POINTS, str(self.dropped))])
                last = True
            if start is not None and not start.activated:
                self._put("end", "FINISHED")  # created, never made active: nobody else would end it
                last = True
            if last:
                answered = self._wait_idle(wait_seconds)
        if not answered:
            self.failing = True
            if start is not None:
                start.given_up = start.given_up or not start.activated  # a late creation ends it at once
                # MLflow's own end_run would wait for this store as long as its retries last
                start.deactivate()
        with self._cond:
            self._closed = True
            self._drop_jobs()
            self._cond.notify_all()
        return self._report_lost()

    def wait_for_run(self, seconds: float) -> None:
        """Wait at most `seconds` for the writer to create the run the recorder starts (or to
        fail to). Only for a caller that would wait for the store anyway (see
        `Recorder.activate_started_run`); training never calls it."""
        start = self.start
        if start is None:
            return
        until = time.monotonic() + max(seconds, 0.0)
        with self._cond:
            while start.run is None and start.error is None and not self._abandoned:
                left = until - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, 0.5))

    def _report_lost(self) -> int:
        where = f"run {self.run_id}" if self.run_id else "a run that could not be started"
        if self.dropped:
            warn(self.config, f"{self.dropped} metric points could not be written to {where} and were lost")
        if self.lost_writes:
            warn(self.config, f"{' and '.join(self.lost_writes)} could not be written to {where} and were lost")
        return self.dropped

    @staticmethod
    def _describe(kind: str, payload: Any) -> str:
        """A lost write without points, as the warning names it."""
        if kind in ("tags", "params"):
            return f"the {kind} " + ", ".join(item.key for item in payload)
        if kind == "text":
            return f"the artifact {payload[1]}"
        if kind == "end":
            return f"the run's end ({payload})"
        return f"the {kind}"

    def _lose(self, kind: str, payload: Any) -> None:
        """Count a write without points as lost (a run that was never created has nothing to lose)."""
        if kind != "metrics" and self.run_id is not None:
            self.lost_writes[self._describe(kind, payload)] = None

    def _drop_jobs(self) -> None:
        """With `_cond` held: the writer gives up; what is queued, being written or waiting to be
        tried again is counted as lost (a write in progress may still land: it is counted anyway)."""
        self._abandoned = True
        self.dropped += self._queued_points + self._busy_points
        self._queued_points = 0
        left = [(kind, payload) for kind, payload, _, _ in self._jobs] + self._unwritten
        if self._busy_job is not None:
            left.append(self._busy_job)
        for kind, payload in left:
            self._lose(kind, payload)
        self._jobs.clear()
        self._unwritten = []

    def _wait_idle(self, stall_seconds: float) -> bool:
        """Wait until the writer has nothing left; False when a write stalls past `stall_seconds`."""
        entered = time.monotonic()
        with self._cond:
            while self._jobs or self._busy_since is not None:
                if self.start is not None and not self.start.activated and self.run_id is None:
                    if self.start.given_up or self.start.error is not None:
                        return False  # the run was never created: nothing can be written
                # stalled since the write in progress began, or since the last one ended
                since = self._busy_since if self._busy_since is not None else max(self._last_progress, entered)
                left = since + stall_seconds - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def _put(self, kind: str, payload: Any, points: int = 0, attempts: int = 0) -> None:
        """Queue a write (`attempts`: tries it has had already, of MAX_ATTEMPTS)."""
        with self._cond:
            if self._abandoned or (points and self._queued_points + points > MAX_QUEUED):
                self.dropped += points
                if self._abandoned:
                    self._lose(kind, payload)
                return
            self._jobs.append((kind, payload, points, attempts))
            self._queued_points += points
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_loop, name="nnaudit-writer", daemon=True)
                self._thread.start()

    # --- the writer thread -------------------------------------------------------------------
    def _write_loop(self) -> None:
        try:
            self._write_jobs()
        except Exception as exc:  # noqa: BLE001 - a bug here must not print a thread traceback
            warn(self.config, f"the recorder's writer stopped ({describe(exc)})")
            with self._cond:
                self._drop_jobs()
                self._busy_since, self._busy_points, self._busy_job = None, 0, None
                self._cond.notify_all()

    def _write_jobs(self) -> None:
        if self.start is not None and self.run_id is None and not self._create_run():
            return
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs or self._abandoned:
                    return
                kind, payload, points, attempts = self._jobs.popleft()
                self._queued_points -= points
                self._busy_since, self._busy_points = time.monotonic(), points
                self._busy_job = (kind, payload)
            refused = False
            try:
                t0 = time.perf_counter()
                self._write(kind, payload)
                if points >= MEASURE_FROM_POINTS:
                    measured = (time.perf_counter() - t0) / points
                    self.seconds_per_point = 0.5 * self.seconds_per_point + 0.5 * measured
                self.failing = False
                retry = False
                if kind == "text":  # a newer version of a file written: an older one that failed is stale
                    with self._cond:
                        self._forget_unwritten_text(payload[1])
            except Exception as exc:  # noqa: BLE001 - the store's trouble must never reach training
                refused = _refused(exc)
                self.failing = not refused
                retry = not refused and attempts + 1 < MAX_ATTEMPTS
                if refused:
                    warn(self.config, f"the MLflow store refused {kind} ({type(exc).__name__}: {str(exc)[:300]})")
                else:
                    self._warn_once(exc)
            with self._cond:
                self._busy_since, self._busy_points, self._busy_job = None, 0, None
                self._last_progress = time.monotonic()
                if self._abandoned:
                    pass  # given up while this write was in progress: `_drop_jobs` counted it
                elif retry:
                    self._jobs.appendleft((kind, payload, points, attempts + 1))
                    self._queued_points += points
                elif self.failing or refused:
                    self.dropped += points
                    if refused:
                        self._lose(kind, payload)  # the store said no: trying again cannot help
                    elif kind != "metrics":
                        self._unwritten.append((kind, payload))  # tried again when the run ends
                self._cond.notify_all()
                if retry and not self._abandoned:
                    self._cond.wait(1.0 * (attempts + 1))  # a short pause before trying again

    def _create_run(self) -> bool:
        start = self.start
        with self._cond:
            self._busy_since = time.monotonic()
        try:
            run = start.create(self.client)
        except Exception as exc:  # noqa: BLE001
            start.error = exc
            self.failing = True
            with self._cond:
                self._busy_since = None
                self._abandoned = True
                self.dropped += self._queued_points
                self._jobs.clear()
                self._queued_points = 0
                self._cond.notify_all()
            return False
        run_id = run.info.run_id
        with self._cond:
            self._busy_since = None
            self.run_id = run_id  # before `start.run`: the training thread reads them in that order
            start.run = run
            self._cond.notify_all()
        if start.given_up:  # created after the training thread stopped waiting: nobody records into it
            try:
                self.client.set_terminated(run_id, "KILLED")
            except Exception:  # noqa: BLE001
                pass
            with self._cond:
                self._abandoned = True
                self._jobs.clear()
                self._queued_points = 0
            return False
        return True

    def _write(self, kind: str, payload: Any) -> None:
        client = self.client
        if kind == "metrics":
            client.log_batch(self.run_id, metrics=payload, synchronous=True)
        elif kind == "params":
            # a run resumed from a checkpoint (`start_run(run_id=...)`) already has them, and MLflow refuses a
            # changed value: the first values stay (the optimizer as the run started)
            have = client.get_run(self.run_id).data.params
            payload = [p for p in payload if p.key not in have]
            if payload:
                client.log_batch(self.run_id, params=payload, synchronous=True)
        elif kind == "tags":
            client.log_batch(self.run_id, tags=payload, synchronous=True)
        elif kind == "text":
            client.log_text(self.run_id, payload[0], payload[1])
        elif kind == "end":
            client.set_terminated(self.run_id, payload)

    def _warn_once(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            warn(
                self.config,
                f"could not write to the MLflow store ({type(exc).__name__}: {str(exc)[:300]}); "
                "training goes on, points the store does not take in time are dropped and counted",
            )
