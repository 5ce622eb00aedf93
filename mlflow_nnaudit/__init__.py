"""mlflow-nnaudit: find out why a PyTorch training run failed.

- `autolog()`: the recorder, an MLflow autolog extension for PyTorch training loops
  (needs torch; a plain `mlflow.autolog()` turns it on too).
- `audit()`: the auditor, which reads a tracking store, decides each finished run's status
  and failure causes, and tags the runs (never needs torch).
"""

from __future__ import annotations

from mlflow_nnaudit._version import __version__


# `import mlflow` imports this package (through the entry point in `_entrypoint.py`) while
# MLflow itself is still half-imported, so nothing here may import MLflow or torch eagerly:
# `autolog` and `audit` are resolved on first access (PEP 562).
def __getattr__(name: str):
    if name == "autolog":
        from mlflow_nnaudit.recorder.api import autolog

        return autolog
    if name == "audit":
        from mlflow_nnaudit.auditor.runner import audit

        return audit
    raise AttributeError(f"module 'mlflow_nnaudit' has no attribute {name!r}")


__all__ = ["__version__", "audit", "autolog"]
