"""The audit's chunk pipeline against real stores: `--workers 1` and the default write the same
tags and artifacts; a run's tags change in one step (interrupting never half-writes them);
two audits at once; a run whose artifacts cannot be written; a forged audit time; `--fail-on`
over the window's runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

import mlflow_nnaudit
from benchmarks.fault_injection import EARLIER, audit_tags, build, consistent, read_tags
from mlflow_nnaudit.cli import EXIT_FOUND
from mlflow_nnaudit.cli import main as cli
from tests.test_auditor import healthy_curve, log_curves, tags_of

REPO = Path(__file__).resolve().parents[1]


def _mixed_runs(n: int = 8) -> dict[str, str]:
    """Healthy, NaN and plateau runs, by name."""
    ids = {}
    for i in range(n):
        loss = healthy_curve(300, i)
        if i % 3 == 1:
            loss[200:] = np.nan
        elif i % 3 == 2:
            loss = 2.3 + 0.01 * np.random.default_rng(i).standard_normal(300)
        ids[f"r{i}"] = log_curves(f"r{i}", {"train_loss": loss, "val_loss": loss + 0.05})
    return ids


def _written(uri: str) -> dict[str, tuple[dict, dict, str]]:
    """Every run's audit tags, audit.json and report.html (audit times left out), by run name."""
    client = MlflowClient(uri)
    out = {}
    for run in client.search_runs([e.experiment_id for e in client.search_experiments()]):
        tags = {k: v for k, v in audit_tags(run.data.tags).items() if k != "nnaudit.audited_at"}
        folder = Path(run.info.artifact_uri.replace("file://", "")) / "nnaudit"
        doc = json.loads((folder / "audit.json").read_text())
        doc.pop("audited_at")
        doc.pop("run_id")  # two stores: the same runs under other ids
        page = (folder / "report.html").read_text()
        page = page.replace(run.data.tags["nnaudit.audited_at"], "T").replace(run.info.run_id, "RID")
        out[run.info.run_name] = (tags, doc, page)
    return out


def test_workers_one_and_the_default_write_the_same(tmp_path, monkeypatch):
    results = []
    for name, extra in (("one", ["--workers", "1"]), ("default", [])):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        _mixed_runs()
        res = CliRunner().invoke(cli, ["audit", "--tracking-uri", uri, *extra])
        assert res.exit_code == 0, res.output
        results.append(_written(uri))
    assert (os.cpu_count() or 1) == 1 or results[0] and results[0] == results[1]
    assert {t["nnaudit.status"] for t, _, _ in results[0].values()} >= {"healthy", "failed"}


def test_interrupted_audits_never_half_write_a_run(tmp_path):
    """SIGKILL and SIGINT at several points of a real `nnaudit audit` (subprocess, default
    options): every run keeps the earlier audit's tags or carries a complete new audit."""
    db = tmp_path / "mlflow.db"
    build(str(db), 400, 60)
    uri = f"sqlite:///{db}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "mlflow_nnaudit.cli", "audit", "--tracking-uri", uri, "--force"]
    seen_partial = 0
    for i, delay in enumerate((1.5, 3.0, 4.5, 6.0, 8.0, 10.0)):
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL if i % 2 else signal.SIGINT)
        proc.wait(60)
        tags = read_tags(str(db))
        assert all(consistent(t) for t in tags.values()), [t for t in tags.values() if not consistent(t)][:2]
        seen_partial += 0 < sum(audit_tags(t) != EARLIER for t in tags.values()) < len(tags)
    subprocess.run(cmd[:-1], env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
    assert all(consistent(t) and audit_tags(t) != EARLIER for t in read_tags(str(db)).values())


def test_two_audits_at_once_stay_correct_and_quiet(store_uri, monkeypatch):
    """Audit A lists the runs (each with a stale cause tag); audit B audits them all before A
    writes its second run: A must not fail on the tag B already removed."""
    from mlflow_nnaudit.auditor import runner

    monkeypatch.setattr(runner, "AUDIT_CHUNK_RUNS", 1)  # A writes run 1 before it audits run 2
    ids = [
        log_curves(
            f"s{i}",
            {"train_loss": healthy_curve(300, i)},
            tags={"nnaudit.cause.stale_a": "high", "nnaudit.causes": "stale_a"},
        )
        for i in range(3)
    ]
    inner = []

    def on_progress(result):
        if not inner:
            inner.append(mlflow_nnaudit.audit(tracking_uri=store_uri, force=True))

    first = mlflow_nnaudit.audit(tracking_uri=store_uri, on_progress=on_progress)
    assert len(first) == 3 and len(inner[0]) == 3
    for rid in ids:
        tags = tags_of(rid)
        assert "nnaudit.cause.stale_a" not in tags and tags["nnaudit.status"] == "healthy"
        assert consistent(tags)


def test_a_run_whose_artifacts_cannot_be_written_does_not_stop_the_audit(store_uri, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifact folder should be")
    client = MlflowClient()
    exp = client.create_experiment("blocked", artifact_location=str(blocker / "artifacts"))
    mlflow.set_experiment(experiment_id=exp)
    bad = log_curves("blocked", {"train_loss": healthy_curve(300, 1)})
    mlflow.set_experiment("Default")
    good = [log_curves(f"ok{i}", {"train_loss": healthy_curve(300, i)}) for i in range(2)]
    res = CliRunner().invoke(cli, ["audit", "--tracking-uri", store_uri, "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert "artifacts not written for 1 run(s)" in res.output and bad[:12] in res.output
    assert tags_of(bad)["nnaudit.status"] == "healthy"  # its verdict is kept
    for rid in good:
        assert tags_of(rid)["nnaudit.status"] == "healthy"
        assert any(a.path == "nnaudit/audit.json" for a in client.list_artifacts(rid, "nnaudit"))
    doc = json.loads(
        CliRunner()
        .invoke(cli, ["audit", "--tracking-uri", store_uri, "--force", "--dry-run", "--format", "json"])
        .stdout
    )
    assert doc["summary"]["artifacts_not_written"] == []  # a dry run writes nothing, so nothing failed


def test_a_future_audit_time_does_not_skip_a_run_forever(store_uri):
    rid = log_curves("skewed", {"train_loss": healthy_curve(300, 3)})
    mlflow_nnaudit.audit()
    MlflowClient().set_tag(rid, "nnaudit.audited_at", "2099-01-01T00:00:00.000Z")
    again = {r.run_id: r for r in mlflow_nnaudit.audit()}
    assert not again[rid].skipped
    assert tags_of(rid)["nnaudit.audited_at"] < "2099"


def test_fail_on_counts_the_window_including_unchanged_failed_runs(store_uri):
    loss = healthy_curve(300, 4)
    loss[150:] = np.nan
    log_curves("diverged", {"train_loss": loss})
    log_curves("fine", {"train_loss": healthy_curve(300, 5)})
    first = CliRunner().invoke(cli, ["audit", "--tracking-uri", store_uri, "--workers", "1", "--fail-on", "failed"])
    assert first.exit_code == EXIT_FOUND, first.output
    # the next night: nothing new, the failed run is unchanged and still fails the pipeline
    second = CliRunner().invoke(cli, ["audit", "--tracking-uri", store_uri, "--workers", "1", "--fail-on", "failed"])
    assert second.exit_code == EXIT_FOUND, second.output
    assert "1 run(s) of this audit are failed (0 audited now, 1 unchanged since their last audit)" in second.output
    # outside the window, it does not count
    time.sleep(1.1)
    later = CliRunner().invoke(
        cli, ["audit", "--tracking-uri", store_uri, "--workers", "1", "--fail-on", "failed", "--since", "1s"]
    )
    assert later.exit_code == 0, later.output


def test_the_audit_of_an_unchanged_store_needs_no_mlflow(store_uri):
    """The nightly audit of an unchanged sqlite store lists and skips its runs in SQL: MLflow is
    not even imported (its import and its client's schema check were ~3 s of such an audit, which
    has a budget of 5% of the first). With runs to audit, MLflow is imported (its tag validation)
    but its client is not made either (no alembic): local artifacts and SQL tag writes need none."""
    log_curves("one", {"train_loss": healthy_curve(300, 6)})
    time.sleep(1.1)  # audited after the second in which the run ended
    first = CliRunner().invoke(cli, ["audit", "--tracking-uri", store_uri, "--workers", "1"])
    assert first.exit_code == 0, first.output
    code = (
        "import sys\n"
        "from mlflow_nnaudit.cli import main\n"
        "main(sys.argv[1:], standalone_mode=False)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'alembic'}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))  # MLFLOW_TRACKING_URI: the store (no --tracking-uri)
    for args, imported in ((["--force"], "['mlflow']"), ([], "[]")):
        out = subprocess.run(
            [sys.executable, "-c", code, "audit", "--workers", "1", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == imported, out.stdout
    assert "1 runs: 1 healthy (1 unchanged since their last audit)" in out.stdout


def test_an_audit_stopped_before_removing_stale_cause_tags_leaves_them_empty(tmp_path, monkeypatch):
    """Through a server the new tags go in one batch and the stale cause tags are removed after
    it. The server stops answering between the two (a proxy refuses every tag removal): the run
    has its complete new audit, the stale cause tag is emptied in that same batch (no cause
    filter matches it), and the next audit removes it."""
    from tests.services import MlflowServer, SlowProxy

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = MlflowServer(f"sqlite:///{tmp_path / 'served.db'}", str(tmp_path))
    proxy = SlowProxy(server.url, {}, refuse=("runs/delete-tag",))
    try:
        mlflow.set_tracking_uri(server.url)
        rid = log_curves(
            "s0",
            {"train_loss": healthy_curve(300, 0)},
            tags={"nnaudit.cause.stale_a": "high", "nnaudit.causes": "stale_a"},
        )
        with pytest.raises(Exception):  # noqa: B017 - whichever error MLflow's client raises for a 503
            mlflow_nnaudit.audit(tracking_uri=proxy.url, workers=1)
        client = MlflowClient(server.url)
        tags = client.get_run(rid).data.tags
        assert tags["nnaudit.status"] == "healthy" and tags["nnaudit.causes"] == ""
        assert tags["nnaudit.cause.stale_a"] == ""  # emptied, not yet removed
        assert consistent(tags)
        found = client.search_runs([client.get_run(rid).info.experiment_id], "tags.`nnaudit.cause.stale_a` = 'high'")
        assert found == []
        mlflow_nnaudit.audit(tracking_uri=server.url, workers=1)  # the next audit sees the leftover
        assert "nnaudit.cause.stale_a" not in client.get_run(rid).data.tags
    finally:
        proxy.stop()
        server.stop()


def test_two_audits_at_once_through_a_server(tmp_path, monkeypatch):
    """The same race through a real `mlflow server` (tags written by the client: a batch, then
    the removal of stale cause tags): no error, consistent tags."""
    from mlflow_nnaudit.auditor import runner
    from tests.services import MlflowServer

    monkeypatch.setattr(runner, "AUDIT_CHUNK_RUNS", 1)  # A writes run 1 before it audits run 2
    server = MlflowServer(f"sqlite:///{tmp_path / 'served.db'}", str(tmp_path))
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        mlflow.set_tracking_uri(server.url)
        ids = [
            log_curves(
                f"s{i}",
                {"train_loss": healthy_curve(300, i)},
                tags={"nnaudit.cause.stale_a": "high", "nnaudit.causes": "stale_a"},
            )
            for i in range(3)
        ]
        inner = []

        def on_progress(result):
            if not inner:
                inner.append(mlflow_nnaudit.audit(tracking_uri=server.url, force=True))

        first = mlflow_nnaudit.audit(tracking_uri=server.url, on_progress=on_progress)
        assert len(first) == 3 and len(inner[0]) == 3
        for rid in ids:
            tags = MlflowClient(server.url).get_run(rid).data.tags
            assert "nnaudit.cause.stale_a" not in tags and tags["nnaudit.status"] == "healthy"
            assert consistent(tags)
    finally:
        server.stop()


@pytest.mark.postgres
def test_postgresql_tags_written_in_one_transaction_and_the_same_as_sqlite(postgres, tmp_path, monkeypatch):
    """Tags written straight into PostgreSQL (one transaction per chunk) equal those the same
    runs get on sqlite; stale cause tags go, other tags stay; a second audit skips every run."""
    written = []
    for kind in ("pg", "sqlite"):
        folder = tmp_path / kind
        folder.mkdir()
        monkeypatch.chdir(folder)
        uri = postgres.create_database(f"tags_{kind}") if kind == "pg" else f"sqlite:///{folder / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        ids = _mixed_runs(6)
        MlflowClient(uri).set_tag(ids["r0"], "nnaudit.cause.stale_a", "high")
        MlflowClient(uri).set_tag(ids["r0"], "team", "vision")
        mlflow_nnaudit.audit(tracking_uri=uri)
        assert all(r.skipped for r in mlflow_nnaudit.audit(tracking_uri=uri))
        assert MlflowClient(uri).get_run(ids["r0"]).data.tags["team"] == "vision"
        written.append(_written(uri))
    assert written[0] == written[1]
    assert not any("nnaudit.cause.stale_a" in t for t, _, _ in written[0].values())


def test_a_write_that_fails_half_way_leaves_no_run_half_written(tmp_path):
    """The store refuses the status tag (a trigger in the real database: a full disk or a lost
    connection at that very point). Each run must keep the earlier audit's tags whole, not lose
    its stale cause tags while it keeps the earlier status and causes (the old writer deleted
    them one call at a time before the batch)."""
    import sqlite3

    db = tmp_path / "mlflow.db"
    build(str(db), 5, 60)
    con = sqlite3.connect(db)
    for event in ("INSERT", "UPDATE"):
        con.execute(
            f"CREATE TRIGGER refuse_{event.lower()} BEFORE {event} ON tags WHEN NEW.key = 'nnaudit.status' "
            "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        )
    con.commit()
    # a failed tag write stops the audit, as it always did (whatever the store's driver raises)
    with pytest.raises(Exception):  # noqa: B017
        mlflow_nnaudit.audit(tracking_uri=f"sqlite:///{db}")
    tags = read_tags(str(db))
    assert all(audit_tags(t) == EARLIER for t in tags.values()), [audit_tags(t) for t in tags.values()][:1]
    for event in ("insert", "update"):
        con.execute(f"DROP TRIGGER refuse_{event}")
    con.commit()
    con.close()
    mlflow_nnaudit.audit(tracking_uri=f"sqlite:///{db}")
    assert all(consistent(t) and audit_tags(t) != EARLIER for t in read_tags(str(db)).values())


@pytest.mark.postgres
def test_postgresql_a_write_that_fails_half_way_leaves_every_run_as_it_was(postgres, tmp_path, monkeypatch):
    """On PostgreSQL a chunk's tags are one multi-row INSERT (plus the removal of cause tags):
    a trigger that refuses the status tag half-way through a forced re-audit (the ON CONFLICT
    update path) must leave every run with the first audit's tags, whole; once it is gone, a
    forced audit rewrites every run."""
    import psycopg2

    monkeypatch.chdir(tmp_path)
    uri = postgres.create_database("tags_fault")
    mlflow.set_tracking_uri(uri)
    ids = _mixed_runs(4)
    mlflow_nnaudit.audit(tracking_uri=uri)
    client = MlflowClient(uri)
    first = {rid: audit_tags(client.get_run(rid).data.tags) for rid in ids.values()}
    assert all(consistent(t) and "nnaudit.status" in t for t in first.values())
    con = psycopg2.connect(uri.replace("postgresql+psycopg2", "postgresql"))
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.key = 'nnaudit.status' THEN "
            "RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        cur.execute("CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON tags FOR EACH ROW EXECUTE FUNCTION refuse()")
    with pytest.raises(Exception):  # noqa: B017 - the driver's error, whatever its class
        mlflow_nnaudit.audit(tracking_uri=uri, force=True)
    assert {rid: audit_tags(client.get_run(rid).data.tags) for rid in ids.values()} == first
    with con.cursor() as cur:
        cur.execute("DROP TRIGGER refuse ON tags")
    con.close()
    mlflow_nnaudit.audit(tracking_uri=uri, force=True)
    again = {rid: audit_tags(client.get_run(rid).data.tags) for rid in ids.values()}
    assert all(consistent(t) for t in again.values())
    assert all(again[rid]["nnaudit.audited_at"] != first[rid]["nnaudit.audited_at"] for rid in first)
