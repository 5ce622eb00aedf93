"""The recorder's state machine: which optimizer step is running, the losses seen since the
last one, which run is recorded into (the session), and the early probes that watch the
calls made before a session exists.

It is fed by the entry points that `patches.py` puts into torch and MLflow, and by nothing
else; it never patches anything itself. What must happen at a safe point (removing the
patches once the recorder is switched off, wrapping `mlflow.end_run` when the first session
starts) it asks of `Recorder.patches`, which `patches.py` sets when it is imported (so that
this module does not import it: no import cycle). While the recorder is off
(`current_config()` is None) every entry returns after one cached lookup. Only rank 0 of a
distributed job records. Nothing here ever raises into the user's program (see `guarded`).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from mlflow_nnaudit.recorder.clock import ManualClock
from mlflow_nnaudit.recorder.config import current_config, describe, warn
from mlflow_nnaudit.recorder.probes.loader import LoaderProbe
from mlflow_nnaudit.recorder.probes.loss import LossProbe
from mlflow_nnaudit.recorder.probes.moments import kept_loss_call

#: how often (in optimizer steps) the recorder checks that the active MLflow run is still the same
RUN_CHECK_EVERY = 50
#: scalar losses kept at most between two steps (a loop that never steps must not grow memory)
MAX_PENDING_LOSSES = 10_000


def process_rank() -> int:
    """This process's rank in a distributed job (0 when not distributed): torch.distributed's
    rank once the process group exists, else the launcher's RANK (torchrun, SLURM wrappers)
    or LOCAL_RANK environment variable."""
    dist = getattr(torch, "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    for var in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def _active_run_id() -> str | None:
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def _unwrap(optimizer):
    """The torch optimizer inside wrappers such as accelerate's AcceleratedOptimizer."""
    for _ in range(5):
        inner = getattr(optimizer, "optimizer", None)
        if inner is None or not isinstance(inner, torch.optim.Optimizer):
            break
        optimizer = inner
    return optimizer


@dataclass
class RunTarget:
    """Set by a framework integration (the Lightning callback) for the length of a fit: the run
    to write into (its MLFlowLogger's, with that logger's client) and the model being trained."""

    owner: int  # id() of the object that set it (the Trainer)
    run_id: str | None
    client: Any = None
    model: Any = None


class Recorder:
    """Process-wide state: the losses seen since the last optimizer step, and the session.

    Its state has one definition, `_initial_state`, used both when it is made and by `reset`
    (after the patches are removed), so that nothing survives a reset by being forgotten.
    """

    def __init__(self) -> None:
        # the patch ledger (`patches.PATCHES`), set when patches.py is imported: wiring, not state
        self.patches: Any = None
        self._initial_state()

    def _initial_state(self) -> None:
        self.pending: list[torch.Tensor] = []
        self.session = None  # RunSession
        self.failures = 0
        # loss calls seen before the first optimizer step of a session (the first loss, the
        # first loss inputs) are kept here and handed to the session when it starts
        self.early_loss_probe: LossProbe | None = LossProbe()
        # the MLflow run that was active when the early probe last saw an evaluation loss: those
        # losses go to a session only if it records into that run (a test-set loss computed
        # after one run ended is not the next run's validation loss)
        self.early_eval_run: str | None = None
        # DataLoaders iterated while no session exists (the first epoch always starts before the
        # first optimizer step): the next session adopts them
        self.early_loader_probe = LoaderProbe()
        self.target: RunTarget | None = None
        self.was_on = False  # the recorder has been on in this process (for switching off)
        self.optimizer_seen = False  # an optimizer step was seen: the manual clock is off for good
        self.clock: ManualClock | None = None
        self.steps_started = 0  # outermost optimizer steps entered (to see GradScaler skips)
        self._outer = None  # the optimizer whose step is running now (wrappers call inner ones)
        self._inner = None  # the torch optimizer inside `_outer`
        self._step_losses: list[torch.Tensor] | None = None  # a closure step's losses, once taken
        self._closure_repeat = False  # a step's closure is being called again: check its first backward
        self._scaled: tuple[torch.Tensor, torch.Tensor] | None = None  # (scaled loss, unscaled loss)
        self._recheck_run = False
        self._rank: int | None = None
        self._last_closed: tuple[str, int] | None = None  # (run id, steps) of the last closed session
        # Set at the end of an optimizer step when the next one is ordinary for the recorder (not
        # sampled, no run check, past the first loss checks): its training loss and backward
        # calls then take the wrappers' fast paths, which do exactly what the full hooks would
        # do for such a step (keep the loss) in a few attribute reads instead of a dozen calls.
        # Cleared when the next step begins, and by anything that changes the session.
        self.quiet = False
        self.quiet_root = None  # the model: a loss computed in eval mode is never a quiet one
        self.quiet_optimizer = None  # the optimizer whose next step is the ordinary one
        self.quiet_config = None  # the settings it was decided under (a switch-off ends it)
        self._ordinary = None  # the optimizer whose ordinary step is running (pre-hook fast path taken)
        # (loss input, target) of the last training loss call, detached (`moments.kept_loss_call`: the
        # session's moment probe takes them)
        self.loss_call: tuple | None = None
        # A hand-written update's step ends where the next backward call sees the weights moved,
        # once the next batch has gone through the model: (model input, loss call) as they were at
        # the last backward call before that, for the moment probe (`RunSession.manual_step`)
        self._manual_evidence: tuple | None = None

    def _switched_off(self) -> None:
        """A safe point while not recording: the patches go if the recorder was switched off."""
        if self.patches is not None:
            self.patches.uninstall_if_switched_off()

    # --- who records -------------------------------------------------------------------------
    def recording(self):
        """The config when this process records now (recorder on, rank 0), else None."""
        config = current_config()
        if config is None:
            return None
        if self._rank is None:
            self._rank = process_rank()  # looked up again at every run check (on_step_pre)
        if self._rank != 0:
            return None
        self.was_on = True
        return config

    def bind(self, target: RunTarget) -> None:
        self.target = target
        self._recheck_run = True
        self.quiet = False

    def unbind(self, owner: int) -> None:
        target = self.target
        if target is None or target.owner != owner:
            return
        self.target = None
        self._recheck_run = True
        self.quiet = False
        self.close_session()

    # --- losses ------------------------------------------------------------------------------
    def on_loss(self, fn: str, inp, target, out) -> None:
        if self.recording() is None:
            self._switched_off()
            return
        if getattr(out, "requires_grad", False):
            self.loss_call = kept_loss_call((inp, target), {})
        session = self.session
        if session is not None:
            session.observe_loss(fn, inp, target, out)
        elif self.early_loss_probe is not None:
            evaluating = not torch.is_grad_enabled() or not getattr(out, "requires_grad", False)
            if evaluating:
                self.early_eval_run = _active_run_id()
            try:
                self.early_loss_probe.on_loss(fn, inp, target, out, evaluating, True, 0)
            except Exception as exc:  # noqa: BLE001 - the probe goes, the recorder stays
                self._early_loss_probe_failed(exc)

    def _early_loss_probe_failed(self, exc: Exception) -> None:
        self.early_loss_probe = None  # the session starts without a loss probe
        warn(current_config(), f"probe 'loss' disabled after an error: {describe(exc)}")

    def on_backward(self, tensor: torch.Tensor) -> None:
        config = self.recording()
        if config is None:
            self._scaled = None
            self._switched_off()
            return
        if tensor.numel() != 1 or not tensor.requires_grad:
            return
        loss = tensor.detach()
        scaled, self._scaled = self._scaled, None
        if scaled is not None and tensor is scaled[0]:
            loss = scaled[1]  # recorded unscaled (GradScaler)
        self._pair_objective(loss)
        if self._step_losses is not None:
            # later closure calls of a step (LBFGS line search): the first one's loss counts; the
            # second call's first backward must find the gradients zeroed again, as the first's did
            if self._closure_repeat:
                self._closure_repeat = False
                if self.session is not None:
                    self.session.before_backward(closure_repeat=True)
            return
        if not self.optimizer_seen:
            self._manual_clock_tick(config, tensor)
            moments = getattr(self.session, "moment_probe", None)
            self._manual_evidence = (getattr(moments, "input", None), self.loss_call)
        if len(self.pending) < MAX_PENDING_LOSSES:
            if not self.pending and self.session is not None:
                self.session.before_backward()
            self.pending.append(loss)

    def _pair_objective(self, loss: torch.Tensor) -> None:
        """The loss functions' outputs seen since the last backward call, against the loss this one
        backpropagates (`LossProbe.pair_objective`): per backward call, so that a hand-written update,
        an L-BFGS closure, a GAN's two optimizers and gradient accumulation each pair their own."""
        session = self.session
        probe = session.loss_probe if session is not None else self.early_loss_probe
        if probe is None:
            return
        try:
            probe.pair_objective(loss)
        except Exception as exc:  # noqa: BLE001 - never raise into training
            if session is not None:
                session._probe_failed(probe, exc)
            else:
                self._early_loss_probe_failed(exc)

    def after_backward(self) -> None:
        """A backward call returned. With hand-written updates, this is when gradients are ready."""
        if self.clock is not None and not self.optimizer_seen and self.session is not None:
            if self.recording() is not None:
                self.session.grads_ready()

    def _manual_clock_tick(self, config, tensor: torch.Tensor) -> None:
        """No optimizer step so far: did the previous backward end a hand-written step?"""
        clock = self.clock
        if clock is None:
            self.clock = ManualClock(tensor)
            return
        if clock.step_ended():
            session = self.session
            if session is None or self._recheck_run or session.step % RUN_CHECK_EVERY == 0 or session.starting:
                session = self._session_for_active_run(config)
            session.config = config
            losses, self.pending = self.pending, []
            session.manual_step(losses, clock.params, self._manual_evidence)
            if session.step % RUN_CHECK_EVERY == 0:
                # now and then, look again which parameters the loss reaches (a new model)
                self.clock = ManualClock(tensor)
                return
        clock.mark()

    # --- optimizer steps ---------------------------------------------------------------------
    def on_step_pre(self, optimizer, args: tuple, kwargs: dict):
        self.quiet = False
        self._ordinary = None
        session = self.session
        if session is None or self._recheck_run or session.step % RUN_CHECK_EVERY == 0:
            self._rank = None  # a process group may have been set up since the last look
        config = self.recording()
        if config is None:
            self.pending.clear()
            return None
        outer = self._outer
        if outer is not None and outer is not optimizer and self._inner is _unwrap(optimizer):
            return None  # the inner optimizer of a wrapper being stepped: the outer step counts
        self._outer = optimizer
        self._step_losses = None
        self.steps_started += 1
        if not self.optimizer_seen:
            self.optimizer_seen = True
            self.clock = None
        session = self.session
        # Which run to log into is re-checked when there is no session (the last one ended with
        # its run) and every RUN_CHECK_EVERY steps, not on every step: a fluent run lookup per
        # step would be a measurable share of a small model's step.
        if session is None or self._recheck_run or session.step % RUN_CHECK_EVERY == 0 or session.starting:
            session = self._session_for_active_run(config)
        session.config = config
        inner = self._inner = _unwrap(optimizer)
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        if not callable(closure):
            session.before_step(inner)
            return None
        # The closure computes this step's loss and gradients inside step(): gradient statistics
        # are taken after its first call, and only that call's loss counts (LBFGS calls it again).
        session.before_step(inner, defer_probes=True)
        wrapped = self._wrap_closure(closure, session, inner)
        if len(args) > 1:
            return (args[0], wrapped, *args[2:]), kwargs
        return args, {**kwargs, "closure": wrapped}

    def _wrap_closure(self, closure, session, optimizer):
        state = {"calls": 0}

        @functools.wraps(closure)
        def closure_with_probes(*a, **k):
            state["calls"] += 1
            # (only the second call is checked, and only the followed optimizer's: another's closure, an
            # L-BFGS temperature fit beside Adam, would be checked against the followed parameters)
            self._closure_repeat = state["calls"] == 2 and optimizer is session.optimizer
            out = closure(*a, **k)
            if state["calls"] == 1:
                _after_first_closure(self, session, optimizer)
            return out

        return closure_with_probes

    def first_closure_done(self, session, optimizer) -> None:
        self._step_losses, self.pending = self.pending, []
        session.run_deferred_probes(optimizer)

    def on_step_post(self, optimizer) -> None:
        outer = self._outer
        if outer is not None and outer is not optimizer:
            return  # inner optimizer of a wrapper
        self._outer = None
        self._closure_repeat = False
        losses = self._step_losses if self._step_losses is not None else self.pending
        self._step_losses, self.pending = None, []
        session = self.session
        # the pre-hook set `_outer` only when it found the recorder on: no need to ask again
        if session is None or (outer is None and self.recording() is None):
            return
        inner = self._inner if outer is not None else _unwrap(optimizer)
        session.after_step(inner, losses)
        if (
            inner is session.optimizer
            and self.session is session
            and session.step % RUN_CHECK_EVERY
            and not session.starting
            and session.next_step_is_ordinary()
        ):
            self.quiet_config = current_config()
            if self.quiet_config is session.config:
                self.quiet_root, self.quiet_optimizer, self.quiet = session.model.root, optimizer, True

    def on_ordinary_step_pre(self, optimizer, args: tuple, kwargs: dict) -> bool:
        """The pre-hook's fast path: True when this is the ordinary step announced by `quiet`
        (same optimizer, no closure, settings unchanged), after doing what `on_step_pre` would
        do for it (mark the step begun; the session has nothing to do before it)."""
        if not (
            self.quiet
            and optimizer is self.quiet_optimizer
            and self._outer is None
            and len(args) < 2
            and kwargs.get("closure") is None
            and current_config() is self.quiet_config
        ):
            return False
        self.quiet = False
        self._outer, self._inner, self._step_losses = optimizer, self.session.optimizer, None  # see on_step_post
        self._ordinary = optimizer
        self.steps_started += 1
        return True

    def on_ordinary_step_post(self, optimizer) -> bool:
        """The post-hook's fast path, for a step whose pre-hook took its fast path: what
        `on_step_post` does for it, and whether the next step is ordinary as well."""
        if self._ordinary is not optimizer or self._outer is not optimizer:
            return False
        self._ordinary = self._outer = None
        losses, self.pending = self.pending, []
        session = self.session
        session.finish_ordinary_step(losses)
        if session.step % RUN_CHECK_EVERY and session.step < session.next_sample:
            self.quiet = current_config() is self.quiet_config
        return True

    def on_scaled(self, unscaled, scaled) -> None:
        if isinstance(unscaled, torch.Tensor) and isinstance(scaled, torch.Tensor) and scaled.numel() == 1:
            if self.recording() is not None:
                self._scaled = (scaled, unscaled.detach())

    def on_scaler_step_done(self, steps_before: int) -> None:
        """GradScaler.step returned: if no optimizer step ran inside it, the scaler skipped it."""
        if self.steps_started != steps_before or self.recording() is None:
            return
        self._outer, self._inner, self._step_losses, self._ordinary = None, None, None, None
        self.pending = []  # the skipped iteration's loss is not a step's loss
        if self.session is not None:
            self.session.note_skipped_step()

    # --- sessions ------------------------------------------------------------------------------
    def _session_for_active_run(self, config):
        import mlflow

        from mlflow_nnaudit.recorder.session import RunSession
        from mlflow_nnaudit.recorder.sink import RunStart, store_is_local

        if self.patches is not None:
            self.patches.install_run_patches()  # mlflow.end_run flushes first, from now on
        self._recheck_run = False
        target = self.target
        started = False
        client = None
        start = None
        if target is not None and target.run_id:
            run_id, client = target.run_id, target.client
        else:
            run = mlflow.active_run()
            session = self.session
            starting = session.sink.start if session is not None else None
            if run is None and starting is not None and not starting.activated:
                # the run this recorder starts is being created (or was given up): no new one
                run = starting.activate(config)
                if run is None:
                    return session
                # the recorder started this run: a session opened for it now (the writer thread may
                # not have told the sink the run's id yet) must still mark it so
                started = True
            if run is None:
                # as MLflow's own autologgers do: no active run at the first step -> start one; on a
                # remote store it is created on the writer thread, and made active once it exists
                started = True
                if store_is_local(mlflow.get_tracking_uri()) or os.environ.get("MLFLOW_RUN_ID"):
                    run = mlflow.start_run()
                else:
                    start = RunStart()
            run_id = run.info.run_id if run is not None else None
        if self.session is None or self.session.run_id != run_id or start is not None:
            self.close_session()
            early = self.early_loss_probe
            if early is not None and early.has_val_loss and self.early_eval_run != run_id:
                early.take_val_loss()  # evaluated outside this run (before it began, or in another)
            self.early_eval_run = None
            self.session = RunSession(
                run_id,
                config,
                started_run=started,
                loss_probe=early,
                loader_probe=self.early_loader_probe,
                client=client,
                model_hint=target.model if target is not None else None,
                start=start,
            )
            self.early_loss_probe, self.early_loader_probe = LossProbe(), LoaderProbe()
            self.session.feed = self
            last = self._last_closed
            if last is not None and last[0] is not None and last[0] == run_id:
                self.session.step = last[1]  # a second fit into the same run continues its steps
        return self.session

    def activate_started_run(self) -> None:
        """User code is about to use MLflow's active run (`mlflow.log_metric` and the like start
        one when none is active): if the run this recorder starts on a remote store is still being
        created, wait for it (at most what is left of RUN_START_SECONDS) and make it the active
        run, so that the user's call lands in it rather than in a second run. Only on the training
        thread (MLflow's active run is per thread) and only when that thread has no active run of
        its own: then the user's call would start a run on the same store, and waits no longer
        than it would; training steps never wait."""
        import threading

        import mlflow

        from mlflow_nnaudit.recorder.sink import RUN_START_SECONDS

        session = self.session
        start = session.sink.start if session is not None else None
        if start is None or not start.pending or threading.get_ident() != start.thread:
            return
        config = self.recording()
        if config is None or mlflow.active_run() is not None:
            return
        session.sink.wait_for_run(RUN_START_SECONDS - (time.monotonic() - start.began))
        self._session_for_active_run(config)

    def close_session(self, run_id: str | None = None) -> None:
        """Flush and close the session (only if it records into `run_id`, when given)."""
        session = self.session
        if session is None or (run_id is not None and session.run_id != run_id):
            return
        if self.clock is not None and not self.optimizer_seen and self.pending:
            losses, self.pending = self.pending, []
            session.manual_step(losses, self.clock.params, self._manual_evidence)  # the last hand-written step
        self.session = None
        self._manual_evidence = None
        self.quiet = False
        self.quiet_root = self.quiet_optimizer = self.quiet_config = self._ordinary = None
        self.clock = None  # the next run may train another model, maybe without an optimizer
        self.optimizer_seen = False
        self._last_closed = (session.run_id, session.step)
        session.close()

    def reset(self) -> None:
        """Forget the per-process state (after the patches are removed and the session closed)."""
        self._initial_state()

    # --- calls fed to single probes (gradient clipping, DataLoader epochs) ----------------------
    def clip_session(self):
        """The session that clipping calls are reported to now, or None (recorder off, or no
        session yet: calls made before the first step of a run are not counted)."""
        if current_config() is None:
            return None
        return self.session

    def on_loader_iter(self, loader) -> None:
        """A DataLoader's iteration (an epoch) begins."""
        if current_config() is None:
            return
        session = self.session
        if session is not None:
            session.on_loader_iter(loader)
        else:
            self.early_loader_probe.on_loader_iter(loader)


RECORDER = Recorder()


def guarded(fn):
    """Run a hook body; turn any exception into a warning (and give up after repeated ones)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if RECORDER.failures >= 3:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - never raise into training
            RECORDER.failures += 1
            warn(
                current_config(),
                f"recorder error ({describe(exc)}); training continues"
                + ("; recorder switched off for this process" if RECORDER.failures >= 3 else ""),
            )
            return None

    return wrapper


@guarded
def _after_first_closure(recorder: Recorder, session, optimizer) -> None:
    recorder.first_closure_done(session, optimizer)
