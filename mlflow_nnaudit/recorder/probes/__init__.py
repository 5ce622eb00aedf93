"""Recorder probes: one kind of evidence each, none knowing about MLflow or the recorder.

Every probe is fed only through the probe interface (`base.Probe`): the session calls each
of its methods on the probes that override it.
"""

from mlflow_nnaudit.recorder.probes.activations import ActivationProbe
from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe, StepContext
from mlflow_nnaudit.recorder.probes.clipping import ClipProbe
from mlflow_nnaudit.recorder.probes.data import DataProbe
from mlflow_nnaudit.recorder.probes.eval_mode import EvalModeProbe
from mlflow_nnaudit.recorder.probes.gradients import GradientProbe
from mlflow_nnaudit.recorder.probes.learning import LearningProbe
from mlflow_nnaudit.recorder.probes.loader import LoaderProbe
from mlflow_nnaudit.recorder.probes.loss import LossProbe
from mlflow_nnaudit.recorder.probes.model import ModelFactsProbe
from mlflow_nnaudit.recorder.probes.moments import MomentProbe
from mlflow_nnaudit.recorder.probes.stale_grads import StaleGradientProbe
from mlflow_nnaudit.recorder.probes.updates import UpdateProbe


def default_probes() -> list[Probe]:
    """A session's probes, in the order their facts appear in `nnaudit/diagnostics.json`."""
    return [
        ModelFactsProbe(),
        GradientProbe(),
        UpdateProbe(),
        ActivationProbe(),
        ClipProbe(),
        LoaderProbe(),
        LossProbe(),
        DataProbe(),
        EvalModeProbe(),
        StaleGradientProbe(),
        MomentProbe(),
        LearningProbe(),
    ]


__all__ = [
    "ActivationProbe",
    "ClipProbe",
    "DataProbe",
    "EvalModeProbe",
    "GradientProbe",
    "LearningProbe",
    "LoaderProbe",
    "LossProbe",
    "ModelFactsProbe",
    "MomentProbe",
    "ModelInfo",
    "Probe",
    "StaleGradientProbe",
    "StepContext",
    "UpdateProbe",
    "default_probes",
]
