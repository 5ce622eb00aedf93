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
        if uri.startswith("postgresql"):  # psycopg2: the rows came as binary COPY, none fetched
            assert store._bulk.copy_queries > 0 and store._bulk.fetch_queries == 0
        elif uri.startswith("sqlite"):
            assert store._bulk.fetch_queries > 0 and store._bulk.copy_queries == 0
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


#: doubles either reading path could get wrong: signed zero, the extremes, subnormals, values
#: whose shortest decimal form is long, Inf and NaN
_EDGE_VALUES = [
    -0.0,
    0.0,
    math.inf,
    -math.inf,
    math.nan,
    1.7976931348623157e308,  # MLflow's own stand-in for Inf (Curve turns it back into Inf)
    -1.7976931348623157e308,
    1.7976931348623155e308,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    2.225073858507201e-308,
    1e-300,
    0.1,
    1 / 3,
    2.0**53 + 1,
    -123456789.12345679,
    6.02214076e23,
]
#: metric keys with quotes, backslashes, unicode, spaces, percent signs and SQL in them (MLflow's
#: client accepts few of them; they are written to the table directly, as another client could)
_ODD_KEYS = [
    "it's",
    'say "hi"',
    "ü loss / 精度",
    "loss",
    "loss ",  # differs from "loss" by a trailing space: PostgreSQL's varchar compares it exactly
    "back\\slash",
    "100% %s %(runs)s",
    "x'); DROP TABLE metrics; --",
]


def _odd_store(uri: str) -> tuple[dict[str, list[str]], str]:
    """Runs whose histories hold `_EDGE_VALUES`, random finite bit patterns, equal steps and
    `_ODD_KEYS`, inserted into MLflow's `metrics` table; one run with no history at all."""
    import sqlalchemy as sa

    client = MlflowClient(uri)
    exp_id = client.create_experiment(f"odd-{uuid.uuid4().hex[:8]}")
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**63, size=300, dtype=np.uint64) | (rng.integers(0, 2, 300, dtype=np.uint64) << 63)
    random = [float(v) for v in bits.view(np.float64) if np.isfinite(v)]
    rows, keys_by_run = [], {}
    for r in range(3):
        rid = client.create_run(exp_id).info.run_id
        keys_by_run[rid] = list(_ODD_KEYS) + ["never_logged"]
        for j, key in enumerate(_ODD_KEYS):
            values = _EDGE_VALUES + random[: 40 * (j + r)]
            for i, v in enumerate(values):
                step = (i // 3) if j % 2 else i  # odd keys: three points per step
                stamp = T0 + (i * 7919) % 101 - 2**40 * (i % 5 == 4)  # out of order, some negative
                nan = math.isnan(v)
                rows.append(dict(k=key, v=0.0 if nan else v, t=stamp, r=rid, s=step - 3 * (i == 5), n=nan))
    empty = client.create_run(exp_id).info.run_id
    keys_by_run[empty] = ["loss", "it's"]
    engine = sa.create_engine(uri)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                # the value as text, read by PostgreSQL's float8in: a float parameter would go as a
                # numeric literal, and -0.0 would arrive as 0
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                "VALUES (:k, CAST(:v AS float8), :t, :r, :s, :n)"
            ),
            [{**row, "v": repr(row["v"])} for row in rows],
        )
    engine.dispose()
    return keys_by_run, empty


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)


def test_postgresql_binary_copy_reads_the_fetched_rows_bit_for_bit(postgres_uri):
    """On PostgreSQL the rows come as binary COPY: the same bits as the rows fetched as text
    (NaN, Inf, -0.0, subnormals, extremes; keys with quotes, unicode, spaces, SQL), and curves
    equal to the client's."""
    uri = postgres_uri
    keys_by_run, empty = _odd_store(uri)
    reader = bulk.SqlBulkReader(uri)
    try:
        # the column types the binary layout relies on (schema dc11669786a5)
        with reader._snapshot() as conn:
            types = dict(
                conn.exec_driver_sql(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'metrics'"
                ).fetchall()
            )
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            # both paths on the same query, in one snapshot
            params = {"runs": sorted(keys_by_run), "keys": sorted(_ODD_KEYS)}
            cursor = reader._copy_cursor(conn)
            assert cursor is not None
            copied = reader._copy_rows(cursor, params)
            fetched = reader._fetch_rows(conn, params)
        assert types["step"] == types["timestamp"] == "bigint"
        assert types["value"] == "double precision" and types["is_nan"] == "boolean"
        assert len(copied[0]) == len(fetched[0]) > 3 * len(_ODD_KEYS) * len(_EDGE_VALUES)
        for a, b in zip(copied, fetched):
            assert a.dtype == b.dtype
            if a.dtype == bool:
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_array_equal(_bits(a), _bits(b))
        assert np.signbit(copied[2]).any() and np.isinf(copied[2]).any() and (copied[2] == 5e-324).any()

        got = reader.read(keys_by_run)
        assert reader.copy_queries > 0 and reader.fetch_queries == 1  # the one above
        with Store(uri) as store:
            for (rid, key), curve in got.items():
                want = store.load_curve(rid, key)
                _assert_same(curve, want, key)
                for field in ("steps", "values", "timestamps"):
                    np.testing.assert_array_equal(_bits(getattr(curve, field)), _bits(getattr(want, field)))
        assert all(len(got[(empty, k)]) == 0 for k in keys_by_run[empty])
        assert all(len(got[(rid, "never_logged")]) == 0 for rid in keys_by_run if rid != empty)
        curve = got[(next(iter(keys_by_run)), "it's")]
        zeros = curve.values[curve.values == 0]
        assert len(curve) == len(_EDGE_VALUES) and np.isnan(curve.values).sum() == 1
        assert len(zeros) == 2 and np.signbit(zeros).sum() == 1 and (curve.values == 5e-324).sum() == 1
    finally:
        reader.close()


def test_postgresql_rows_and_their_counts_come_from_one_snapshot(postgres_uri, monkeypatch):
    """A point committed between the group count and the COPY is not in the COPY (the same
    REPEATABLE READ snapshot), so the read neither fails nor mixes two states of the table."""
    import sqlalchemy as sa

    uri = postgres_uri
    client = MlflowClient(uri)
    exp_id = client.create_experiment(f"snap-{uuid.uuid4().hex[:8]}")
    rid = _log(client, exp_id, "r", [("loss", float(i), i, i) for i in range(20)])
    reader = bulk.SqlBulkReader(uri)
    real = reader._copy_rows
    writer = sa.create_engine(uri)

    def write_then_copy(cursor, params):
        # the COPY's cursor is in the read's transaction: read-only, repeatable read, no sorts
        cursor.execute("SELECT current_setting('transaction_read_only'), current_setting('transaction_isolation')")
        assert cursor.fetchone() == ("on", "repeatable read")
        cursor.execute("SHOW enable_sort")
        assert cursor.fetchone() == ("off",)
        with writer.begin() as conn:  # a new point, committed, not in the snapshot already taken
            conn.execute(
                sa.text(
                    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES ('loss', 9, :s, :r, :s, false)"
                ),
                {"r": rid, "s": 100 + reader.copy_queries},
            )
        return real(cursor, params)

    monkeypatch.setattr(reader, "_copy_rows", write_then_copy)
    try:
        first = reader.read({rid: ["loss"]})[(rid, "loss")]
        assert len(first) == 20 and reader.copy_queries == 1
        assert len(reader.read({rid: ["loss"]})[(rid, "loss")]) == 21  # the next snapshot has it
    finally:
        reader.close()
        writer.dispose()


def _copy_stream(*tuples: bytes, flags: int = 0, extension: bytes = b"") -> bytes:
    head = bulk._COPY_SIGNATURE + flags.to_bytes(4, "big") + len(extension).to_bytes(4, "big") + extension
    return head + b"".join(tuples) + b"\xff\xff"


def _copy_tuple(step=1, stamp=2, value=0.5, nan=False, stamp_len=8, fields=4) -> bytes:
    import struct

    stamp_field = struct.pack(">iq", 8, stamp) if stamp_len == 8 else struct.pack(">i", -1)
    return (
        struct.pack(">hiq", fields, 8, step) + stamp_field + struct.pack(">id", 8, value) + struct.pack(">iB", 1, nan)
    )


def test_binary_copy_parser_takes_only_the_expected_layout():
    steps, stamps, values, nan = bulk._parse_copy_binary(
        _copy_stream(_copy_tuple(3, -5, -0.0, False), _copy_tuple(2**40, 7, math.inf, True), extension=b"abc")
    )
    assert steps.tolist() == [3.0, 2.0**40] and stamps.tolist() == [-5.0, 7.0]
    assert np.signbit(values[0]) and values[1] == math.inf and nan.tolist() == [False, True]
    assert [len(c) for c in bulk._parse_copy_binary(_copy_stream())] == [0, 0, 0, 0]
    bad = [
        _copy_stream(_copy_tuple(), _copy_tuple(stamp_len=-1)),  # a NULL timestamp
        _copy_stream(_copy_tuple(), _copy_tuple(stamp_len=-1), _copy_tuple(stamp_len=-1)),
        _copy_stream(_copy_tuple(fields=5)),
        _copy_stream(_copy_tuple(), flags=1 << 16),  # OIDs
        _copy_stream(_copy_tuple())[:-2],  # no trailer
        b"PGCOPY\n\xff\r\n\x01" + _copy_stream(_copy_tuple())[11:],
        _copy_stream(_copy_tuple(nan=2)),
        _copy_stream(*[_copy_tuple(stamp_len=-1)] * 43),  # 43 short tuples: a whole number of 43-byte ones
    ]
    for data in bad:
        with pytest.raises(ValueError):
            bulk._parse_copy_binary(data)


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
