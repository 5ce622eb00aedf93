"""Bulk SQL reading of metric histories (auditor/bulk.py) against the MLflow client, on real
sqlite stores: the same curves point for point, the fallback to the client, the same audit."""

from __future__ import annotations

import json
import logging
import math
import os
import time
import uuid

import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

import mlflow_nnaudit
from mlflow_nnaudit.auditor import bulk
from mlflow_nnaudit.auditor.store import Store, StoreError

T0 = 1_700_000_000_000


def _log(client: MlflowClient, exp_id: str, name: str, points: list[tuple[str, float, int, int]]) -> str:
    """A finished run with the given (key, value, timestamp offset, step) points, logged in order."""
    run = client.create_run(exp_id, run_name=name)
    rid = run.info.run_id
    metrics = [Metric(k, float(v), T0 + ts, step) for k, v, ts, step in points]
    for i in range(0, len(metrics), 1000):
        client.log_batch(rid, metrics=metrics[i : i + 1000])
    client.set_terminated(rid)
    return rid


@pytest.fixture
def tricky_store(store_uri):
    """Runs whose histories have everything the readers must agree on."""
    return store_uri, _tricky_runs(MlflowClient(), "bulk")


def _tricky_runs(client: MlflowClient, experiment: str) -> dict[str, str]:
    exp_id = client.create_experiment(experiment)
    rng = np.random.default_rng(0)
    runs = {}
    loss = [("train_loss", float(v), i * 10, i) for i, v in enumerate(1 + rng.random(40))]
    loss[10] = ("train_loss", math.nan, 100, 10)
    loss[11] = ("train_loss", math.inf, 110, 11)
    loss[12] = ("train_loss", -math.inf, 120, 12)
    loss[13] = ("train_loss", 1e300, 130, 13)  # large but finite
    loss[14] = ("train_loss", -0.0, 140, 14)
    runs["nonfinite"] = _log(
        client, exp_id, "nonfinite", loss + [("val_loss", float(v), i * 50, i * 5) for i, v in enumerate(rng.random(8))]
    )
    dup = [
        ("loss", 3.0, 0, 0),
        ("loss", 2.0, 5, 1),
        ("loss", 2.5, 5, 1),  # same step and time, two values
        ("loss", 1.0, 3, 1),  # same step, earlier time, logged later
        ("loss", 4.0, 9, 1),
        ("loss", 4.0, 9, 1),  # an exact duplicate (MLflow keeps one)
        ("loss", 0.5, 20, 2),
        ("loss", math.nan, 21, 2),
        ("loss", 0.0, 22, 2),
        ("loss", 7.0, 1, 5),
        ("loss", 6.0, 30, 3),  # steps out of order in time
        ("lr", 0.1, 0, 0),
        ("lr", 0.1, 1, 0),
        ("lr", 0.1, 2, 0),  # every point at step 0
    ]
    runs["duplicates"] = _log(client, exp_id, "duplicates", dup)
    many = []
    for j, key in enumerate(
        [
            "train_loss",
            "val_loss",
            "grad_norm",
            "learning_rate",
            "nnaudit/update_ratio/fc1",
            "nnaudit/labels_per_batch",
            "throughput",
        ]
    ):
        many += [(key, float(v), i * 7 + j, i) for i, v in enumerate(rng.random(30 + 5 * j))]
    runs["many"] = _log(client, exp_id, "many", many)
    runs["empty"] = _log(client, exp_id, "empty", [])
    return runs


def _client_curves(store: Store, run, keys):
    return {k: store.load_curve(run.run_id, k) for k in keys}


def _assert_same(a, b, where=""):
    assert a.key == b.key, where
    for field in ("steps", "values", "timestamps"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{where} {a.key} {field}: {x} vs {y}"
        np.testing.assert_array_equal(x, y, err_msg=f"{where} {a.key} {field}")
        assert np.array_equal(np.signbit(x), np.signbit(y)), f"{where} {a.key} {field} signs"


def test_bulk_reader_gives_the_client_curves(tricky_store, monkeypatch):
    _check_same_curves(*tricky_store, "bulk", monkeypatch)


@pytest.fixture
def postgres_uri(request):
    """NNAUDIT_TEST_POSTGRES_URI (a scratch database) when set, else a database of the
    session's own PostgreSQL cluster (tests/services.py)."""
    if os.environ.get("NNAUDIT_TEST_POSTGRES_URI"):
        return os.environ["NNAUDIT_TEST_POSTGRES_URI"]
    return request.getfixturevalue("postgres").create_database(f"bulk_{uuid.uuid4().hex[:8]}")


def test_bulk_reader_gives_the_client_curves_on_postgresql(monkeypatch, postgres_uri):
    uri = postgres_uri
    experiment = f"bulk-{uuid.uuid4().hex[:8]}"
    runs = _tricky_runs(MlflowClient(uri), experiment)
    _check_same_curves(uri, runs, experiment, monkeypatch)


def _check_same_curves(uri, runs, experiment, monkeypatch):
    # small batches and IN lists: curves split across fetches and queries must come out whole
    monkeypatch.setattr(bulk, "FETCH_ROWS", 7)
    monkeypatch.setattr(bulk, "MAX_RUNS_PER_QUERY", 2)
    with Store(uri) as store:
        exps = store.experiments([experiment])
        records = list(store.iter_runs(exps))
        assert {r.run_name for r in records} == set(runs)
        # the bulk listing of runs (SQL stores) gives exactly the client's records, in its order
        assert records == list(store._iter_runs_client({e.experiment_id: e.name for e in exps}, None))
        ended = sorted(r.end_time for r in records)
        cutoff = ended[len(ended) // 2]
        assert list(store.iter_runs(exps, cutoff)) == list(
            store._iter_runs_client({e.experiment_id: e.name for e in exps}, cutoff)
        )
        keys = {r.run_id: list(r.metric_keys) + ["never_logged"] for r in records}
        store.prefetch(records, keys)
        assert store.bulk_enabled
        client = MlflowClient(uri)
        checked = 0
        for r in records:
            got = store.load_curves(r, keys[r.run_id])
            want = _client_curves(store, r, keys[r.run_id])
            assert list(got) == list(want)
            for k in want:
                _assert_same(got[k], want[k], r.run_name)
                assert len(want[k]) == len(client.get_metric_history(r.run_id, k))
                checked += 1
        assert checked == sum(len(v) for v in keys.values()) == 15  # never_logged in each run too
        # what the tricky values became
        nf = next(r for r in records if r.run_name == "nonfinite")
        store.prefetch([nf], {nf.run_id: ["train_loss"]})
        tl = store.load_curves(nf, ["train_loss"])["train_loss"]
        assert math.isnan(tl.values[10]) and tl.values[11] == math.inf and tl.values[12] == -math.inf
        assert tl.values[13] == 1e300
        if uri.startswith("file:"):
            return  # a file store keeps exact duplicates (SQL stores' primary key drops them)
        dup = next(r for r in records if r.run_name == "duplicates")
        store.prefetch([dup], None)
        d = store.load_curves(dup, ["loss"])["loss"]
        assert d.steps.tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 3, 5]
        assert d.values[1:5].tolist() == [1.0, 2.0, 2.5, 4.0]


def test_prefetched_curves_are_served_once_and_memory_is_per_chunk(tricky_store, monkeypatch):
    uri, runs = tricky_store
    with Store(uri) as store:
        records = [r for r in store.iter_runs(store.experiments(["bulk"])) if r.metric_keys]
        store.prefetch(records[:1], None)
        assert set(store._cache) == {(records[0].run_id, k) for k in records[0].metric_keys}
        store.prefetch(records[1:2], None)  # replaces the previous chunk
        assert {rid for rid, _ in store._cache} <= {records[1].run_id}
        calls = []
        monkeypatch.setattr(store.client, "get_metric_history", lambda *a: calls.append(a) or [])
        store.load_curves(records[1])
        assert calls == []  # all from the cache
        store.load_curves(records[1])
        assert len(calls) == len(records[1].metric_keys)  # served once: the second read asks the client


@pytest.mark.parametrize("fault", ["unknown_version", "sql_error"])
def test_fallback_to_the_client_with_one_warning(tricky_store, monkeypatch, caplog, fault):
    uri, runs = tricky_store
    if fault == "unknown_version":
        monkeypatch.setattr(bulk, "VERIFIED_SCHEMA_VERSIONS", {"0123456789ab": "some other MLflow"})
    else:
        monkeypatch.setattr(bulk, "_SQLITE_HINT", " INDEXED BY no_such_index")
    caplog.set_level(logging.WARNING, logger="mlflow_nnaudit.auditor.store")
    with Store(uri) as store:
        records = list(store.iter_runs(store.experiments(["bulk"])))
        for r in records:  # one prefetch per run: only the first may warn
            store.prefetch([r], None)
            got = store.load_curves(r)
            for k, c in _client_curves(store, r, r.metric_keys).items():
                _assert_same(got[k], c)
        assert not store.bulk_enabled
    warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 1, [w.getMessage() for w in warnings]
    msg = warnings[0].getMessage()
    assert "through the MLflow client" in msg
    assert ("schema version" in msg) if fault == "unknown_version" else ("no_such_index" in msg)


def test_this_mlflow_schema_version_is_verified(tricky_store):
    """Fails after an MLflow upgrade that changed the schema version: run this file on the new
    version, and when the curves agree add the version to bulk.VERIFIED_SCHEMA_VERSIONS."""
    uri, _ = tricky_store
    reader = bulk.SqlBulkReader(uri)
    try:
        with reader._get_engine().connect() as conn:
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            assert version in bulk.VERIFIED_SCHEMA_VERSIONS, f"bulk reading unverified on schema {version}"
            # the reader's engine is read-only
            with pytest.raises(Exception, match="readonly"):
                conn.exec_driver_sql("DELETE FROM metrics")
    finally:
        reader.close()


def test_this_mlflow_version_and_the_schema_it_expects_are_known():
    """Fails after an MLflow upgrade: add its version to bulk.SCHEMA_OF_MLFLOW with its schema
    head (the audit otherwise makes MLflow's client on every SQL store, correct but ~3 s slower)."""
    from mlflow.store.db.utils import _get_latest_schema_revision
    from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT
    from mlflow.version import VERSION

    assert bulk.installed_mlflow_version() == VERSION
    assert bulk.SCHEMA_OF_MLFLOW.get(VERSION) == _get_latest_schema_revision()
    assert bulk.SEARCH_EXPERIMENTS_DEFAULT == SEARCH_MAX_RESULTS_DEFAULT


def _experiment_answers(uri: str, names_list) -> list:
    """What Store.experiments says for each list of names: (id, name) pairs, or its error."""
    out = []
    with Store(uri) as store:
        for names in names_list:
            try:
                out.append(sorted((e.experiment_id, e.name) for e in store.experiments(names)))
            except StoreError as exc:
                out.append(str(exc))
        out.append(store.has_client)
    return out


def _check_experiments_read_in_sql(uri, monkeypatch):
    client = MlflowClient(uri)
    tag = uuid.uuid4().hex[:6]
    a = client.create_experiment(f"a-{tag}")
    client.create_experiment(f"b-{tag}")
    gone = client.create_experiment(f"gone-{tag}")
    client.delete_experiment(gone)
    digits = client.create_experiment("7" + str(int(a) + 900))  # a name that reads as an id too
    cases = [(), (f"a-{tag}",), (a,), (f"a-{tag}", f"b-{tag}"), (f"gone-{tag}",), (gone,), ("nope",), ("0",)]
    cases += [("7" + str(int(a) + 900),), (digits,), (f"A-{tag}",), (f"a-{tag} ",)]
    fast = _experiment_answers(uri, cases)
    assert fast.pop() is False  # listed in SQL: no MLflow client made
    monkeypatch.setattr(bulk, "SCHEMA_OF_MLFLOW", {})  # MLflow's client, as before
    slow = _experiment_answers(uri, cases)
    assert slow.pop() is True
    assert fast == slow
    assert any(isinstance(x, str) and "unknown experiment" in x for x in fast)


def test_experiments_are_read_in_sql_as_the_client_reads_them(store_uri, monkeypatch):
    _check_experiments_read_in_sql(store_uri, monkeypatch)


def test_experiments_are_read_in_sql_as_the_client_reads_them_on_postgresql(postgres_uri, monkeypatch):
    _check_experiments_read_in_sql(postgres_uri, monkeypatch)


@pytest.mark.parametrize("why", ["schema", "environment", "no_default_experiment", "database_error"])
def test_a_store_the_client_would_refuse_or_change_is_opened_by_the_client(store_uri, monkeypatch, why):
    """Only a store MLflow's client would open unchanged is listed without it: otherwise the
    client is made first, as before (its errors, and its changes to the store, unchanged)."""
    import sqlite3

    client = MlflowClient(store_uri)
    client.create_experiment("e")
    path = store_uri.split(":///", 1)[1]
    if why == "schema":
        monkeypatch.setattr(bulk, "SCHEMA_OF_MLFLOW", {k: "0123456789ab" for k in bulk.SCHEMA_OF_MLFLOW})
    elif why == "environment":  # workspaces, trace archival: the client reasons about its own settings
        monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "false")
    elif why == "no_default_experiment":
        with sqlite3.connect(path) as con:
            con.execute("DELETE FROM experiments WHERE experiment_id = 0")
    else:
        monkeypatch.setattr(bulk.SqlBulkReader, "_begin_read_only", lambda self, conn: 1 / 0)
    with Store(store_uri) as store:
        assert store.has_client


def test_which_stores_read_in_bulk():
    assert bulk.supports("sqlite:///mlflow.db") and bulk.supports("sqlite:////abs/path/m.db")
    assert bulk.supports("postgresql://u@h/db") and bulk.supports("postgresql+psycopg2://u:p@h:5432/db")
    for uri in (
        "sqlite:///:memory:",
        "mysql+pymysql://u@h/db",
        "mssql://h/db",
        "file:///tmp/mlruns",
        "/tmp/mlruns",
        "http://localhost:5000",
        "https://mlflow.example.org",
        "databricks",
    ):
        assert not bulk.supports(uri), uri


def _audit_dicts(results):
    out = []
    for r in results:
        d = r.to_dict()
        d.pop("audited_at")
        out.append(json.dumps(d, sort_keys=True, default=str))
    return sorted(out)


def test_audit_with_bulk_reading_equals_audit_through_the_client(tricky_store, monkeypatch):
    uri, runs = tricky_store
    client = MlflowClient()
    exp_id = client.get_experiment_by_name("bulk").experiment_id
    rng = np.random.default_rng(1)
    t = np.arange(300)
    shapes = {
        "healthy": 0.2 + 2 * np.exp(-t / 40) + 0.05 * rng.standard_normal(300),
        "blowup": np.where(t < 200, 0.2 + 2 * np.exp(-t / 40), np.nan),
        "flat": 2.3 + 0.01 * rng.standard_normal(300),
    }
    for name, loss in shapes.items():
        val = loss[::10] + 0.05 + 0.002 * np.maximum(0, t[::10] - 100)
        pts = [("train_loss", v, i, i) for i, v in enumerate(loss)] + [
            ("val_loss", v, i * 10, i * 10) for i, v in enumerate(val)
        ]
        pts += [("nnaudit/update_ratio/fc", 10 ** -rng.uniform(2, 4), i * 10, i * 10) for i in range(30)]
        pts += [("learning_rate", 1e-3, i, i) for i in range(300)]
        _log(client, exp_id, name, pts)

    reads = []
    real = MlflowClient.get_metric_history
    monkeypatch.setattr(MlflowClient, "get_metric_history", lambda self, *a: reads.append(a) or real(self, *a))
    with_bulk = mlflow_nnaudit.audit(tracking_uri=uri, experiments="bulk", dry_run=True)
    assert reads == []  # every curve the audit used came from the bulk read
    overrides = {"train_loss": "throughput"}
    with_bulk_roles = mlflow_nnaudit.audit(tracking_uri=uri, experiments="bulk", dry_run=True, roles=overrides)
    assert reads == []

    monkeypatch.setattr(bulk, "supports", lambda uri: False)
    through_client = mlflow_nnaudit.audit(tracking_uri=uri, experiments="bulk", dry_run=True)
    assert reads  # this time the client did the reading
    client_roles = mlflow_nnaudit.audit(tracking_uri=uri, experiments="bulk", dry_run=True, roles=overrides)
    assert len(with_bulk) == len(runs) + len(shapes)
    assert "failed" in {r.status for r in with_bulk} and len({r.status for r in with_bulk}) >= 3
    assert _audit_dicts(with_bulk) == _audit_dicts(through_client)
    assert _audit_dicts(with_bulk_roles) == _audit_dicts(client_roles)


def test_audit_in_chunks_writes_like_before(tricky_store, monkeypatch):
    """Chunks smaller than the store, and writing (not a dry run): every run tagged once."""
    from mlflow_nnaudit.auditor import runner

    uri, runs = tricky_store
    monkeypatch.setattr(runner, "AUDIT_CHUNK_RUNS", 3)
    time.sleep(1.1)  # audited_at has whole seconds: audit after the second in which the runs ended
    seen = []
    results = mlflow_nnaudit.audit(tracking_uri=uri, experiments="bulk", on_progress=seen.append)
    assert [r.run_id for r in seen] == [r.run_id for r in results]
    assert sorted(r.run_id for r in results) == sorted(runs.values())
    client = MlflowClient()
    for rid in runs.values():
        assert "nnaudit.status" in client.get_run(rid).data.tags
    again = mlflow_nnaudit.audit(tracking_uri=uri, experiments="bulk")
    assert all(r.skipped for r in again)


def test_file_store_reader_gives_the_client_curves(tmp_path, monkeypatch):
    """A `./mlruns` file store: metric files read directly give the client's curves. (MLflow 3
    opens file stores only with MLFLOW_ALLOW_FILE_STORE=true; without it the audit says so.)"""
    uri = (tmp_path / "mlruns").as_uri()
    (tmp_path / "mlruns").mkdir()
    with pytest.raises(StoreError, match="MLFLOW_ALLOW_FILE_STORE=true"):
        Store(uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    runs = _tricky_runs(MlflowClient(uri), "bulk-file")
    with Store(uri) as store:
        from mlflow_nnaudit.auditor.file_bulk import FileBulkReader

        assert isinstance(store._bulk, FileBulkReader)
    _check_same_curves(uri, runs, "bulk-file", monkeypatch)
