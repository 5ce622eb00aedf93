"""mlflow-nnaudit: find out why a PyTorch training run failed.

- `autolog()`: the recorder, an MLflow autolog extension for PyTorch training loops
  (needs torch; a plain `mlflow.autolog()` turns it on too).
- `audit()`: the auditor, which reads a tracking store, decides each finished run's status
  and failure causes, and tags the runs (never needs torch).
"""

from __future__ import annotations

from mlflow_nnaudit._version import __version__


def autolog(*args, **kwargs):
    """Turn the training-time recorder on (or off). See `mlflow_nnaudit.recorder.autolog`."""
    from mlflow_nnaudit.recorder import autolog as _autolog

    return _autolog(*args, **kwargs)


def audit(*args, **kwargs):
    """Audit a tracking store. See `mlflow_nnaudit.auditor.runner.audit`."""
    from mlflow_nnaudit.auditor.runner import audit as _audit

    return _audit(*args, **kwargs)


__all__ = ["__version__", "audit", "autolog"]
