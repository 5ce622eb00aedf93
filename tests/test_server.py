"""The audit through a real `mlflow server` (over sqlite, and over PostgreSQL), and the result
in the real MLflow UI, loaded in headless Chromium: the failed filter lists exactly the failed
runs, and a run's nnaudit/report.html artifact renders.

Runs are trained with real PyTorch and logged through the server's REST API, as a team's
training jobs do. Screenshots go to the test's temporary directory, and to docs/img/ when
NNAUDIT_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from mlflow_nnaudit.cli import main
from sample_runs.faults import SAMPLE_TAG, SAMPLES, train_sample
from tests.services import INSTALL_HINT, MlflowServer, chromium_path

#: a few samples of each kind: healthy (curves by hand and with the recorder), failed, warning
SERVER_SAMPLES = ("healthy_adam_mlp", "healthy_logged_by_hand", "nan_lr_huge", "sorted_by_label", "heavy_dropout")
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def _train_through(url: str, experiment: str) -> str:
    from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

    mlflow.set_tracking_uri(url)
    exp_id = mlflow.create_experiment(experiment)
    by_name = {s.name: s for s in SAMPLES}
    try:
        for name in SERVER_SAMPLES:
            train_sample(by_name[name], exp_id)
    finally:
        AUTOLOGGING_INTEGRATIONS["nnaudit"] = {}
    return exp_id


def _audit_through(url: str) -> None:
    res = CliRunner().invoke(main, ["audit", "--tracking-uri", url])
    assert res.exit_code == 0, res.output
    assert f"{len(SERVER_SAMPLES)} runs:" in res.output


def _failed_names(url: str, exp_id: str) -> set[str]:
    runs = MlflowClient(url).search_runs([exp_id], "tags.nnaudit.status = 'failed'")
    return {r.data.tags[SAMPLE_TAG] for r in runs}


def _check_audited(url: str, exp_id: str) -> None:
    client = MlflowClient(url)
    runs = {r.data.tags[SAMPLE_TAG]: r for r in client.search_runs([exp_id])}
    assert set(runs) == set(SERVER_SAMPLES)
    failed = _failed_names(url, exp_id)
    assert failed and not any(n.startswith("healthy") for n in failed)
    assert "nan_lr_huge" in failed
    for name in ("healthy_adam_mlp", "healthy_logged_by_hand"):
        assert runs[name].data.tags["nnaudit.status"] == "healthy"
    assert "nonfinite_loss" in runs["nan_lr_huge"].data.tags["nnaudit.causes"]
    arts = {a.path for a in client.list_artifacts(runs["nan_lr_huge"].info.run_id, "nnaudit")}
    assert {"nnaudit/audit.json", "nnaudit/report.html"} <= arts


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    server = MlflowServer(f"sqlite:///{root / 'mlflow.db'}", str(root))
    try:
        exp_id = _train_through(server.url, "server-samples")
        yield server, exp_id, root
    finally:
        server.stop()


def test_audit_through_a_real_server_over_sqlite(sqlite_server):
    server, exp_id, _ = sqlite_server
    _audit_through(server.url)
    _check_audited(server.url, exp_id)
    # a second audit of the unchanged store skips every run
    again = CliRunner().invoke(main, ["audit", "--tracking-uri", server.url, "--format", "json"])
    assert again.exit_code == 0
    assert f'"skipped_unchanged": {len(SERVER_SAMPLES)}' in again.output


def test_audit_through_a_real_server_over_postgresql(postgres, tmp_path):
    backend = postgres.create_database("mlflow_server")
    server = MlflowServer(backend, str(tmp_path))
    try:
        exp_id = _train_through(server.url, "pg-samples")
        _audit_through(server.url)
        _check_audited(server.url, exp_id)
        # The same store read directly (bulk SQL on PostgreSQL): the same curves, so the same
        # verdicts on curve evidence. The recorder's diagnostics.json sits behind the server's
        # artifact proxy (mlflow-artifacts:/), which a direct reader cannot reach: it says so.
        import mlflow_nnaudit

        direct = {r.tags[SAMPLE_TAG]: r for r in mlflow_nnaudit.audit(tracking_uri=backend, force=True, dry_run=True)}
        via_server = {r.data.tags[SAMPLE_TAG]: r.data.tags for r in MlflowClient(server.url).search_runs([exp_id])}
        for name in ("healthy_logged_by_hand", "nan_lr_huge", "healthy_adam_mlp"):
            assert direct[name].status == via_server[name]["nnaudit.status"], name
        assert any("could not be read" in n for n in direct["sorted_by_label"].notes)
    finally:
        server.stop()


def _shot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name))
    if os.environ.get("NNAUDIT_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, DOCS_IMG / name)


def test_failed_filter_and_report_in_the_mlflow_ui(sqlite_server, tmp_path):
    chromium = chromium_path()
    if chromium is None:
        pytest.skip(f"Chromium is not installed: {INSTALL_HINT}")
    sync_api = pytest.importorskip("playwright.sync_api")
    server, exp_id, _ = sqlite_server
    if not _failed_names(server.url, exp_id):  # not audited yet (this test run alone)
        _audit_through(server.url)
    failed = _failed_names(server.url, exp_id)
    assert failed

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{server.url}/#/experiments/{exp_id}/runs", wait_until="load")
            box = page.get_by_test_id("search-box")
            box.wait_for()
            count = page.get_by_text(re.compile(r"^\d+ matching runs?$"))
            count.wait_for()
            box.fill("tags.nnaudit.status = 'failed'")
            box.press("Enter")
            page.get_by_text(f"{len(failed)} matching run{'s' if len(failed) != 1 else ''}", exact=True).wait_for()
            links = page.locator('a[href*="/runs/"]')
            listed = {links.nth(i).inner_text().strip() for i in range(links.count())}
            listed.discard("")
            assert listed == failed  # exactly the failed runs (run names are the sample names)
            _shot(page, tmp_path, "ui-failed-filter.png")

            # the address the demo prints and the summary page links to: the same list, filter applied
            from mlflow_nnaudit.auditor.report import ui_runs_url

            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(ui_runs_url(server.url, exp_id), wait_until="load")
            page.get_by_text(f"{len(failed)} matching run{'s' if len(failed) != 1 else ''}", exact=True).wait_for()
            assert page.get_by_test_id("search-box").input_value() == "tags.nnaudit.status = 'failed'"

            run = MlflowClient(server.url).search_runs([exp_id], f"tags.`{SAMPLE_TAG}` = 'nan_lr_huge'")[0]
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(
                f"{server.url}/#/experiments/{exp_id}/runs/{run.info.run_id}/artifacts/nnaudit/report.html",
                wait_until="load",
            )
            frame_el = page.locator("iframe").first
            frame_el.wait_for()
            frame = frame_el.content_frame
            frame.get_by_text("What was found").wait_for()
            assert frame.locator("svg").count() >= 2
            assert frame.get_by_text("Loss became NaN or Inf").count() >= 1
            page.wait_for_timeout(500)
            _shot(page, tmp_path, "ui-run-report.png")
        finally:
            browser.close()
    assert (tmp_path / "ui-failed-filter.png").stat().st_size > 10_000
    assert (tmp_path / "ui-run-report.png").stat().st_size > 10_000


def test_rest_bulk_reading_gives_the_client_curves(sqlite_server, monkeypatch):
    """Through the server's bulk endpoint: the same curves as the client's per-run calls,
    NaN and +/-Inf included, also when requests are cut at the server's point limit (the
    limit is lowered here so that groups must be split, and single runs fall back to the
    client's paginated call)."""
    import math

    import numpy as np
    from mlflow.entities import Metric

    from mlflow_nnaudit.auditor import rest_bulk
    from mlflow_nnaudit.auditor.store import Store

    server, _, _ = sqlite_server
    client = MlflowClient(server.url)
    exp_id = client.create_experiment("rest-bulk")
    for i, n in enumerate((30, 7, 45)):
        run = client.create_run(exp_id, run_name=f"r{i}")
        vals = [1.0 / (s + 1) for s in range(n)]
        if i == 0:
            vals[3], vals[4], vals[5] = math.nan, math.inf, -math.inf
        client.log_batch(
            run.info.run_id, metrics=[Metric("loss", v, 1_700_000_000_000 + s, s) for s, v in enumerate(vals)]
        )
        client.log_batch(run.info.run_id, metrics=[Metric("lr", 0.1, 1_700_000_000_000, 0)])
        client.set_terminated(run.info.run_id)
    monkeypatch.setattr(rest_bulk, "MAX_POINTS_PER_REQUEST", 40)
    with Store(server.url) as store:
        assert isinstance(store._bulk, rest_bulk.RestBulkReader)
        records = list(store.iter_runs(store.experiments(["rest-bulk"])))
        keys = {r.run_id: ["loss", "lr", "never_logged"] for r in records}
        store.prefetch(records, keys)
        assert store.bulk_enabled and len(store._cache) == 9
        for r in records:
            got = store.load_curves(r, keys[r.run_id])
            for k in keys[r.run_id]:
                want = store.load_curve(r.run_id, k)
                np.testing.assert_array_equal(got[k].steps, want.steps)
                np.testing.assert_array_equal(got[k].values, want.values)
                np.testing.assert_array_equal(got[k].timestamps, want.timestamps)
        r0 = next(r for r in records if r.run_name == "r0")
        store.prefetch([r0], {r0.run_id: ["loss"]})
        v = store.load_curves(r0, ["loss"])["loss"].values
        assert math.isnan(v[3]) and v[4] == math.inf and v[5] == -math.inf and len(v) == 30


def test_audit_through_a_server_that_asks_for_credentials(tmp_path, monkeypatch):
    """MLflow's basic-auth server: the audit reads and tags with the credentials MLflow's own
    variables give it (bulk reads included), and without them stops with a clear message and
    writes nothing."""
    server = MlflowServer(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path), basic_auth=True)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", MlflowServer.ADMIN[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MlflowServer.ADMIN[1])
        mlflow.set_tracking_uri(server.url)
        exp_id = mlflow.create_experiment("auth-samples")
        by_name = {s.name: s for s in SAMPLES}
        for name in ("healthy_logged_by_hand", "nan_lr_huge"):
            train_sample(by_name[name], exp_id)

        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        res = CliRunner().invoke(main, ["audit", "--tracking-uri", server.url])
        assert res.exit_code != 0
        assert "401" in res.output and "MLFLOW_TRACKING_USERNAME" in res.output, res.output
        assert "Traceback" not in res.output

        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", MlflowServer.ADMIN[1])
        client = MlflowClient(server.url)
        assert not any(k.startswith("nnaudit.status") for r in client.search_runs([exp_id]) for k in r.data.tags)
        res = CliRunner().invoke(main, ["audit", "--tracking-uri", server.url])
        assert res.exit_code == 0, res.output
        status = {r.data.tags[SAMPLE_TAG]: r.data.tags.get("nnaudit.status") for r in client.search_runs([exp_id])}
        assert status == {"healthy_logged_by_hand": "healthy", "nan_lr_huge": "failed"}
    finally:
        server.stop()
