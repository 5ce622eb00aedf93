"""The recorder's Lightning callback for `lightning.pytorch` (see `lightning.py`)."""

from lightning.pytorch.callbacks import Callback

from mlflow_nnaudit.recorder._lightning_hooks import RecorderCallbackHooks


class NnauditRecorderCallback(RecorderCallbackHooks, Callback):
    """Points the mlflow-nnaudit recorder at this fit's MLflow run."""
