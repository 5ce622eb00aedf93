"""The recorder: an MLflow autolog extension that watches PyTorch training from inside.

It is switched on by `mlflow_nnaudit.autolog()` (`api.py`), or by a plain `mlflow.autolog()`
when the package is installed (see `_entrypoint.py`). It installs a few of torch's global
hooks once (`hooks.py`); while the recorder is off (`config.current_config()` is None) they
return at once. The per-run work is in `session.py`, the evidence in `probes/`, the MLflow
writes in `sink.py`. Nothing here imports torch or MLflow at package import time.
"""
