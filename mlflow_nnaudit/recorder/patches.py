"""Every change the recorder makes to torch and MLflow, applied and reverted through one ledger.

The entry points, installed once per process (`install_dormant_hooks`):

- torch's global optimizer step pre/post hooks (they fire for every optimizer, subclasses
  that override `step` included, without patching any class). A step called with a closure
  (LBFGS, Lightning) gets its closure wrapped so that the gradient statistics are taken right
  after the closure's first call, when the gradients of this step exist;
- a thin wrapper around `torch.Tensor.backward`, the one place every training loop's loss
  passes through (plain loops, Lightning, the HF Trainer, closures). While no optimizer step
  has been seen it also keeps the step count of loops that update parameters by hand
  (`clock.py`);
- thin wrappers around torch's functional losses (`torch.nn.functional.cross_entropy`, ...;
  the `nn.*Loss` modules call them too), to see what the loss is fed and to catch the
  evaluation losses computed without autograd;
- thin wrappers around `torch.amp.GradScaler.scale`/`.step`: the loss is recorded unscaled,
  and a step the scaler skips (inf/NaN gradients) is counted as skipped, not as a step;
- thin wrappers around `torch.nn.utils.clip_grad_norm_`/`clip_grad_value_` (the clipping
  probe) and `torch.utils.data.DataLoader.__iter__` (the loader probe, once per epoch);
- when the first session starts (`Patches.install_run_patches`): a wrapper around
  `mlflow.end_run`, so buffered metrics reach a run before it is closed, and a flush at exit;
  and a wrapper around MLflow's `fluent._get_or_start_run` (what `mlflow.log_metric` and its
  kin call when no run is given): a run the recorder is still creating on a remote store is
  waited for (bounded) and made active first, so the user's call does not start a second run.
  (This module can be imported from torch's import hook while `import mlflow` is still
  half-way, so it touches MLflow only lazily.)

Each wrapper hands what it sees to the state machine (`recorder.RECORDER`), which feeds the
probes through the probe interface; nothing here decides anything. While the recorder is
off (`current_config()` is None) each of them returns after one cached lookup; once it has
been on and is switched off again, they are all removed at the next safe point
(`uninstall_if_switched_off`) by reverting the ledger, in the reverse order of their
application. A patch is only reverted while it is still ours (a later wrapper around it is
left alone). Nothing here ever raises into the user's program.

One short-lived patch lives elsewhere: while a session looks for the model (one forward pass),
`session._see_compiled_modules_first` wraps `torch._dynamo`'s `OptimizedModule.__call__` so that
a `torch.compile`d model does not make torch warn about the global discovery hook; the session
removes it with that hook (same rule: only while it is still ours). It sits in session.py
because this module imports the state machine, which imports the session.

Why not MLflow's own `safe_patch`/`revert_patches`: the ledger is in their spirit (every
patch recorded, all reverted at once), but `safe_patch` wraps each call of the patched
function in MLflow's autologging machinery: an autologging session context manager, a
lookup of the flavor's autolog config, try/except bookkeeping for exceptions raised by the
patch, and event logging. That machinery is worth its cost on `fit()`-level functions called
once per run; here the wrappers sit on calls made several times per training step
(`Tensor.backward`, every loss function, optimizer steps), and the whole recorder's budget is
~15-25 us of Python per step. Measured (`benchmarks/safe_patch_cost.py`, a no-op method, on
the 2-core development machine): a `safe_patch` wrapper adds ~78 us per call against
~0.03 us for a plain `functools.wraps` wrapper, so the 3-4 wrapped calls of an ordinary
step would cost ~250-300 us, over ten times the recorder's whole budget. The wrappers here keep their
exception safety themselves (`recorder.guarded`, and fast paths of a few attribute reads).
"""

from __future__ import annotations

import atexit
import functools
import math
import threading
from collections.abc import Callable
from typing import Any

import torch

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.config import current_config
from mlflow_nnaudit.recorder.probes import loss as loss_probe
from mlflow_nnaudit.recorder.probes.clipping import grad_abs_max
from mlflow_nnaudit.recorder.probes.moments import kept_loss_call
from mlflow_nnaudit.recorder.recorder import MAX_PENDING_LOSSES, RECORDER, guarded

#: torch.nn.functional losses that are watched (the nn.*Loss modules call these as well)
WATCHED_LOSSES = schema.LOSS_FUNCTIONS


class Ledger:
    """The patches applied, each with how to revert it, in the order they were applied."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, Callable[[], None]]] = []

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __contains__(self, name: str) -> bool:
        return any(entry == name for entry, _ in self._entries)

    def names(self) -> list[str]:
        return [name for name, _ in self._entries]

    def patch(self, name: str, owner: Any, attr: str, replacement: Callable) -> None:
        """Replace `owner.attr` by `replacement` (which gets `__nnaudit_original__`)."""
        original = getattr(owner, attr)
        replacement.__nnaudit_original__ = original

        def revert() -> None:
            if getattr(getattr(owner, attr, None), "__nnaudit_original__", None) is original:
                setattr(owner, attr, original)

        setattr(owner, attr, replacement)
        self._entries.append((name, revert))

    def add(self, name: str, revert: Callable[[], None]) -> None:
        """Record a change made otherwise (a hook handle, an atexit registration)."""
        self._entries.append((name, revert))

    def revert(self) -> None:
        """Undo every change, the last one first; an error in one does not stop the others (the
        first error is raised once all were tried)."""
        error: Exception | None = None
        while self._entries:
            _, undo = self._entries.pop()
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the others
                error = error or exc
        if error is not None:
            raise error


# --- the entry points --------------------------------------------------------------------------
def _step_pre_hook(optimizer, args, kwargs):
    try:
        if RECORDER.on_ordinary_step_pre(optimizer, args, kwargs):
            return None
    except Exception:  # noqa: BLE001 - the full hook below decides (and reports errors)
        RECORDER.quiet = False
    return _step_pre(optimizer, args, kwargs)


@guarded
def _step_pre(optimizer, args, kwargs):
    result = RECORDER.on_step_pre(optimizer, args, kwargs)
    if result is not None and not (isinstance(result, tuple) and len(result) == 2):
        return None  # never hand torch something it would reject
    return result


@guarded
def _step_post_hook(optimizer, _args, _kwargs):
    # an error half-way through the fast path is reported like any other, and the full hook is
    # not run after it (that could count the step twice)
    if RECORDER._ordinary is optimizer and RECORDER.on_ordinary_step_post(optimizer):
        return
    RECORDER.on_step_post(optimizer)


@guarded
def _before_backward(tensor):
    RECORDER.on_backward(tensor)


@guarded
def _after_backward():
    RECORDER.after_backward()


#: losses whose `reduction='sum'` output (passed by keyword) is turned into the per-sample mean before
#: the probes see it (a regression loss given it positionally is read from its value: `LossProbe._reduction`)
_SUMMED_CLASSIFICATION = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits")
_SUMMED_ELEMENTWISE = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")


def _per_sample(fn: str, inp, target, kwargs, out):
    """A classification loss called with `reduction='sum'` (by keyword, as `nn.CrossEntropyLoss` and
    the Hugging Face causal-LM loss pass it) gives the sum over its samples: its first loss, evaluation
    loss and objective share are compared with ln C and with the loss backpropagated, which are per
    sample. Divided here by what torch's 'mean' divides by: the summed class weights of the targets
    other than `ignore_index` (their count without `weight=`) for class indices, the rows for class
    probabilities, the elements for a binary loss. A regression loss (`nn.MSELoss(reduction='sum')`)
    likewise, by the elements its input and target broadcast to. The divisor rides on the result as
    `_nnaudit_sum` (a loop that backpropagates the sum itself is then still read against the sum:
    `LossProbe`). No new tensor is made on the device for a count known on the host. Other reductions
    pass."""
    if kwargs.get("reduction") != "sum" or not isinstance(out, torch.Tensor):
        return out
    if fn not in _SUMMED_CLASSIFICATION and fn not in _SUMMED_ELEMENTWISE:
        return out
    if not isinstance(inp, torch.Tensor) or not isinstance(target, torch.Tensor) or out.numel() != 1:
        return out
    if fn in _SUMMED_ELEMENTWISE:
        count = float(max(math.prod(torch.broadcast_shapes(inp.shape, target.shape)), 1))
    elif fn.startswith("binary"):
        count = float(max(inp.numel(), 1))
    elif target.is_floating_point():  # class probabilities: one row per sample (and position)
        count = float(max(inp.numel() // max(int(inp.shape[1]), 1), 1)) if inp.dim() >= 2 else 1.0
    else:
        valid = target != kwargs.get("ignore_index", -100)
        weight = kwargs.get("weight")
        if isinstance(weight, torch.Tensor):
            count = weight.to(out.device)[target.clamp(0, weight.numel() - 1)].mul(valid).sum()
        else:
            count = valid.sum()
        count = count.clamp_min(1e-12).to(out.device, out.dtype)
    per_sample = out / count
    per_sample._nnaudit_sum = count  # read back by LossProbe
    return per_sample


@guarded
def _after_loss(fn, args, kwargs, out):
    inp = args[0] if args else kwargs.get("input")
    target = args[1] if len(args) > 1 else kwargs.get("target")
    call = None
    if RECORDER.recording() is not None:
        out = _per_sample(fn, inp, target, kwargs, out)
        call = (fn, args, kwargs)
    # the call's arguments go to `LossProbe` beside it (it reads class weights, label smoothing and
    # ignore_index only on the calls it checks), never onto the user's tensor, which would carry them
    # into their checkpoints; dropped when the call returns
    loss_probe.CALL = call
    try:
        RECORDER.on_loss(fn, inp, target, out)
    finally:
        loss_probe.CALL = None


@guarded
def _after_scale(unscaled, scaled):
    RECORDER.on_scaled(unscaled, scaled)


@guarded
def _after_scaler_step(steps_before):
    RECORDER.on_scaler_step_done(steps_before)


@guarded
def _before_end_run():
    import mlflow

    run = mlflow.active_run()
    if run is not None:
        RECORDER.close_session(run.info.run_id)


@guarded
def _before_fluent_run():
    RECORDER.activate_started_run()


@guarded
def _at_exit():
    RECORDER.close_session()


def _wrap_backward(original):
    @functools.wraps(original)
    def backward(self, *args, **kwargs):
        recorder = RECORDER
        pending = recorder.pending
        if (
            recorder.quiet
            and recorder._scaled is None
            and self.requires_grad
            and self.numel() == 1
            and len(pending) < MAX_PENDING_LOSSES
        ):
            pending.append(self.detach())  # fast path: what on_backward does on an ordinary step
        else:
            _before_backward(self)
        out = original(self, *args, **kwargs)
        if recorder.clock is not None:
            _after_backward()
        return out

    return backward


def _wrap_loss(fn: str, original):
    @functools.wraps(original)
    def loss(*args, **kwargs):
        out = original(*args, **kwargs)
        if torch.compiler.is_compiling():
            return out  # a loss inside a function torch.compile traces: nothing of ours in its graph
        recorder = RECORDER
        if recorder.quiet and getattr(out, "requires_grad", False) and recorder.quiet_root.training:
            recorder.loss_call = kept_loss_call(args, kwargs)  # its target, should this step turn out to matter
            return out  # fast path: a training loss on an ordinary step (nothing else to look at)
        _after_loss(fn, args, kwargs, out)
        return out

    return loss


def _wrap_scaler_scale(original):
    @functools.wraps(original)
    def scale(self, outputs):
        out = original(self, outputs)
        _after_scale(outputs, out)
        return out

    return scale


def _wrap_scaler_step(original):
    @functools.wraps(original)
    def step(self, optimizer, *args, **kwargs):
        before = RECORDER.steps_started
        out = original(self, optimizer, *args, **kwargs)
        _after_scaler_step(before)
        return out

    return step


def _wrap_clip_norm(original):
    @functools.wraps(original)
    def clip_grad_norm_(parameters, *args, **kwargs):
        if not isinstance(parameters, torch.Tensor):
            parameters = list(parameters)  # may be a generator: the original must still see it all
        total = original(parameters, *args, **kwargs)
        try:
            session = RECORDER.clip_session()
            if session is not None:
                max_norm = args[0] if args else kwargs.get("max_norm")
                session.on_clip("norm", total if isinstance(total, torch.Tensor) else None, float(max_norm))
        except Exception:  # noqa: BLE001 - never raise into training; the evidence is just missing
            pass
        return total

    return clip_grad_norm_


def _wrap_clip_value(original):
    @functools.wraps(original)
    def clip_grad_value_(parameters, *args, **kwargs):
        if not isinstance(parameters, torch.Tensor):
            parameters = list(parameters)
        pre, session, limit = None, None, None
        try:
            session = RECORDER.clip_session()
            if session is not None:
                limit = float(args[0] if args else kwargs.get("clip_value"))
                if session.wants_pre_clip_size("value"):
                    pre = grad_abs_max(parameters)
        except Exception:  # noqa: BLE001
            session = None
        out = original(parameters, *args, **kwargs)
        try:
            if session is not None and limit is not None:
                session.on_clip("value", pre, limit)
        except Exception:  # noqa: BLE001
            pass
        return out

    return clip_grad_value_


def _wrap_loader_iter(original):
    @functools.wraps(original)
    def __iter__(self):
        try:
            RECORDER.on_loader_iter(self)
        except Exception:  # noqa: BLE001 - never raise into training
            pass
        return original(self)

    return __iter__


def _call_first(before, original):
    """`original` with `before()` (guarded: it never raises) called ahead of each call."""

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        before()
        return original(*args, **kwargs)

    return wrapper


# --- the ledger's owner --------------------------------------------------------------------------
class Patches:
    """Applies the entry points above (once per process) and reverts them, through one ledger."""

    def __init__(self) -> None:
        self.ledger = Ledger()
        self._lock = threading.Lock()

    @property
    def installed(self) -> bool:
        return bool(self.ledger)

    def install(self) -> None:
        """Install the dormant entry points once. Safe to call again (and from import hooks)."""
        with self._lock:
            if self.ledger:
                return
            ledger = self.ledger
            from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

            ledger.add("optimizer_step_pre", register_optimizer_step_pre_hook(_step_pre_hook).remove)
            ledger.add("optimizer_step_post", register_optimizer_step_post_hook(_step_post_hook).remove)
            ledger.patch("backward", torch.Tensor, "backward", _wrap_backward(torch.Tensor.backward))
            import torch.nn.functional as F

            for fn in WATCHED_LOSSES:
                original = getattr(F, fn, None)
                if original is not None:
                    ledger.patch(f"loss.{fn}", F, fn, _wrap_loss(fn, original))
            try:
                from torch.amp.grad_scaler import GradScaler
            except Exception:  # noqa: BLE001 - an old torch without torch.amp.GradScaler
                GradScaler = None
            if GradScaler is not None:
                ledger.patch("grad_scaler.scale", GradScaler, "scale", _wrap_scaler_scale(GradScaler.scale))
                ledger.patch("grad_scaler.step", GradScaler, "step", _wrap_scaler_step(GradScaler.step))
            self._patch_clipping()
            from torch.utils.data import DataLoader

            # subclasses that override `__iter__` and call super() are seen too
            ledger.patch("data_loader.iter", DataLoader, "__iter__", _wrap_loader_iter(DataLoader.__iter__))

    def _patch_clipping(self) -> None:
        """Wrap torch's clipping functions where user code finds them (`torch.nn.utils.X` and
        `torch.nn.utils.clip_grad.X`). Code that did `from torch.nn.utils import clip_grad_norm_`
        before the recorder was installed keeps the unwrapped function (no evidence, no harm)."""
        import torch.nn.utils as utils
        import torch.nn.utils.clip_grad as clip_grad

        for name, wrap in (("clip_grad_norm_", _wrap_clip_norm), ("clip_grad_value_", _wrap_clip_value)):
            original = getattr(clip_grad, name, None)
            if original is None:
                continue
            wrapped = wrap(original)
            for module in (utils, clip_grad):
                if getattr(module, name, None) is original:
                    self.ledger.patch(f"{module.__name__}.{name}", module, name, wrapped)

    def install_run_patches(self) -> None:
        """Wrap `mlflow.end_run` (flush before a run closes) and flush at exit. Once, when the
        first session starts, and only while the entry points are installed."""
        with self._lock:
            if "mlflow.end_run" in self.ledger or not self.ledger:
                return
            import mlflow
            import mlflow.tracking.fluent as fluent

            end_run = _call_first(_before_end_run, fluent.end_run)
            self.ledger.patch("mlflow.end_run", fluent, "end_run", end_run)
            self.ledger.patch("mlflow.end_run", mlflow, "end_run", end_run)
            # the fluent calls that start a run when none is active (mlflow.log_metric, ...)
            # find the run this recorder is still creating on a remote store (a private
            # function of MLflow's: left alone where a version lacks it)
            if callable(getattr(fluent, "_get_or_start_run", None)):
                wrapped = _call_first(_before_fluent_run, fluent._get_or_start_run)
                self.ledger.patch("mlflow._get_or_start_run", fluent, "_get_or_start_run", wrapped)
            atexit.register(_at_exit)
            self.ledger.add("atexit", lambda: atexit.unregister(_at_exit))

    def uninstall(self) -> None:
        """Remove every patch (the recorder's buffers are flushed first) and forget the recorder's
        per-process state."""
        with self._lock:
            if not self.ledger:
                return
            RECORDER.close_session()
            try:
                self.ledger.revert()
            finally:
                RECORDER.reset()

    def uninstall_if_switched_off(self) -> bool:
        """Remove the patches when the recorder was on in this process and is off now. Called only
        from safe points (a backward or loss call, a run start), never from inside an optimizer
        hook, whose dict torch is iterating over."""
        if self.ledger and RECORDER.was_on and current_config() is None:
            self.uninstall()
            return True
        return False


PATCHES = Patches()
RECORDER.patches = PATCHES  # the state machine asks for these at its safe points


def install_dormant_hooks() -> None:
    """Install the recorder's entry points once per process (see `Patches.install`)."""
    PATCHES.install()


def hooks_installed() -> bool:
    return PATCHES.installed


def uninstall_hooks() -> None:
    """Remove every patch (see `Patches.uninstall`)."""
    PATCHES.uninstall()


def uninstall_if_switched_off() -> bool:
    return PATCHES.uninstall_if_switched_off()
