"""The command line as a user meets it, against real sqlite stores (and real servers where the
point is a server): exit codes, one-line errors, what it refuses to touch, and what it prints."""

from __future__ import annotations

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
    return [r.data.tags.get("nnaudit.status") for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments()])]


def test_report_refuses_the_store_and_foreign_files_before_auditing(store_uri, tmp_path):
    log_curves("a", {"train_loss": healthy_curve(100, 3)})
    db = store_uri.split(":///", 1)[1]
    before = open(db, "rb").read()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for path, why in ((db, "tracking store's database"), (str(notes), "not a summary page"),
                      (str(tmp_path / "no" / "such" / "dir" / "s.html"), "does not exist")):
        res = _invoke("audit", "--tracking-uri", store_uri, "--report", path)
        assert res.exit_code == 2, res.output
        assert why in res.output and "Traceback" not in res.output
        assert _tags(store_uri) == [None]  # checked before the audit: nothing was tagged
    assert open(db, "rb").read() == before
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
    db = store_uri.split(":///", 1)[1]
    before = open(db, "rb").read()
    res = _invoke("audit", "--tracking-uri", store_uri, "--dry-run")
    assert res.exit_code == 0, res.output
    assert open(db, "rb").read() == before
