"""The recorder: an MLflow autolog extension that watches PyTorch training from inside.

It is switched on by `mlflow_nnaudit.autolog()` (`api.py`), or by a plain `mlflow.autolog()`
when the package is installed (see `_entrypoint.py`). It installs a few of torch's global
hooks and patches once, through one ledger (`patches.py`); while the recorder is off
(`config.current_config()` is None) they return at once. They feed the state machine
(`recorder.py`: which step is running, which run is recorded into), whose per-run session
(`session.py`: the step clock, the sampling budget, the buffers) feeds the evidence probes
(`probes/`, only through the probe interface in `probes/base.py`); the MLflow writes are in
`sink.py`. Imports within the recorder go one way: patches -> recorder -> session -> probes. Nothing here imports torch or MLflow at package import time.
"""
