"""The recorder's Lightning callback for `pytorch_lightning` (see `lightning.py`)."""

from pytorch_lightning.callbacks import Callback

from mlflow_nnaudit.recorder._lightning_hooks import RecorderCallbackHooks


class NnauditRecorderCallback(RecorderCallbackHooks, Callback):
    """Points the mlflow-nnaudit recorder at this fit's MLflow run."""
