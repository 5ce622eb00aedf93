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

# The callback's hooks are in `_lightning_hooks.py`, mixed into the callback classes of
# `_lightning_callback.py` / `_pl_callback.py`, which the factories below import lazily.


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
