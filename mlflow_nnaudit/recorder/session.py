"""One recording session = one MLflow run being trained into.

The session is the step clock (it counts optimizer steps, or hand-written ones), the sampling
budget (which steps are sampled for the costlier probes, so that they stay within
`max_probe_overhead`) and the buffers (the training loss of every step, averaged over windows
once past FULL_RESOLUTION_STEPS, and the probes' metrics) that it hands to the sink. It finds
the model behind the optimizer and feeds every probe through the probe interface
(`probes/base.py`); what is learned about the run is the probes' business. Every call into a
probe is guarded: a probe that raises is switched off with one warning, and training never
sees the exception.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
import weakref
from typing import Any

import numpy as np
import torch

from mlflow_nnaudit import schema
from mlflow_nnaudit._version import __version__
from mlflow_nnaudit.recorder.config import RecorderConfig, describe, warn
from mlflow_nnaudit.recorder.probes import DataProbe, ModelInfo, Probe, StepContext, default_probes
from mlflow_nnaudit.recorder.probes.base import overrides
from mlflow_nnaudit.recorder.probes.learning import LearningProbe
from mlflow_nnaudit.recorder.probes.loader import LoaderProbe
from mlflow_nnaudit.recorder.probes.loss import CHECK_FIRST_CALLS, LossProbe
from mlflow_nnaudit.recorder.probes.model import optimizer_facts
from mlflow_nnaudit.recorder.probes.moments import MomentProbe
from mlflow_nnaudit.recorder.sink import MAX_BUFFERED, MlflowSink, RunStart, to_floats

#: sampling never gets rarer than this, so that every run still gets its layer statistics
MAX_SAMPLE_INTERVAL = 200
#: optimizers other than the followed one counted at most (their steps are all counted)
MAX_OTHER_OPTIMIZERS = 8
#: steps of other optimizers in a row, the followed one not stepping, after which the session stops
#: sampling at its frozen step: another phase took over (a teacher trained, then its student; an
#: optimizer made anew), and each of its steps would otherwise be read as the same sampled step
ALONE_STEPS = 20
#: another optimizer's steps in a row, the followed one not stepping, that make it the one training
#: now: from then on the followed model's leftover gradients are not read as stale, and an optimizer
#: over exactly the followed parameters is followed instead (one made anew each epoch, say, for a new
#: learning rate: the same model, so nothing else changes). One step in between is a GAN's other side.
TAKEN_OVER_STEPS = 2
#: the training loss is logged at every step for this many steps (short runs and the start of
#: every run keep full resolution); after that, on steps too fast for the store, it is the mean
#: over windows of steps just long enough that writing it costs at most its share of
#: `max_probe_overhead` (see `_budget`; a window never spans more than MAX_SAMPLE_INTERVAL steps)
FULL_RESOLUTION_STEPS = 1000
#: whether a flush is due is asked every this many steps (not on every step: it reads the clock)
FLUSH_CHECK_EVERY = 8
#: the gradients left over from the last step are looked at before the backward pass of each of
#: the first this many steps (steps 1..5), then on sampled steps only: a loop that never calls
#: `optimizer.zero_grad()` is a definite bug that shows from step 1, and a tiny model's sampling
#: budget may reach only two or three sampled steps in a whole run (the same first-calls rule
#: as the loss checks, CHECK_FIRST_CALLS)
STALE_GRADS_FIRST_STEPS = CHECK_FIRST_CALLS
#: between sampled steps, the learning rate is logged again when it has moved this many times
#: away from the last value logged (up or down): a scheduler's step change (StepLR, a plateau
#: cut) shows on the step it happens, while a smooth per-step schedule costs at most a few points
#: per factor of 2 (it is seen on the sampled steps anyway)
LR_CHANGE_FACTOR = 2.0
#: the probe methods the session calls only on the probes that override them
_HOOKS = (
    "before_step",
    "after_step",
    "take_seconds",
    "on_parameters",
    "on_other_optimizer",
    "on_loss",
    "on_input",
    "on_before_backward",
    "on_before_clip",
    "on_clip",
    "on_loader_iter",
)


def _see_compiled_modules_first(find_root):
    """While the model is looked for with a global forward pre-hook, a module compiled with
    `torch.compile` (an `OptimizedModule`) would warn, in the user's run, that global hooks fire
    an extra time for it. So its call shows the compiled module's original to `find_root` first
    (which removes the global hook) and only then runs. Returns the undo, or None when torch's
    compiler was never imported (no compiled module exists yet)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    cls = getattr(eval_frame, "OptimizedModule", None)
    if cls is None:
        return None
    original = cls.__dict__.get("__call__")
    if original is None:
        return None

    @functools.wraps(original)
    def __call__(self, *args, **kwargs):
        inner = getattr(self, "_orig_mod", None)
        if inner is not None:
            find_root(inner, args)
        return original(self, *args, **kwargs)

    __call__.__nnaudit_original__ = original
    cls.__call__ = __call__

    def undo() -> None:
        if cls.__dict__.get("__call__") is __call__:
            cls.__call__ = original

    return undo


def _params_of(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """An optimizer's parameters, group after group."""
    return [p for g in optimizer.param_groups for p in g["params"]]


class _RootHook:
    """The session's forward pre-hook on the model's root module (`RunSession._on_root_forward`). It
    holds the session weakly, and a deep copy or a pickle of the model (`copy.deepcopy(model)` to keep
    the best weights, `AveragedModel`, `torch.save(model)`) carries `{}.get` in its place: a pre-hook
    that returns the inputs unchanged, needs nothing of this package to load, and never reaches the
    session (a bound method would copy the session and its lock, which raised in the user's loop)."""

    __slots__ = ("_session",)

    def __init__(self, session: RunSession) -> None:
        self._session = weakref.ref(session)

    def __call__(self, module: torch.nn.Module, args: tuple) -> None:
        session = self._session()
        if session is not None and session.model is not None and session.model.root is module:
            session._on_root_forward(module, args)

    def __reduce__(self):
        return (getattr, ({}, "get"))


class RunSession:
    """Records one run's training."""

    def __init__(
        self,
        run_id: str | None,
        config: RecorderConfig,
        started_run: bool = False,
        loss_probe: LossProbe | None = None,
        client=None,
        model_hint: torch.nn.Module | None = None,
        loader_probe: LoaderProbe | None = None,
        start: RunStart | None = None,
    ) -> None:
        self.config = config
        # run_id is None while `start` (a run the recorder starts) is being created by the writer
        self.sink = MlflowSink(run_id, client, start=start, config=config)
        self.model_hint = model_hint  # the model a framework says it trains (used if discovery fails)
        self.step = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.params: list[torch.Tensor] = []
        self.model: ModelInfo | None = None
        # the probes that watched the calls made before the session began (the first loss calls,
        # the first epoch's DataLoaders) go on in it; a loss probe of None already failed then
        # (see Recorder.on_loss)
        self.probes: list[Probe] = []
        for probe in default_probes():
            if isinstance(probe, LossProbe):
                probe = loss_probe
            elif isinstance(probe, LoaderProbe) and loader_probe is not None:
                probe = loader_probe
            if probe is not None:
                self.probes.append(probe)
        self.loss_probe: LossProbe | None = next((p for p in self.probes if isinstance(p, LossProbe)), None)
        self.moment_probe: MomentProbe | None = next((p for p in self.probes if isinstance(p, MomentProbe)), None)
        # what feeds this session (the recorder): its `loss_call` holds the (loss input, target) of
        # the step's last training loss call, for the moment probe
        self.feed: Any = None
        self._hooked: dict[str, list[Probe]] = {}
        self._index_probes()
        self._sampling = False
        self._next_sample = 0
        self._probe_seconds = 0.0  # cost of the probes on the last sampled step
        self._sample_points = 0  # metric points the last sampled step produced (each costs a write)
        self._hook_seconds = 0.0  # sampled work done in the session's own hooks since the last sample
        # training losses not yet written: (step, loss as a 0-d tensor or float, timestamp in ms)
        self._losses: list[tuple[int, Any, int]] = []
        self._step_seconds: float | None = None  # smoothed wall time of a step, probes excluded
        self._last_step_end: float | None = None
        self._discovery = None  # handle of the one-shot forward pre-hook that finds the model
        self._discovery_until: int | None = None  # the step after which discovery gives up
        self._param_count = 0  # parameters in the optimizer's groups when last read
        self._group_count = 0  # the optimizer's parameter groups when last read
        self.skipped_steps = 0  # steps a GradScaler skipped (inf/NaN gradients)
        # steps of optimizers other than the followed one (a GAN's generator, an actor-critic's
        # critic, a sparse embedding's SparseAdam), and how many came after a loss of their own
        self._other_optimizers: set[int] = set()
        #: the other optimizers whose parameters the probes were told of (`Probe.on_other_optimizer`), held weakly
        self._announced_others: weakref.WeakSet = weakref.WeakSet()
        self._other_steps = 0
        self._other_steps_own_loss = 0
        self._others_in_a_row = 0  # other optimizers' steps since the followed one's last
        self._followed: weakref.WeakSet = weakref.WeakSet()  # every optimizer followed so far (`_follow`)
        self._logged_lr: float | None = None  # the learning rate last logged (see `_log_lr_change`)
        self._root_hook = None  # the model's own forward pre-hook (inputs, arming activation hooks)
        self._diagnostics_written: str | None = None
        self.sink.set_tags(
            {
                schema.TAG_RECORDER_VERSION: __version__,
                **({schema.TAG_RECORDER_STARTED_RUN: "true"} if started_run else {}),
            }
        )

    @property
    def run_id(self) -> str | None:
        """The run recorded into (None while the run the recorder starts is not created yet)."""
        return self.sink.run_id

    @property
    def starting(self) -> bool:
        """The run this session records into is being started (on the writer thread): which run
        is active is checked at every step until it is made active or given up."""
        start = self.sink.start
        return start is not None and start.pending

    # --- optimizer steps --------------------------------------------------------------------
    def before_step(self, optimizer: torch.optim.Optimizer, defer_probes: bool = False) -> None:
        """An optimizer step begins. With `defer_probes` (a step with a closure) the gradients
        do not exist yet: `run_deferred_probes` is called once the closure has made them."""
        if self.optimizer is None:
            self._adopt(optimizer)
        if optimizer is not self.optimizer:
            return  # a second optimizer (a GAN's discriminator, say): the first one sets the clock
        self._sampling = self.step >= self._next_sample
        if self._sampling or len(optimizer.param_groups) != self._group_count:
            self._refresh_params(optimizer)
        if self._sampling and not defer_probes:
            self.run_deferred_probes(optimizer)

    def run_deferred_probes(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Gradients are ready and the weights not yet updated: the probes' first half."""
        if optimizer is not self.optimizer or not self._sampling:
            return
        t0 = time.perf_counter()
        self._sample_points = 0
        self._note_loss_call()
        self._run_probes("before_step", optimizer)
        # what this sample cost so far: the probes now, plus their work in the forward and
        # backward passes (input statistics, activation hooks, the stale-gradient check)
        spent = sum(probe.take_seconds() for probe in self._hooked["take_seconds"])
        self._probe_seconds = time.perf_counter() - t0 + spent + self._hook_seconds
        self._hook_seconds = 0.0

    def after_step(self, optimizer: torch.optim.Optimizer, losses: list[torch.Tensor]) -> None:
        if optimizer is not self.optimizer:
            self._note_other_step(optimizer, losses)
            return
        self._others_in_a_row = 0
        self._finish_step(optimizer, losses)

    def _note_other_step(self, optimizer: torch.optim.Optimizer, losses: list[torch.Tensor]) -> None:
        """Another optimizer stepped: counted, with whether a loss was backpropagated for it since
        the step before. Two optimizers each stepping after a loss of its own may train two sides
        against each other (a GAN), or a probe, a teacher, a critic beside the model; one optimizer
        alone, or two stepping on one loss (SparseAdam for the embeddings, Adam for the rest), train
        one objective: no game, whatever the losses are named."""
        counted = len(self._other_optimizers) < MAX_OTHER_OPTIMIZERS and id(optimizer) not in self._other_optimizers
        if counted:
            self._other_optimizers.add(id(optimizer))
        try:  # every one, past the count's cap and one given a freed one's id too
            new = optimizer not in self._announced_others
            self._announced_others.add(optimizer)
        except TypeError:  # an optimizer that takes no weak reference: the counted ones
            new = counted
        if new:
            params = _params_of(optimizer)
            for probe in self._hooked["on_other_optimizer"]:
                try:
                    probe.on_other_optimizer(optimizer, params)
                except Exception as exc:  # noqa: BLE001
                    self._probe_failed(probe, exc)
        self._other_steps += 1
        self._other_steps_own_loss += bool(losses)
        self._others_in_a_row += 1
        # (one followed before and still alive is not followed again: two optimizers over the same
        # parameters that take turns in runs of steps would hand the session back and forth: review)
        if (
            self._others_in_a_row == TAKEN_OVER_STEPS
            and optimizer not in self._followed
            and self._same_params(optimizer)
        ):
            self._follow(optimizer)
            return
        if self._others_in_a_row == ALONE_STEPS:
            # Not followed (its model's hooks, parameters and loss would all be another's): left
            # unrecorded, and the frozen step is not sampled again until the followed optimizer steps
            self._next_sample = max(self._next_sample, self.step + 1)

    def _same_params(self, optimizer: torch.optim.Optimizer) -> bool:
        params = _params_of(optimizer)
        return len(params) == len(self.params) and {id(p) for p in params} == {id(p) for p in self.params}

    def _follow(self, optimizer: torch.optim.Optimizer) -> None:
        """Follow `optimizer`, over the parameters followed so far, from its next step on."""
        self._followed.add(self.optimizer)
        self.optimizer, self._others_in_a_row = optimizer, 0
        self._refresh_params(optimizer)
        self._announce_parameters(optimizer)

    def _announce_parameters(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Tell the probes which optimizer and parameters are followed now."""
        for probe in self._hooked["on_parameters"]:
            try:
                probe.on_parameters(optimizer, self.params)
            except Exception as exc:  # noqa: BLE001
                self._probe_failed(probe, exc)

    @property
    def next_sample(self) -> int:
        """The step at which the next sample is taken."""
        return self._next_sample

    def finish_ordinary_step(self, losses: list[torch.Tensor]) -> None:
        """`after_step` for an ordinary step (see `next_step_is_ordinary`), without the checks
        that cannot apply to it."""
        self._keep_loss(losses)
        self._log_lr_change(self.optimizer)
        self._time_step(0.0)
        self.step += 1
        if not self.step % FLUSH_CHECK_EVERY:
            self._flush_if_due()

    def _keep_loss(self, losses: list[torch.Tensor]) -> None:
        if self.loss_probe is not None and self.loss_probe.has_val_loss:
            self._emit_val_loss()  # the evaluations since the last step, at the step count reached
        if losses:
            loss = losses[0] if len(losses) == 1 else torch.stack([t.float() for t in losses]).mean()
            probe = self.moment_probe
            if probe is not None:
                feed = self.feed
                call = getattr(feed, "loss_call", None)
                if call is not None:
                    feed.loss_call = None
                try:
                    probe.on_step_loss(self.step, loss, self._sampling, call)
                except Exception as exc:  # noqa: BLE001 - never raise into training
                    self._probe_failed(probe, exc)
            if len(self._losses) < MAX_BUFFERED:
                self._losses.append((self.step, loss, int(time.time() * 1000)))
            else:  # the store has been unreachable for a long while: memory stays flat
                self.sink.dropped += 1

    def _note_loss_call(self) -> None:
        """Hand the step's training loss call so far (see `feed`) to the moment probe, for a sampled
        step's probes; `_keep_loss` hands it over at the step's end and lets it go."""
        call, probe = getattr(self.feed, "loss_call", None), self.moment_probe
        if call is not None and probe is not None:
            probe.note_target(call)

    def _finish_step(self, optimizer: torch.optim.Optimizer | None, losses: list[torch.Tensor]) -> None:
        self._keep_loss(losses)
        if self._sampling:
            t0 = time.perf_counter()
            self._run_probes("after_step", optimizer)
            lr = optimizer.param_groups[0].get("lr") if optimizer is not None and optimizer.param_groups else None
            if isinstance(lr, (int, float, torch.Tensor)):
                self._logged_lr = float(lr)
                self.sink.add(schema.LR, self._logged_lr, self.step)
                self._sample_points += 1
            self._probe_seconds += time.perf_counter() - t0
            self._next_sample = self.step + self._sample_interval()
        else:
            self._log_lr_change(optimizer)
        self._time_step(self._probe_seconds if self._sampling else 0.0)
        self._sampling = False
        self.step += 1
        if self._discovery_until is not None and self.step > self._discovery_until:
            self._give_up_discovery()
        if not self.step % FLUSH_CHECK_EVERY:
            self._flush_if_due()

    def _log_lr_change(self, optimizer: torch.optim.Optimizer | None) -> None:
        """On a step that is not sampled: log the first group's learning rate when it has moved
        LR_CHANGE_FACTOR times or more from the last value logged, so that a schedule's step
        change shows where it happened, not at the next sampled step (hundreds of steps later on a
        long run). Only a plain float is read: a tensor rate (capturable optimizers) would cost a
        device sync on every step, and is read on sampled steps only."""
        if optimizer is None or not optimizer.param_groups or self._logged_lr is None:
            return
        lr = optimizer.param_groups[0].get("lr")
        if not isinstance(lr, (int, float)):
            return
        lr, last = float(lr), self._logged_lr
        if lr == last or (last > 0 and lr > 0 and 1 / LR_CHANGE_FACTOR < lr / last < LR_CHANGE_FACTOR):
            return
        self._logged_lr = lr
        self.sink.add(schema.LR, lr, self.step)

    def _flush_if_due(self) -> None:
        if self.sink.due(self.config.flush_every_seconds, also_waiting=len(self._losses)):
            t0 = time.perf_counter()
            self.flush()
            if self._last_step_end is not None:  # the write is not part of the next step's time
                self._last_step_end += time.perf_counter() - t0

    def next_step_is_ordinary(self) -> bool:
        """The next step needs nothing but its loss kept: not sampled, model known, the first
        loss checks and the first stale-gradient checks done (see Recorder.quiet)."""
        probe = self.loss_probe
        return (
            self.step < self._next_sample
            and self.model is not None
            and self.model.root is not None
            and (probe is None or probe.train_calls >= CHECK_FIRST_CALLS)
            and self.step > STALE_GRADS_FIRST_STEPS
        )

    # --- loops without optimizer.step() (parameters updated by hand) --------------------------
    def manual_step(
        self, losses: list[torch.Tensor], params: list[torch.Tensor], evidence: tuple | None = None
    ) -> None:
        """A hand-written update ended a step (seen at the next backward call, see clock.py). By
        then the next batch has gone through the model: `evidence` is the (model input, loss call)
        of the step that ended, taken at its last backward call, and the moment probe reads those
        while the step is finished (the next step's are put back after)."""
        if self.optimizer is None and not self.params:
            self._adopt(None, params)
        probe, feed = self.moment_probe, self.feed
        if evidence is None or probe is None or feed is None:
            self._finish_step(None, losses)
            return
        now = probe.input, feed.loss_call
        probe.input, feed.loss_call = evidence
        try:
            self._finish_step(None, losses)
        finally:
            probe.input, feed.loss_call = now

    def grads_ready(self) -> None:
        """A backward call returned in a loop without optimizer: on a sampled step, take the
        gradient statistics and the weight snapshot now, before the hand-written update."""
        if self.optimizer is not None or not self.params or self._sampling or self.step < self._next_sample:
            return
        self._sampling = True
        self.run_deferred_probes(None)

    def note_skipped_step(self) -> None:
        """A GradScaler skipped the optimizer step (inf/NaN gradients in the scaled backward): no
        update happened, so it is counted apart, not as a step nor as non-finite evidence."""
        self.skipped_steps += 1
        self.sink.add(schema.AMP_SKIPPED_STEPS, float(self.skipped_steps), self.step)

    # --- calls fed to the probes ----------------------------------------------------------------
    def _index_probes(self) -> None:
        """Which probes each hook calls (those that override it: see `probes.base.overrides`)."""
        self._hooked = {hook: [p for p in self.probes if overrides(p, hook)] for hook in _HOOKS}

    def _probe_failed(self, probe: Probe, exc: Exception) -> None:
        self._drop_probe(probe)
        warn(self.config, f"probe '{probe.name}' disabled after an error: {describe(exc)}")

    def observe_loss(self, fn: str, inp, target, out) -> None:
        """A torch loss function was called: training loss or evaluation loss?"""
        probe = self.loss_probe
        root = self.model.root if self.model is not None else None
        no_grad = not torch.is_grad_enabled() or not getattr(out, "requires_grad", False)
        evaluating = no_grad or (root is not None and not root.training)
        sampled = self.step >= self._next_sample
        if not evaluating and not sampled and (probe is None or probe.train_calls >= CHECK_FIRST_CALLS):
            return  # the common case, kept cheap: an ordinary training loss on an unsampled step
        t0 = time.perf_counter()
        step = self.step
        for probe in self._hooked["on_loss"]:
            try:
                metrics = probe.on_loss(fn, inp, target, out, evaluating, sampled, step)
            except Exception as exc:  # noqa: BLE001 - never raise into training
                self._probe_failed(probe, exc)
                continue
            for key, value in metrics.items():
                self.sink.add(key, value, step)
        if sampled and not evaluating:
            self._hook_seconds += time.perf_counter() - t0

    def on_clip(self, kind: str, pre_clip: torch.Tensor | None, limit: float) -> None:
        """A gradient clipping call returned (see `Probe.on_clip`)."""
        for probe in self._hooked["on_clip"]:
            try:
                probe.on_clip(kind, pre_clip, limit)
            except Exception as exc:  # noqa: BLE001
                self._probe_failed(probe, exc)

    def wants_pre_clip_size(self, kind: str) -> bool:
        """Whether a probe asks for the gradient size before the coming clipping call."""
        wanted = False
        for probe in self._hooked["on_before_clip"]:
            try:
                wanted = probe.on_before_clip(kind) or wanted
            except Exception as exc:  # noqa: BLE001
                self._probe_failed(probe, exc)
        return wanted

    def on_loader_iter(self, loader) -> None:
        """A DataLoader's iteration (an epoch) begins."""
        for probe in self._hooked["on_loader_iter"]:
            try:
                probe.on_loader_iter(loader)
            except Exception as exc:  # noqa: BLE001
                self._probe_failed(probe, exc)

    @property
    def data_probe(self) -> DataProbe | None:
        """The input statistics probe (None once it failed)."""
        return next((p for p in self.probes if isinstance(p, DataProbe)), None)

    def _emit_val_loss(self) -> None:
        if self.loss_probe is not None:
            val = self.loss_probe.take_val_loss()
            if val is not None:
                self.sink.add(schema.VAL_LOSS, val, self.step)

    def _time_step(self, probe_seconds: float) -> None:
        """Smoothed wall time of a step without the probes (between consecutive optimizer steps)."""
        end = time.perf_counter()
        if self._last_step_end is not None:
            dt = max(end - self._last_step_end - probe_seconds, 1e-9)
            self._step_seconds = dt if self._step_seconds is None else 0.9 * self._step_seconds + 0.1 * dt
        self._last_step_end = end

    def _budget(self) -> float | None:
        """Share of the training time each of the two variable costs may take: the sampled
        statistics (with their writes), and writing the training loss. `max_probe_overhead`
        is split evenly between them, so that together they stay within it."""
        budget = self.config.max_probe_overhead
        return budget / 2 if budget else None

    def _sample_interval(self) -> int:
        """Steps until the next sample: `sample_every_n_steps`, or more when a sample (its
        statistics, and writing its points to the store) costs more than its share of
        `max_probe_overhead` (a tiny model's step is cheaper than its probes)."""
        interval = self.config.sample_every_n_steps
        budget = self._budget()
        if budget and self._step_seconds:
            cost = self._probe_seconds + self._sample_points * self.sink.seconds_per_point
            needed = cost / (budget * self._step_seconds)
            interval = max(interval, min(MAX_SAMPLE_INTERVAL, int(needed) + 1))
        return interval

    def loss_window(self) -> int:
        """Steps averaged into one `train_loss` point once past FULL_RESOLUTION_STEPS: 1 unless
        writing a point per step would cost more than its share of `max_probe_overhead`."""
        budget = self._budget()
        if not budget or not self._step_seconds:
            return 1
        needed = self.sink.seconds_per_point / (budget * self._step_seconds)
        return max(1, min(MAX_SAMPLE_INTERVAL, math.ceil(needed)))

    def _move_losses(self, final: bool) -> None:
        """Hand the buffered training losses to the sink: one point per step up to
        FULL_RESOLUTION_STEPS, then one per window of `loss_window()` steps, at the window's last
        step, holding the mean (a NaN or Inf in a window makes its point non-finite). The last
        window stays buffered, as it may not be complete, unless this is the final flush."""
        losses = self._losses
        if not losses:
            return
        values = np.asarray(to_floats([v for _, v, _ in losses]), dtype=float)
        steps = np.fromiter((step for step, _, _ in losses), dtype=np.int64, count=len(losses))
        k = self.loss_window()
        windows = np.where(
            steps < FULL_RESOLUTION_STEPS, steps, FULL_RESOLUTION_STEPS + (steps - FULL_RESOLUTION_STEPS) // k
        )
        starts = np.flatnonzero(np.r_[True, windows[1:] != windows[:-1]])  # runs of one window
        ends = np.r_[starts[1:], len(losses)]
        keep = 0 if final else int(ends[-1] - starts[-1])
        if keep:
            starts, ends = starts[:-1], ends[:-1]
        if len(starts):
            means = np.add.reduceat(values[: len(losses) - keep], starts) / (ends - starts)  # NaN/Inf carry through
            for end, mean in zip(ends.tolist(), means.tolist()):
                step, _, stamp = losses[end - 1]
                self.sink.add(schema.TRAIN_LOSS, mean, step, stamp)
        self._losses = (
            [
                (step, value, stamp)
                for (step, _, stamp), value in zip(losses[len(losses) - keep :], values[len(losses) - keep :].tolist())
            ]
            if keep
            else []
        )

    @property
    def buffered(self) -> int:
        """Points (and training losses) waiting for the next write."""
        return self.sink.buffered + len(self._losses)

    def _adopt(self, optimizer: torch.optim.Optimizer | None, params: list[torch.Tensor] | None = None) -> None:
        """Follow this optimizer (or, in a loop without one, these parameters)."""
        self.optimizer = optimizer
        if optimizer is not None:
            self.params = _params_of(optimizer)
            self._param_count = len(self.params)
            self._group_count = len(optimizer.param_groups)
            facts = optimizer_facts(optimizer)
        else:
            self.params = list(params or [])
            facts = {schema.PARAM_OPTIMIZER: "none"}
        self._announce_parameters(optimizer)
        facts[schema.PARAM_MODEL_PARAMETERS] = int(sum(p.numel() for p in self.params))
        try:
            self.sink.log_params(facts)
        except Exception as exc:  # noqa: BLE001 - e.g. the run already has these params with other values
            warn(self.config, f"could not log optimizer params: {exc}")
        self._start_model_discovery()

    def _drop_probe(self, probe: Probe) -> None:
        """Switch a failed probe off, and release what it holds on the model (its hooks)."""
        self.probes.remove(probe)
        if probe is self.loss_probe:
            self.loss_probe = None
        self._index_probes()
        try:
            probe.close()
        except Exception:  # noqa: BLE001
            pass

    def _refresh_params(self, optimizer: torch.optim.Optimizer) -> None:
        """Parameters added to the optimizer during training are followed (looked at when the
        number of groups changes, as `add_param_group` does, and on sampled steps)."""
        self._group_count = len(optimizer.param_groups)
        count = sum(len(g["params"]) for g in optimizer.param_groups)
        if count != self._param_count:
            self._param_count = count
            self.params = _params_of(optimizer)

    def _run_probes(self, phase: str, optimizer: torch.optim.Optimizer | None) -> None:
        ctx = StepContext(self.step, optimizer, self.params, self.model)
        for probe in self._hooked[phase]:
            try:
                metrics = getattr(probe, phase)(ctx)
            except Exception as exc:  # noqa: BLE001 - never raise into training
                self._probe_failed(probe, exc)
                continue
            for key, value in metrics.items():
                self.sink.add(key, value, self.step)
            self._sample_points += len(metrics)
            if metrics and self.moment_probe is not None and probe is not self.moment_probe:
                self._moment_metrics(phase, metrics)

    def _moment_metrics(self, phase: str, metrics: dict[str, Any]) -> None:
        """The gradient norm (before the step) and the update ratios (after it) of a sampled step
        reach the moment probe, which looks for the first jump of the gradient norm."""
        probe = self.moment_probe
        try:
            if phase == "before_step" and schema.GRAD_NORM in metrics:
                probe.on_grad_norm(self.step, metrics[schema.GRAD_NORM])
            elif phase == "after_step" and probe.wants_update_ratios:
                prefix = schema.LAYER_UPDATE_RATIO + "/"
                probe.on_update_ratios([v for k, v in metrics.items() if k.startswith(prefix)])
        except Exception as exc:  # noqa: BLE001
            self._probe_failed(probe, exc)

    # --- finding the model ------------------------------------------------------------------
    def _start_model_discovery(self) -> None:
        """Install a global forward pre-hook until the next forward pass shows which module owns
        the optimizer's parameters. The outermost module is called first, so the first module
        that owns any of them is the model. The hook lives for one forward pass only (a global
        hook on every step would cost a few percent)."""
        opt_ids = {id(p) for p in self.params}
        learning = next((p for p in self.probes if isinstance(p, LearningProbe)), None)

        def find_root(module, args):
            if torch.compiler.is_compiling():
                return  # traced by torch.compile: nothing of ours goes into a compiled graph
            try:
                if any(id(p) in opt_ids for p in module.parameters()):
                    self._stop_model_discovery()
                    self._attach_model(module, opt_ids)
                    self._on_root_forward(module, args)  # hooks added now fire from the next call on
                elif learning is not None and learning in self.probes and torch.is_grad_enabled():
                    learning.note_outside_model(module, args)  # a module the optimizer does not train
            except Exception as exc:  # noqa: BLE001
                self._stop_model_discovery()
                warn(self.config, f"could not inspect the model: {exc}")

        self._discovery = torch.nn.modules.module.register_module_forward_pre_hook(find_root)
        self._compiled_patch = _see_compiled_modules_first(find_root)
        # a model whose parameters no module owns (plain tensors) would keep the global hook forever
        self._discovery_until = self.step + 2

    def _give_up_discovery(self) -> None:
        """No module owning the parameters ran a forward pass in two steps: stop looking, and
        fall back on the model a framework named, if any."""
        self._stop_model_discovery()
        hint = self.model_hint
        if self.model is None and isinstance(hint, torch.nn.Module):
            opt_ids = {id(p) for p in self.params}
            try:
                if any(id(p) in opt_ids for p in hint.parameters()):
                    self._attach_model(hint, opt_ids)
            except Exception as exc:  # noqa: BLE001
                warn(self.config, f"could not inspect the model: {exc}")

    def _on_root_forward(self, module: torch.nn.Module, args: tuple) -> None:
        """The model is about to run: the probes see its inputs (and the activation probe arms
        its hooks when this is the forward pass of a sampled training step)."""
        if torch.compiler.is_compiling():
            return  # traced by torch.compile (a compiled model's own hooks): step aside
        evaluating = not torch.is_grad_enabled() or not module.training
        sampled = self.step >= self._next_sample
        timed = sampled and not evaluating
        t0 = time.perf_counter() if timed else 0.0
        for probe in self._hooked["on_input"]:
            try:
                probe.on_input(args, evaluating, sampled)
            except Exception as exc:  # noqa: BLE001 - odd inputs: give up on this probe, not on training
                self._probe_failed(probe, exc)
        if timed:
            self._hook_seconds += time.perf_counter() - t0

    def before_backward(self, closure_repeat: bool = False) -> None:
        """The first backward since the last optimizer step is about to run: on sampled steps,
        and on each of the first STALE_GRADS_FIRST_STEPS steps, the probes that look at the
        gradients left from the last step. With `closure_repeat`, the first backward of a step's
        closure called again (L-BFGS): the gradients left from its previous call, written as
        GRAD_PRESENT_IN_CLOSURE (each closure call must start from zero gradients)."""
        if self.step < 1 or not self.params or self._others_in_a_row >= TAKEN_OVER_STEPS:
            # (another optimizer trains now: the followed model's gradients are where its loop left them)
            return
        sampled = self.step >= self._next_sample
        if not sampled and self.step > STALE_GRADS_FIRST_STEPS:
            return
        t0 = time.perf_counter()
        ctx = StepContext(self.step, self.optimizer, self.params, self.model)
        for probe in self._hooked["on_before_backward"]:
            try:
                metrics = probe.on_before_backward(ctx)
            except Exception as exc:  # noqa: BLE001
                self._probe_failed(probe, exc)
                continue
            for key, value in metrics.items():
                if closure_repeat and key == schema.GRAD_PRESENT_BEFORE_BACKWARD:
                    key = schema.GRAD_PRESENT_IN_CLOSURE
                self.sink.add(key, value, self.step)
        if sampled:  # the first steps' checks are a fixed cost, not part of the sampling budget
            self._hook_seconds += time.perf_counter() - t0

    def _stop_model_discovery(self) -> None:
        self._discovery_until = None
        if self._discovery is not None:
            self._discovery.remove()
            self._discovery = None
        undo, self._compiled_patch = getattr(self, "_compiled_patch", None), None
        if undo is not None:
            undo()

    def _attach_model(self, root: torch.nn.Module, opt_ids: set[int]) -> None:
        layers: dict[str, list] = {}
        for name, module in root.named_modules():
            own = [p for p in module.parameters(recurse=False) if id(p) in opt_ids]
            if own:
                layers[name or type(root).__name__] = own
        self.model = ModelInfo(root=root, layers=layers)
        self._root_hook = root.register_forward_pre_hook(_RootHook(self))
        for probe in list(self.probes):
            try:
                probe.attach(self.model)
            except Exception as exc:  # noqa: BLE001
                self._drop_probe(probe)
                warn(self.config, f"probe '{probe.name}' disabled: {exc}")

    # --- output ------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"recorder_version": __version__, "steps": self.step}
        if self.optimizer is not None:
            out["optimizer"] = optimizer_facts(self.optimizer)
        for probe in self.probes:
            facts = probe.summary()
            if facts:
                out[probe.name] = facts
        if self.skipped_steps:
            out["amp"] = {"skipped_steps": self.skipped_steps}
        if self.optimizer is not None:  # written with zeros too: the auditor then knows there was none
            out["other_optimizers"] = {
                "optimizers": len(self._other_optimizers),
                "steps": self._other_steps,
                "steps_with_own_loss": self._other_steps_own_loss,
            }
        if "moments" in out:  # written last: the section is read with the rest, but is the least stable
            out["moments"] = out.pop("moments")
        return out

    def flush(self, final: bool = False) -> None:
        """Write buffered metrics, and the diagnostics when they changed (so a run that
        crashes later still has what was learned so far)."""
        try:
            self._move_losses(final)
            self.sink.flush()  # hands the points to the writer thread: never waits for the store
        except Exception as exc:  # noqa: BLE001 - never raise into training
            warn(self.config, f"could not write metrics: {describe(exc)}")
        try:
            text = json.dumps(self.diagnostics(), indent=2)
            if text != self._diagnostics_written:
                self.sink.log_text(text, schema.DIAGNOSTICS_ARTIFACT)
                self._diagnostics_written = text
        except Exception as exc:  # noqa: BLE001
            warn(self.config, f"could not write {schema.DIAGNOSTICS_ARTIFACT}: {describe(exc)}")

    def close(self) -> None:
        """Write what is buffered and the diagnostics; release the model hooks."""
        self._stop_model_discovery()
        if self._root_hook is not None:
            self._root_hook.remove()
            self._root_hook = None
        for probe in self.probes:
            try:
                probe.close()
            except Exception:  # noqa: BLE001
                pass
        self._emit_val_loss()
        self.flush(final=True)
        self.sink.close()  # waits while the writer makes progress, never on a store that does not answer
        self.model_hint = None
