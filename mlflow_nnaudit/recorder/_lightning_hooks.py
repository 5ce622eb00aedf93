"""The Lightning callback's hooks (see `lightning.py`): bind the recorder to the fit's run at its
start, unbind at its end. Apart from `lightning.py`'s factories, so that the callback modules
can import these without an import cycle (the factories import the callback modules).
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
        from mlflow_nnaudit.recorder.config import current_config, describe, warn

        warn(current_config(), f"Lightning integration error ({describe(exc)}); training continues")
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
