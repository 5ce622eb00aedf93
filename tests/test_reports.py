"""What people read and what pipelines use: the per-run report.html artifact, `nnaudit explain`,
the summary (table, JSON, HTML page), the progress bar, --fail-on, --shard and --workers, on the
real sample runs in a real sqlite store."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

import mlflow_nnaudit
from mlflow_nnaudit.auditor import report
from mlflow_nnaudit.auditor.curves import Curve
from mlflow_nnaudit.auditor.runner import in_shard, parse_shard
from mlflow_nnaudit.cli import EXIT_FOUND, _Progress, main
from sample_runs.faults import SAMPLE_TAG


def _run_id(uri: str, sample: str) -> str:
    client = MlflowClient(uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(exps, f"tags.`{SAMPLE_TAG}` = '{sample}'")
    return run.info.run_id


@pytest.fixture(scope="module")
def dry(sample_store):
    """Every sample run audited afresh, nothing written."""
    return {r.run_name: r for r in mlflow_nnaudit.audit(tracking_uri=sample_store, force=True, dry_run=True)}


def _self_contained(page: str, links_out: bool = False) -> None:
    """Nothing fetched from elsewhere (the MLflow UI shows a run's page in a sandboxed frame). The
    summary page (`links_out`) may link to the MLflow UI: a link the reader clicks, not a resource
    the page loads."""
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""src\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "<link" not in page.lower()
    assert "@import" not in page.lower() and "url(" not in page.lower()
    external = re.findall(r"""<a\s[^>]*href\s*=\s*["']?((?:https?:)?//[^"' >]*)""", page, re.I)
    hrefs = re.findall(r"""href\s*=\s*["']?(?:https?:)?//""", page, re.I)
    assert len(hrefs) == len(external)  # every absolute href is an <a> link, nothing else
    if not links_out:
        assert not external


def test_report_artifact_is_written_with_curves_and_findings(sample_store, tmp_path):
    results = mlflow_nnaudit.audit(tracking_uri=sample_store, force=True, experiments=["nnaudit-samples"])
    by_name = {r.run_name: r for r in results}
    r = by_name["nan_lr_huge"]
    client = MlflowClient(sample_store)
    paths = {a.path for a in client.list_artifacts(r.run_id, "nnaudit")}
    assert {"nnaudit/report.html", "nnaudit/audit.json"} <= paths
    local = client.download_artifacts(r.run_id, "nnaudit/report.html", str(tmp_path))
    page = open(local, encoding="utf-8").read()
    _self_contained(page)
    assert "failed" in page and r.run_name in page
    for cause in r.causes:
        assert cause in page
    assert page.count("<svg") >= 2  # the loss chart and at least one more
    assert "NaN/Inf at" in page  # the blow-up is drawn where it happened
    assert "Fix:" in page
    assert all(res.report_html is None for res in results)  # pages are not kept in memory


def test_report_of_a_healthy_run_says_so(dry):
    r = dry["healthy_adam_mlp"]
    page = report.run_report_html(r, {})
    _self_contained(page)
    assert "Nothing wrong was found" in page and "healthy" in page


def test_chart_draws_marks_log_scale_and_thins_long_curves():
    n = 20_000
    x = np.arange(n, dtype=float)
    y = 10.0 * np.exp(-x / 2000) + 0.01
    y[12_345] = 500.0  # one spike must survive the thinning
    y[19_000:] = np.nan
    svg = report.svg_chart([("loss", Curve("loss", x, y))], [report.Mark(5000, 8000, "plateau: test")], "Loss")
    pts = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()
    assert len(pts) <= report.MAX_DRAWN_POINTS
    ys = [float(p.split(",")[1]) for p in pts]
    assert min(ys) < 40  # the spike is near the top of the plot area
    assert "log scale" in svg  # positive values over >2 decades
    assert "NaN/Inf at 19,000" in svg
    assert "plateau: test" in svg


def test_flat_curve_chart_has_a_sensible_axis():
    svg = report.svg_chart([("lr", Curve("lr", np.arange(5.0), np.full(5, 1e-3)))], (), "Learning rate")
    ticks = [float(t) for t in re.findall(r'text-anchor="end">([-0-9.e+]+)</text>', svg)]
    assert ticks and all(t > 0 for t in ticks)  # a learning rate of 1e-3 gets no negative ticks


def test_explain_prints_findings_evidence_and_fix(sample_store):
    rid = _run_id(sample_store, "nan_lr_huge")
    res = CliRunner().invoke(main, ["explain", rid[:10], "--tracking-uri", sample_store])
    assert res.exit_code == 0, res.output
    assert "[failed]" in res.output
    assert "nonfinite_loss" in res.output and "Fix:" in res.output
    assert "non-finite from step" in res.output
    # nothing written by explain
    before = MlflowClient(sample_store).get_run(rid).data.tags.get("nnaudit.audited_at")
    CliRunner().invoke(main, ["explain", rid, "--tracking-uri", sample_store])
    assert MlflowClient(sample_store).get_run(rid).data.tags.get("nnaudit.audited_at") == before


def test_explain_unknown_run_is_a_one_line_error(sample_store):
    res = CliRunner().invoke(main, ["explain", "ffffffffffff", "--tracking-uri", sample_store])
    assert res.exit_code == 1
    assert "no run whose id starts with 'ffffffffffff'" in res.output
    assert "Traceback" not in res.output


def test_fail_on_exit_status(sample_store):
    args = ["audit", "--tracking-uri", sample_store, "--dry-run", "--force"]
    res = CliRunner().invoke(main, args + ["--fail-on", "failed"])
    assert res.exit_code == EXIT_FOUND, res.output
    assert re.search(r"\d+ run\(s\) of this audit are failed \(\d+ audited now, 0 unchanged", res.output)
    assert CliRunner().invoke(main, args).exit_code == 0  # without the option, findings are not errors
    # only the healthy runs: nothing at or above 'warning'
    healthy_only = CliRunner().invoke(main, args + ["--fail-on", "warning", "--experiment", "no-such-exp"])
    assert healthy_only.exit_code == 1  # an unknown experiment is an error, not a finding


def test_fail_on_counts_unchanged_failed_runs_of_the_window(sample_store):
    mlflow_nnaudit.audit(tracking_uri=sample_store)  # everything audited and unchanged
    res = CliRunner().invoke(main, ["audit", "--tracking-uri", sample_store, "--fail-on", "failed"])
    assert res.exit_code == EXIT_FOUND, res.output  # a failed run stays failed the next night
    assert re.search(r"\(0 audited now, \d+ unchanged since their last audit\)", res.output)


def test_json_has_summary_and_every_run(sample_store, dry):
    res = CliRunner().invoke(
        main, ["audit", "--tracking-uri", sample_store, "--dry-run", "--force", "--format", "json"]
    )
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["summary"]["runs"] == len(doc["runs"]) == len(dry)
    assert doc["summary"]["by_status"]["failed"] == sum(r.status == "failed" for r in dry.values())
    assert sum(doc["summary"]["by_status"].values()) == len(dry)
    counted = {}
    for r in dry.values():
        if r.status in ("failed", "warning"):
            for c in r.causes:
                counted[c] = counted.get(c, 0) + 1
    assert doc["summary"]["by_cause"] == counted


def test_summary_page(sample_store, tmp_path, dry):
    out = tmp_path / "summary.html"
    res = CliRunner().invoke(
        main, ["audit", "--tracking-uri", sample_store, "--dry-run", "--force", "--report", str(out)]
    )
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    _self_contained(page, links_out=True)
    assert "http://127.0.0.1:5000/#/experiments/" in page  # run names link to `mlflow ui` on this store
    assert f"nnaudit: {len(dry)} runs" in page
    # worst first: every failed run is listed before the first healthy one
    first_healthy = page.index(">healthy</span></td>")
    for name, r in dry.items():
        if r.status == "failed":
            assert page.index(name) < first_healthy
    assert page.count("<polyline") >= len(dry) - 2  # a sparkline per run with a finite loss


def test_table_counts_causes(sample_store, dry):
    res = CliRunner().invoke(main, ["audit", "--tracking-uri", sample_store, "--dry-run", "--force"])
    n_failed = sum(r.status == "failed" for r in dry.values())
    assert f"{n_failed} failed" in res.output
    assert "causes: " in res.output
    assert "Downloading artifacts" not in res.output  # no MLflow progress bar per recorder run


def test_shards_split_the_store_without_overlap_or_gap(sample_store, dry):
    seen = []
    for k in (1, 2, 3):
        part = mlflow_nnaudit.audit(tracking_uri=sample_store, force=True, dry_run=True, shard=f"{k}/3")
        seen.append({r.run_id for r in part})
    assert set().union(*seen) == {r.run_id for r in dry.values()}
    assert sum(len(s) for s in seen) == len(dry)
    assert all(seen)  # 30 runs in 3 parts: none empty (a hash that ignored the id would fail this)


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1/0", "a/b", "1"])
def test_bad_shard_is_rejected(bad):
    with pytest.raises(ValueError):
        parse_shard(bad)


def test_shard_of_one_is_everything():
    assert all(in_shard(f"{i:032x}", (1, 1)) for i in range(100))


def test_workers_give_the_same_verdicts(sample_store, dry):
    par = mlflow_nnaudit.audit(tracking_uri=sample_store, force=True, dry_run=True, workers=2)
    assert {r.run_name: (r.status, r.causes) for r in par} == {n: (r.status, r.causes) for n, r in dry.items()}


def test_progress_bar_on_a_terminal_and_quiet_otherwise():
    master, slave = os.openpty()
    with open(slave, "w", closefd=True) as tty:
        bar = _Progress(tty)
        assert bar.enabled
        bar.start(4)

        class R:
            status = "failed"

        for _ in range(4):
            bar._last = -1.0  # draw every update
            bar(R())
        bar.close()
    # read until the closed terminal says so (EIO): one read may return only part of what was written
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    text = b"".join(chunks).decode()
    os.close(master)
    assert "4/4 runs" in text and "4 failed" in text and "[" + "#" * 30 + "]" in text
    with open(os.devnull, "w") as devnull:
        quiet = _Progress(devnull)
        assert not quiet.enabled


def test_workers_in_a_script_without_main_guard_fall_back(sample_store, tmp_path):
    """A script that calls audit(workers=2) at top level, as users write them: the spawned
    workers cannot start (they re-run the script), and the audit says so and finishes alone."""
    import subprocess
    import sys

    script = tmp_path / "nightly.py"
    script.write_text(
        "import mlflow_nnaudit\n"
        f"res = mlflow_nnaudit.audit(tracking_uri={sample_store!r}, dry_run=True, force=True, workers=2)\n"
        "print('AUDITED', len(res), sorted({r.status for r in res}))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("AUDITED") == 1  # the workers did not each run an audit of their own
    n = int(proc.stdout.split("AUDITED", 1)[1].split()[0])
    assert n == len(mlflow_nnaudit.audit(tracking_uri=sample_store, dry_run=True, force=True))
    assert "analysis workers could not start" in proc.stderr


def test_evidence_is_bounded_in_explain_and_in_the_report():
    """A language model's label histogram (33,000 token ids) is summarised, not printed; long
    lists and dicts are cut (issue 11)."""
    from mlflow_nnaudit.auditor.report import explain_text, run_report_html
    from mlflow_nnaudit.auditor.result import AuditResult
    from mlflow_nnaudit.auditor.rules import Evidence, Finding

    counts = [int(1e6 / (i + 1)) for i in range(33_000)]  # Zipf-like
    finding = Finding(
        cause="class_imbalance",
        confidence="medium",
        severity="warning",
        score=0.5,
        summary="s",
        recommendation="r",
        evidence=[
            Evidence(
                "label_histogram",
                "nnaudit/diagnostics.json",
                {"label_counts": counts, "ids": list(range(5000)), "by_layer": {f"l{i}": i for i in range(100)}},
            )
        ],
    )
    result = AuditResult("r1", "run", "0", "exp", "warning", findings=[finding])
    text = explain_text(result, {})
    assert len(text) < 2000, len(text)
    assert "33000 bins" in text and "top 5: 0:" in text and "entropy" in text
    assert "(4992 more)" in text and "(92 more)" in text
    html = run_report_html(result, {})
    assert "33000 bins" in html and str(counts[100]) not in html


def test_explain_separates_its_sections_with_blank_lines_not_escaped_newlines():
    """Every line of `explain` is made printable (control characters escaped); the blank line
    before "Nothing wrong was found." must be a line of its own, not a printed `\\n`."""
    from mlflow_nnaudit.auditor.report import explain_text
    from mlflow_nnaudit.auditor.result import AuditResult

    text = explain_text(AuditResult("r1", "run", "0", "exp", "healthy"), {})
    assert "\\n" not in text and text.splitlines()[-2:] == ["", "Nothing wrong was found."]
