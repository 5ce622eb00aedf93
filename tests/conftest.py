"""Shared fixtures: real sqlite MLflow stores in temporary directories, and a clean recorder
state around every test (the recorder's hooks are process-wide)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for `sample_runs`

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# `make test` runs the suite in two worker processes (pytest-xdist): one torch thread each, or the
# workers' thread pools fight over the cores of a 2-core machine (set before torch is imported)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def store_uri(tmp_path, monkeypatch) -> str:
    """A fresh sqlite tracking store, made the default for the test."""
    import mlflow

    uri = sqlite_uri(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # artifacts next to the database, not in the working directory
    monkeypatch.chdir(tmp_path)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(autouse=True)
def _reset_autolog_config():
    """Leave no autolog configuration behind for the next test."""
    yield
    try:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()
    except Exception:  # noqa: BLE001
        pass
    from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

    # every flavor's switches, not only ours and mlflow.autolog()'s: an in-process
    # mlflow.autolog() also leaves "pytorch" on, which switches the recorder on for later tests
    for flavor in list(AUTOLOGGING_INTEGRATIONS):
        AUTOLOGGING_INTEGRATIONS.pop(flavor, None)
    AUTOLOGGING_INTEGRATIONS["nnaudit"] = {}
    if "mlflow_nnaudit.recorder.recorder" in sys.modules:
        from mlflow_nnaudit.recorder.recorder import RECORDER

        RECORDER.close_session()
        RECORDER.pending.clear()
        RECORDER.failures = 0


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory) -> str:
    """Every sample run trained once into one sqlite store shared by the integration tests (once per
    pytest-xdist worker that needs it)."""
    import mlflow

    from sample_runs.faults import SAMPLES, train_sample

    root = tmp_path_factory.mktemp("samples")
    uri = sqlite_uri(root / "mlflow.db")
    old_cwd = os.getcwd()
    os.chdir(root)
    try:
        mlflow.set_tracking_uri(uri)
        exp_id = mlflow.create_experiment("nnaudit-samples", artifact_location=str(root / "artifacts"))
        for sample in SAMPLES:
            train_sample(sample, exp_id)
    finally:
        os.chdir(old_cwd)
        from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

        AUTOLOGGING_INTEGRATIONS["nnaudit"] = {}
    return uri


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL cluster for the session (skips, saying how to install it, where it
    cannot start)."""
    from tests.services import Postgres

    try:
        pg = Postgres()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield pg
    pg.stop()


#: fixtures that make a test slow (servers, trained sample runs, frameworks), and the marker each gives
_MARKING_FIXTURES = {
    "postgres": ("postgres", "slow"),
    "sample_store": ("slow",),
    "sqlite_server": ("slow",),
}
#: test files whose every test trains a framework or several processes
_SLOW_FILES = {"test_frameworks.py", "test_server.py", "test_programs.py"}


def pytest_collection_modifyitems(config, items):
    """Mark tests by what they use, so `make test-fast` can leave the slow ones out and nobody has
    to remember to mark a new test; `make test` runs them all."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marks = {m for fixture, given in _MARKING_FIXTURES.items() if fixture in names for m in given}
        if item.path.name in _SLOW_FILES:
            marks.add("slow")
        if "ui" in item.name.split("_") or "browser" in item.name:
            marks.update({"browser", "slow"})
        for mark in sorted(marks):
            item.add_marker(getattr(pytest.mark, mark))
