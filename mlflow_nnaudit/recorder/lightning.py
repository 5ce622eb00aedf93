"""Lightning: tell the recorder which run a `Trainer.fit` writes to.

Lightning's MLFlowLogger logs through an `MlflowClient` into a run of its own; there is no
active fluent run for the recorder to find. Lightning loads callbacks registered under the
entry point groups `lightning.pytorch.callbacks_factory` / `pytorch_lightning.callbacks_factory`
into every Trainer (no code change for the user); this module's factories return one small
callback that, for the length of a fit, points the recorder at the MLFlowLogger's run (with
that logger's client, so its tracking URI) and names the LightningModule as the model.
Without an MLFlowLogger (e.g. `mlflow.pytorch.autolog()`, which opens a fluent run around
`fit`) the recorder keeps writing into the active fluent run.

The callback does nothing while the recorder is off, and only rank 0 binds. Lightning calls
the factory while building the Trainer, so neither it nor the callback may ever raise.
"""

from __future__ import annotations

from typing import Any


def _mlflow_logger_run(trainer) -> tuple[str | None, Any]:
    """(run id, MlflowClient) of the trainer's MLFlowLogger, or (None, None)."""
    for logger in getattr(trainer, "loggers", None) or []:
        if type(logger).__name__ == "MLFlowLogger" and hasattr(logger, "run_id"):
            run_id = logger.run_id  # creates the logger's run if it has none yet, as its first log would
            client = logger.experiment
            if run_id and hasattr(client, "log_batch"):
                return run_id, client
    return None, None


def _bind(trainer, pl_module) -> None:
    try:
        from mlflow_nnaudit.recorder.config import current_config
        from mlflow_nnaudit.recorder.patches import install_dormant_hooks
        from mlflow_nnaudit.recorder.recorder import RECORDER, RunTarget

        if current_config() is None or not getattr(trainer, "is_global_zero", True):
            return
        install_dormant_hooks()  # no-op unless they were removed and the recorder is back on
        run_id, client = _mlflow_logger_run(trainer)
        RECORDER.bind(RunTarget(owner=id(trainer), run_id=run_id, client=client, model=pl_module))
    except Exception as exc:  # noqa: BLE001 - never break training
        _warn(exc)


def _unbind(trainer) -> None:
    try:
        from mlflow_nnaudit.recorder.recorder import RECORDER

        RECORDER.unbind(id(trainer))
    except Exception as exc:  # noqa: BLE001
        _warn(exc)


def _warn(exc: Exception) -> None:
    try:
        from mlflow_nnaudit.recorder.config import current_config, warn

        warn(current_config(), f"Lightning integration error ({type(exc).__name__}: {exc}); training continues")
    except Exception:  # noqa: BLE001
        pass


class RecorderCallbackHooks:
    """The callback's hooks, mixed into a Lightning `Callback` subclass defined at module level
    in `_lightning_callback.py` / `_pl_callback.py` (module level so that a Trainer pickled
    for `ddp_spawn` can be unpickled)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        _bind(trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        _unbind(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        _unbind(trainer)

    def teardown(self, trainer, pl_module, stage) -> None:
        _unbind(trainer)


def lightning_callbacks() -> list:
    """Entry point `lightning.pytorch.callbacks_factory`."""
    try:
        from mlflow_nnaudit.recorder._lightning_callback import NnauditRecorderCallback

        return [NnauditRecorderCallback()]
    except Exception:  # noqa: BLE001 - never break building a Trainer
        return []


def pytorch_lightning_callbacks() -> list:
    """Entry point `pytorch_lightning.callbacks_factory` (the older package name)."""
    try:
        from mlflow_nnaudit.recorder._pl_callback import NnauditRecorderCallback

        return [NnauditRecorderCallback()]
    except Exception:  # noqa: BLE001
        return []
