"""The recorder on every kind of store the auditor reads: a sqlite file, MLflow's file store
(`./mlruns`, where a metric key that is a prefix-with-slash of another cannot exist on disk),
a real `mlflow server`, and PostgreSQL (skipped where it cannot start). A tiny training run on
each, then the auditor's own reader gets back every `nnaudit/*` metric, with every point."""

from __future__ import annotations

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.store import Store
from tests.services import MlflowServer

STEPS = 30


def _train(uri: str) -> str:
    mlflow.set_tracking_uri(uri)
    mlflow_nnaudit.autolog(sample_every_n_steps=5, max_probe_overhead=None)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    with mlflow.start_run() as run:
        for _ in range(STEPS):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            with torch.no_grad():
                model.eval()
                nn.functional.cross_entropy(model(x), y)  # a validation loss
                model.train()
    return run.info.run_id


def _check_read_back(uri: str, run_id: str) -> None:
    client = MlflowClient(uri)
    logged = {k for k in client.get_run(run_id).data.metrics if k.startswith(schema.METRIC_PREFIX)}
    expected = {schema.stored_key(k) for k in (schema.TRAIN_LOSS, schema.VAL_LOSS, schema.GRAD_NORM, schema.LR)}
    expected |= {
        schema.stored_key(schema.layer_key(kind, layer))
        for kind in (schema.LAYER_GRAD_NORM, schema.LAYER_WEIGHT_NORM, schema.LAYER_UPDATE_RATIO)
        for layer in ("0", "2")
    }
    expected.add(schema.stored_key(schema.layer_key(schema.LAYER_DEAD_RELU, "1")))
    assert expected <= logged, sorted(expected - logged)
    # no stored key is a prefix-with-slash of another (a file store could not hold both)
    assert not [a for a in logged for b in logged if b.startswith(a + "/")]
    with Store(uri) as store:
        record = store.get_run(run_id)
        store.prefetch([record])
        curves = store.load_curves(record)
    for key in logged:
        assert key in curves, (key, sorted(curves))
        assert len(curves[key].steps) == len(client.get_metric_history(run_id, key)), key
    assert len(curves[schema.stored_key(schema.TRAIN_LOSS)].steps) == STEPS


def test_no_recorded_name_nests_in_another():
    """Every name the recorder writes, and every per-layer kind (with any layer), is never a
    prefix-with-slash of another: the file store keeps `a` as a file, `a/b` as a file in a
    directory `a`. Per-layer keys are the only ones with a slash."""
    layered = [schema.layer_key(kind, "fc1") for kind in schema.LAYER_KINDS]
    names = [*schema.METRICS, *layered]
    assert not [(a, b) for a in names for b in names if schema.keys_nest(a, b)]
    assert not set(schema.METRICS) & set(schema.LAYER_KINDS)
    assert schema.keys_nest("grad_norm", "grad_norm/fc1")  # what 0.1 wrote
    assert all(schema.recorder_writes(schema.stored_key(n)) for n in names)


def test_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _check_read_back(uri, _train(uri))


def test_file_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    _check_read_back(uri, _train(uri))


def test_tracking_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    server = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path))
    try:
        _check_read_back(server.url, _train(server.url))
    finally:
        server.stop()


def test_postgresql_store(tmp_path, monkeypatch, postgres):
    monkeypatch.chdir(tmp_path)
    uri = postgres.create_database("recorder_stores")
    _check_read_back(uri, _train(uri))


@pytest.fixture(autouse=True)
def _restore_tracking_uri():
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)
