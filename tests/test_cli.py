"""The command line as a user meets it, against real sqlite stores (and real servers where the
point is a server): exit codes, one-line errors, what it refuses to touch, and what it prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mlflow_nnaudit.cli import main as cli
from tests.test_auditor import healthy_curve, log_curves


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


# --- exit codes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["audit", "--since", "soon"], "cannot read duration"),
        (["audit", "--since", "200000w"], "too long"),
        (["audit", "--since", "9" * 40 + "w"], "too long"),
        (["audit", "--role", "train_loss"], "ROLE=METRIC_KEY"),
        (["audit", "--role", "no_such_role=loss"], "unknown role"),
        (["audit", "--shard", "5/4"], "does not exist"),
        (["explain", "abcdef", "--role", "no_such_role=loss"], "unknown role"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_message(store_uri, args, message):
    log_curves("x", {"train_loss": healthy_curve(50, 11)})
    res = _invoke(*args)
    assert res.exit_code == 2, res.output
    assert "Usage:" in res.output and message in res.output
    assert "Traceback" not in res.output


def test_exit_codes_are_documented():
    res = _invoke("audit", "--help")
    assert res.exit_code == 0
    for line in ("0  the audit ran", "1  error", "2  usage error", "3  --fail-on"):
        assert line in res.output


# --- explain ------------------------------------------------------------------------------------
def test_explain_with_an_ambiguous_prefix_lists_the_matches(store_uri):
    from collections import defaultdict

    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    exp = client.create_experiment("ambiguous")
    ids = [client.create_run(exp, run_name=f"r{i}").info.run_id for i in range(17)]  # 17 > 16: two share a digit
    by_first = defaultdict(list)
    for rid in ids:
        by_first[rid[0]].append(rid)
    prefix, shared = max(by_first.items(), key=lambda kv: len(kv[1]))
    res = _invoke("explain", prefix, "--tracking-uri", store_uri)
    assert res.exit_code == 1, res.output
    assert "ambiguous" in res.output and "Traceback" not in res.output
    assert all(rid in res.output for rid in shared)
    assert len(res.output.strip().splitlines()) == 1


# --- --report -----------------------------------------------------------------------------------
def _tags(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return [
        r.data.tags.get("nnaudit.status")
        for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
    ]


def test_report_refuses_the_store_and_foreign_files_before_auditing(store_uri, tmp_path):
    log_curves("a", {"train_loss": healthy_curve(100, 3)})
    db = Path(store_uri.split(":///", 1)[1])
    before = db.read_bytes()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for path, why in (
        (db, "tracking store's database"),
        (str(notes), "not a summary page"),
        (str(tmp_path / "no" / "such" / "dir" / "s.html"), "does not exist"),
    ):
        res = _invoke("audit", "--tracking-uri", store_uri, "--report", path)
        assert res.exit_code == 2, res.output
        assert why in res.output and "Traceback" not in res.output
        assert _tags(store_uri) == [None]  # checked before the audit: nothing was tagged
    assert db.read_bytes() == before
    assert notes.read_text() == "my notes\n"
    # a page of ours is rewritten, night after night
    page = tmp_path / "summary.html"
    for _ in range(2):
        res = _invoke("audit", "--tracking-uri", store_uri, "--report", str(page), "--force")
        assert res.exit_code == 0, res.output
        assert page.read_text().startswith("<!DOCTYPE html>")
    assert _tags(store_uri) == ["healthy"]


# --- files that are not MLflow stores -----------------------------------------------------------
def _foreign_db(path):
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    con.execute("INSERT INTO contacts VALUES ('ada', '555')")
    con.commit()
    con.close()


@pytest.mark.parametrize("kind", ["empty", "foreign", "text"])
@pytest.mark.parametrize("command", [["audit", "--dry-run"], ["audit"], ["explain", "abcdef12"]])
def test_a_sqlite_file_that_is_not_an_mlflow_store_is_refused_and_left_alone(tmp_path, monkeypatch, kind, command):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "app.db"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        _foreign_db(path)
    else:
        path.write_text("not a database at all\n")
    before = path.read_bytes()
    res = _invoke(*command, "--tracking-uri", f"sqlite:///{path}")
    assert res.exit_code == 1, res.output
    assert "no MLflow store" in res.output or "cannot read the sqlite file" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no journal, no mlruns, nothing


def test_a_dry_run_leaves_a_real_store_byte_identical(store_uri, tmp_path):
    log_curves("a", {"train_loss": healthy_curve(100, 5)})
    db = Path(store_uri.split(":///", 1)[1])
    before = db.read_bytes()
    res = _invoke("audit", "--tracking-uri", store_uri, "--dry-run")
    assert res.exit_code == 0, res.output
    assert db.read_bytes() == before


# --- one-line errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("lock", ["EXCLUSIVE", "IMMEDIATE"])
def test_a_locked_sqlite_store_is_a_one_line_error(store_uri, lock, monkeypatch):
    """EXCLUSIVE: nobody may read; IMMEDIATE: reads go on, writes wait for the lock, then fail.
    The writer's wait for the lock is cut from its 60 s to 2 s here: what is tested is what
    happens when the wait runs out, not its length."""
    import sqlite3

    from mlflow_nnaudit.auditor import writer

    monkeypatch.setattr(writer, "SQLITE_LOCK_TIMEOUT", 2)
    rid = log_curves("a", {"train_loss": healthy_curve(100, 7)})
    holder = sqlite3.connect(store_uri.split(":///", 1)[1], timeout=1)
    holder.execute(f"BEGIN {lock}")
    try:
        res = _invoke("audit", "--tracking-uri", store_uri)
    finally:
        holder.rollback()
        holder.close()
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "locked" in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    # nothing half-done: a second audit finishes the job
    assert _invoke("audit", "--tracking-uri", store_uri).exit_code == 0
    assert _tags(store_uri) == ["healthy"] and rid


@pytest.mark.parametrize("uri", ["foo://bar", "foo://user:s3cret-pw@bar", "sqlitex:///x.db"])
def test_an_unknown_uri_scheme_is_one_line_without_secrets(tmp_path, monkeypatch, uri):
    monkeypatch.chdir(tmp_path)
    for command in (["audit"], ["explain", "abcdef12"]):
        res = _invoke(*command, "--tracking-uri", uri)
        assert res.exit_code == 1, res.output
        assert "unknown URI scheme" in res.output and "Traceback" not in res.output
        assert "s3cret-pw" not in res.output
        assert len(res.output.strip().splitlines()) == 1


def test_no_password_is_printed_for_an_unreachable_server():
    from tests.services import free_port

    res = _invoke("audit", "--tracking-uri", f"http://user:s3cret-pw@127.0.0.1:{free_port()}")
    assert res.exit_code == 1 and "cannot reach" in res.output
    assert "s3cret-pw" not in res.output and "user:***@" in res.output


# --- what is printed: control characters --------------------------------------------------------
def test_control_characters_in_names_are_never_printed_raw(store_uri, monkeypatch):
    from mlflow.tracking import MlflowClient

    evil = "evil\nfake-row  0000  x  healthy  -\x1b]0;pwned\x07\x1b[2J\r\u202e"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", MlflowClient(store_uri).create_experiment("exp\x1b[31m\nred"))
    rid = log_curves(evil, {"train_loss": healthy_curve(100, 8)})  # (MLflow refuses such metric names)
    for args in (["audit", "--dry-run"], ["explain", rid]):
        res = _invoke(*args, "--tracking-uri", store_uri)
        assert res.exit_code == 0, res.output
        assert not any(c in res.output for c in "\x1b\x07\r\u202e"), repr(res.output)
        assert "fake-row" in res.output and "\\x1b]0;pwned\\x07" in res.output  # shown, escaped
        assert not any(line.startswith("fake-row") for line in res.output.splitlines())
    res = _invoke("audit", "--tracking-uri", store_uri, "--experiment", "no\x1b[2Jsuch")
    assert res.exit_code == 1 and "\x1b" not in res.output and "\\x1b[2J" in res.output


# --- the summary page ---------------------------------------------------------------------------
def test_summary_page_draws_unchanged_runs_and_links_them_to_the_ui(store_uri, tmp_path):
    import re

    import numpy as np
    from mlflow.tracking import MlflowClient

    from mlflow_nnaudit.auditor.report import ui_runs_url

    ok = log_curves("fine", {"train_loss": healthy_curve(120, 1)})
    bad = log_curves("blew-up", {"train_loss": np.r_[healthy_curve(60, 2), [np.nan] * 20]})
    exp_id = MlflowClient(store_uri).get_run(ok).info.experiment_id
    assert _invoke("audit", "--tracking-uri", store_uri).exit_code == 0
    page = tmp_path / "summary.html"
    res = _invoke("audit", "--tracking-uri", store_uri, "--report", str(page))  # both unchanged now
    assert res.exit_code == 0, res.output
    assert res.output.count("(unchanged)") == 2
    text = page.read_text()
    assert text.count("<polyline") == 2  # one sparkline per run, though neither was re-audited
    for rid in (ok, bad):
        assert f'href="http://127.0.0.1:5000/#/experiments/{exp_id}/runs/{rid}"' in text
    failed_list = ui_runs_url("http://127.0.0.1:5000", exp_id)
    assert failed_list == (
        f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?searchFilter=tags.nnaudit.status%20%3D%20%27failed%27"
    )
    assert f'href="{failed_list}"' in text.replace("&amp;", "&")
    # a server serves its own UI; its credentials never reach the page
    res = _invoke("audit", "--tracking-uri", store_uri, "--report", str(page), "--ui-url", "https://mlflow.example/")
    assert re.search(r'href="https://mlflow.example/#/experiments/\d+/runs/', page.read_text())


# --- runs with next to nothing to judge ---------------------------------------------------------
def test_one_point_and_evaluation_only_runs_say_what_they_are(store_uri):
    import mlflow_nnaudit

    one = log_curves("one-point", {"train_loss": [1.0]})
    ev = log_curves("evaluate-after-train", {"eval_loss": [0.4], "eval_accuracy": [0.9]})
    results = {r.run_id: r for r in mlflow_nnaudit.audit(dry_run=True)}
    assert results[one].status == results[ev].status == "inconclusive"
    assert results[one].reason == "the loss curve 'train_loss' has only 1 point"
    assert "evaluation-only run" in results[ev].reason and "1 point " in results[ev].reason
    assert "points" not in results[ev].reason


# --- tracking servers ---------------------------------------------------------------------------
def _fill_store(db_uri: str, n_runs: int, artifacts: str) -> list[str]:
    """Runs with a short loss curve each, written straight into a server's backend store (fast)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(db_uri)
    exp = client.create_experiment("served", artifact_location=artifacts)
    ids = []
    for i in range(n_runs):
        rid = client.create_run(exp, run_name=f"run-{i}").info.run_id
        loss = healthy_curve(40, i)
        client.log_batch(
            rid, metrics=[Metric("train_loss", float(v), 1_700_000_000_000 + s, s) for s, v in enumerate(loss)]
        )
        client.set_terminated(rid)
        ids.append(rid)
    return ids


def _statuses(db_path) -> int:
    import sqlite3

    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM tags WHERE key = 'nnaudit.status'").fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow
def test_a_server_that_dies_mid_audit_ends_it_in_bounded_time_and_a_rerun_finishes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.services import MlflowServer

    db = tmp_path / "backend.db"
    ids = _fill_store(f"sqlite:///{db}", 240, str(tmp_path / "artifacts"))
    server = MlflowServer(f"sqlite:///{db}", str(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    cmd = [sys.executable, "-m", "mlflow_nnaudit.cli", "audit", "--tracking-uri", server.url]
    try:
        t0 = time.monotonic()
        audit = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        while _statuses(db) == 0 and audit.poll() is None:  # the first runs are tagged: kill the server
            time.sleep(0.02)
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        out, err = audit.communicate(timeout=180)
        took = time.monotonic() - t0
    finally:
        server.stop()
    written = _statuses(db)
    assert 0 < written < len(ids), "the server died before or after the audit, not during it"
    assert audit.returncode == 1, out + err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Error: the audit stopped after"), err
    assert "run the same command again" in err
    assert took < 150
    # resumable: a rerun through a new server on the same store finishes the job
    server = MlflowServer(f"sqlite:///{db}", str(tmp_path))
    try:
        rerun = [*cmd[:-1], server.url]
        done = subprocess.run(rerun, check=False, capture_output=True, text=True, env=env, timeout=600)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert _statuses(db) == len(ids)


@pytest.mark.slow
def test_user_and_password_in_a_server_uri_are_used_and_never_printed(tmp_path, monkeypatch):
    from tests.services import MlflowServer

    server = MlflowServer(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path), basic_auth=True)
    try:
        user, password = MlflowServer.ADMIN
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(server.url)
        exp = client.create_experiment("auth")
        rid = client.create_run(exp, run_name="r").info.run_id
        from mlflow.entities import Metric

        client.log_batch(
            rid,
            metrics=[
                Metric("train_loss", float(v), 1_700_000_000_000 + s, s) for s, v in enumerate(healthy_curve(60, 4))
            ],
        )
        client.set_terminated(rid)
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        uri = server.url.replace("http://", f"http://{user}:{password}@")
        res = _invoke("audit", "--tracking-uri", uri, "--report", str(tmp_path / "s.html"))
        assert res.exit_code == 0, res.output
        assert password not in res.output and password not in (tmp_path / "s.html").read_text()
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        assert client.get_run(rid).data.tags.get("nnaudit.status") == "healthy"
        wrong = server.url.replace("http://", f"http://{user}:not-{password}@")
        res = _invoke("audit", "--tracking-uri", wrong)
        assert res.exit_code == 1 and password not in res.output and "Traceback" not in res.output
    finally:
        server.stop()


def test_the_sql_store_stays_quiet_when_mlflow_is_imported_after_the_command_starts(capsys):
    """`nnaudit audit` imports MLflow only when it needs it, after silencing MLflow's SQL store
    (its traceback before a database error); MLflow versions that set up their logging with
    dictConfig reset the levels of the `mlflow.*` loggers that existed before: still silent."""
    import logging
    import logging.config

    from mlflow_nnaudit import cli as cli_module

    logger = logging.getLogger("mlflow.store.db.utils")
    level, filters = logger.level, list(logger.filters)
    root = logging.getLogger("mlflow")
    saved = root.level, list(root.handlers), root.propagate
    try:
        cli_module._bound_and_quiet()
        cli_module._bound_and_quiet()  # once more (in-process invocations): one filter, not two
        assert logger.filters.count(cli_module._only_critical) == 1
        # what MLflow < 3.17 does on import
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"h": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
                "loggers": {"mlflow": {"handlers": ["h"], "level": "INFO", "propagate": False}},
            }
        )
        capsys.readouterr()
        logger.error("Traceback (most recent call last): database is locked")
        logger.critical("critical still shows")
        err = capsys.readouterr().err
        assert "database is locked" not in err and "critical still shows" in err
    finally:
        logger.setLevel(level)
        logger.filters[:] = filters
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        root.propagate = saved[2]
