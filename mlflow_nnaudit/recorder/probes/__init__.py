"""Recorder probes: one kind of evidence each, none knowing about MLflow."""

from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe, StepContext
from mlflow_nnaudit.recorder.probes.gradients import GradientProbe
from mlflow_nnaudit.recorder.probes.updates import UpdateProbe


def default_probes() -> list[Probe]:
    return [GradientProbe(), UpdateProbe()]


__all__ = ["ModelInfo", "Probe", "StepContext", "GradientProbe", "UpdateProbe", "default_probes"]
