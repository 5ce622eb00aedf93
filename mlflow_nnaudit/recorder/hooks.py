"""The recorder's entry points into a running program, installed once per process.

- torch's global optimizer step pre/post hooks (they fire for every optimizer, subclasses
  that override `step` included, without patching any class);
- a thin wrapper around `torch.Tensor.backward`, the one place every training loop's loss
  passes through (plain loops, Lightning, the HF Trainer, closures);
- thin wrappers around torch's functional losses (`torch.nn.functional.cross_entropy`, ...;
  the `nn.*Loss` modules call them too), to see what the loss is fed and to catch the
  evaluation losses computed without autograd;
- a wrapper around `mlflow.end_run`, so buffered metrics reach a run before it is closed.
  (installed when the first session starts: this module can be imported from torch's
  import hook while `import mlflow` is still half-way, so it touches MLflow only lazily).

While the recorder is off (`current_config()` is None) each of them returns after one
cached lookup. Nothing here ever raises into the user's program.
"""

from __future__ import annotations

import atexit
import functools
import threading

import torch

from mlflow_nnaudit.recorder.config import current_config, warn
from mlflow_nnaudit.recorder.probes.loss import LossProbe

_lock = threading.Lock()
#: how often (in optimizer steps) the recorder checks that the active MLflow run is still the same
RUN_CHECK_EVERY = 50
_installed: dict[str, object] = {}


class Recorder:
    """Process-wide state: the losses seen since the last optimizer step, and the session."""

    def __init__(self) -> None:
        self.pending: list[torch.Tensor] = []
        self.session = None  # RunSession
        self.failures = 0
        # loss calls seen before the first optimizer step of a session (the first loss, the
        # first loss inputs) are kept here and handed to the session when it starts
        self.early_loss_probe = LossProbe()

    def on_loss(self, fn: str, inp, target, out) -> None:
        if current_config() is None:
            return
        session = self.session
        if session is not None:
            session.observe_loss(fn, inp, target, out)
        else:
            evaluating = not torch.is_grad_enabled() or not getattr(out, "requires_grad", False)
            self.early_loss_probe.observe(fn, inp, target, out, evaluating, sampled=True)

    def on_backward(self, tensor: torch.Tensor) -> None:
        if current_config() is None:
            return
        if tensor.numel() == 1 and len(self.pending) < 10_000:
            if not self.pending and self.session is not None:
                self.session.before_backward()
            self.pending.append(tensor.detach())

    def on_step_pre(self, optimizer) -> None:
        config = current_config()
        if config is None:
            self.pending.clear()
            return
        session = self.session
        # Which run to log into is re-checked when there is no session (the last one ended with
        # its run) and every RUN_CHECK_EVERY steps, not on every step: a fluent run lookup per
        # step would be a measurable share of a small model's step.
        if session is None or session.step % RUN_CHECK_EVERY == 0:
            session = self._session_for_active_run(config)
        session.config = config
        session.before_step(optimizer)

    def on_step_post(self, optimizer) -> None:
        session = self.session
        losses, self.pending = self.pending, []
        if session is None or current_config() is None:
            return
        session.after_step(optimizer, losses)

    def _session_for_active_run(self, config):
        import mlflow

        from mlflow_nnaudit.recorder.session import RunSession

        _install_mlflow_patches()
        run = mlflow.active_run()
        started = False
        if run is None:
            # as MLflow's own autologgers do: no active run at the first step -> start one
            run = mlflow.start_run()
            started = True
        if self.session is None or self.session.run_id != run.info.run_id:
            self.close_session()
            self.session = RunSession(run.info.run_id, config, started_run=started, loss_probe=self.early_loss_probe)
            self.early_loss_probe = LossProbe()
        return self.session

    def close_session(self, run_id: str | None = None) -> None:
        """Flush and close the session (only if it records into `run_id`, when given)."""
        session = self.session
        if session is None or (run_id is not None and session.run_id != run_id):
            return
        self.session = None
        session.close()


RECORDER = Recorder()


def _guarded(fn):
    """Run a hook body; turn any exception into a warning (and give up after repeated ones)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if RECORDER.failures >= 3:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - never raise into training
            RECORDER.failures += 1
            warn(current_config(), f"recorder error ({type(exc).__name__}: {exc}); training continues"
                 + ("; recorder switched off for this process" if RECORDER.failures >= 3 else ""))
            return None

    return wrapper


@_guarded
def _step_pre_hook(optimizer, _args, _kwargs):
    RECORDER.on_step_pre(optimizer)


@_guarded
def _step_post_hook(optimizer, _args, _kwargs):
    RECORDER.on_step_post(optimizer)


@_guarded
def _before_backward(tensor):
    RECORDER.on_backward(tensor)


@_guarded
def _after_loss(fn, args, kwargs, out):
    inp = args[0] if args else kwargs.get("input")
    target = args[1] if len(args) > 1 else kwargs.get("target")
    RECORDER.on_loss(fn, inp, target, out)


#: torch.nn.functional losses that are watched (the nn.*Loss modules call these as well)
WATCHED_LOSSES = (
    "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
)


def _wrap_loss(fn: str, original):
    @functools.wraps(original)
    def loss(*args, **kwargs):
        out = original(*args, **kwargs)
        _after_loss(fn, args, kwargs, out)
        return out

    return loss


@_guarded
def _before_end_run():
    import mlflow

    run = mlflow.active_run()
    if run is not None:
        RECORDER.close_session(run.info.run_id)


@_guarded
def _at_exit():
    RECORDER.close_session()


def install_dormant_hooks() -> None:
    """Install the hooks once per process. Safe to call again (and from import hooks)."""
    with _lock:
        if _installed:
            return
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        _installed["pre"] = register_optimizer_step_pre_hook(_step_pre_hook)
        _installed["post"] = register_optimizer_step_post_hook(_step_post_hook)

        original_backward = torch.Tensor.backward

        @functools.wraps(original_backward)
        def backward(self, *args, **kwargs):
            _before_backward(self)
            return original_backward(self, *args, **kwargs)

        backward.__nnaudit_original__ = original_backward
        torch.Tensor.backward = backward
        _installed["backward"] = original_backward

        import torch.nn.functional as F

        originals = {}
        for fn in WATCHED_LOSSES:
            original = getattr(F, fn, None)
            if original is not None:
                originals[fn] = original
                setattr(F, fn, _wrap_loss(fn, original))
        _installed["losses"] = originals
        _install_probe_wrappers()


def _install_probe_wrappers() -> None:
    """Wrappers that feed single probes (gradient clipping calls, DataLoader epochs); each
    lives in its probe's module."""
    from mlflow_nnaudit.recorder.probes.clipping import install_clipping_hooks
    from mlflow_nnaudit.recorder.probes.loader import install_loader_hooks

    install_clipping_hooks()
    install_loader_hooks()


def _install_mlflow_patches() -> None:
    """Wrap `mlflow.end_run` (flush before a run closes) and flush at exit. Once."""
    with _lock:
        if "end_run" in _installed or not _installed:
            return
        import mlflow
        import mlflow.tracking.fluent as fluent

        original_end_run = fluent.end_run

        @functools.wraps(original_end_run)
        def end_run(*args, **kwargs):
            _before_end_run()
            return original_end_run(*args, **kwargs)

        fluent.end_run = end_run
        mlflow.end_run = end_run
        _installed["end_run"] = original_end_run
        atexit.register(_at_exit)


def uninstall_hooks() -> None:
    """Remove every hook and patch (the recorder's buffers are flushed first)."""
    with _lock:
        if not _installed:
            return
        RECORDER.close_session()
        _installed.pop("pre").remove()
        _installed.pop("post").remove()
        torch.Tensor.backward = _installed.pop("backward")
        import torch.nn.functional as F

        for fn, original in _installed.pop("losses").items():
            setattr(F, fn, original)
        from mlflow_nnaudit.recorder.probes.clipping import uninstall_clipping_hooks
        from mlflow_nnaudit.recorder.probes.loader import uninstall_loader_hooks

        uninstall_clipping_hooks()
        uninstall_loader_hooks()
        original_end_run = _installed.pop("end_run", None)
        if original_end_run is not None:
            import mlflow
            import mlflow.tracking.fluent as fluent

            fluent.end_run = original_end_run
            mlflow.end_run = original_end_run
            atexit.unregister(_at_exit)
        RECORDER.pending.clear()
        RECORDER.failures = 0
        RECORDER.early_loss_probe = LossProbe()
