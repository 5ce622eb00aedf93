"""Recorder probes: one kind of evidence each, none knowing about MLflow."""

from mlflow_nnaudit.recorder.probes.activations import ActivationProbe
from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe, StepContext
from mlflow_nnaudit.recorder.probes.clipping import ClipProbe
from mlflow_nnaudit.recorder.probes.data import DataProbe
from mlflow_nnaudit.recorder.probes.gradients import GradientProbe
from mlflow_nnaudit.recorder.probes.loader import LoaderProbe
from mlflow_nnaudit.recorder.probes.updates import UpdateProbe


def default_probes() -> list[Probe]:
    """The probes run around sampled optimizer steps (the loss and data probes are fed
    differently: from loss calls and the model's forward pre-hook; the clipping and loader
    probes are fed by their own wrappers and only report a summary)."""
    return [GradientProbe(), UpdateProbe(), ActivationProbe(), ClipProbe(), LoaderProbe()]


__all__ = ["ActivationProbe", "ClipProbe", "LoaderProbe", "DataProbe", "GradientProbe", "ModelInfo", "Probe", "StepContext", "UpdateProbe",
           "default_probes"]
