"""The whole chain on real runs: sample runs trained with real PyTorch into a real sqlite store,
audited, then read back through MLflow's own search API the way a user filters in the UI."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import mlflow_nnaudit
from sample_runs.faults import ADVISORIES_TAG, EXPECTED_TAG, SAMPLE_TAG, SAMPLES

EXPECTED = {s.name: set(s.expected) for s in SAMPLES}


@pytest.fixture(scope="module")
def audited(sample_store):
    results = mlflow_nnaudit.audit(tracking_uri=sample_store, force=True)
    return sample_store, results


def _runs(uri, filter_string=""):
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True, filter_string=filter_string, output_format="list")


def test_every_sample_run_is_audited(audited):
    uri, results = audited
    assert {r.run_name for r in results} == set(EXPECTED)
    assert all(not r.skipped for r in results)


def test_failed_filter_returns_exactly_the_failing_runs(audited):
    uri, _ = audited
    failed = _runs(uri, "tags.nnaudit.status = 'failed'")
    names = {r.data.tags[SAMPLE_TAG] for r in failed}
    healthy = {name for name, causes in EXPECTED.items() if not causes}
    assert names, "no run was tagged failed"
    assert not names & healthy, f"healthy runs tagged failed: {names & healthy}"
    # every run whose injected fault breaks training outright must be among them
    must_fail = {"nan_lr_huge", "diverging_lr_warmup_bug", "plateau_zero_init", "lr_too_low"}
    assert must_fail <= names


def test_each_faulty_run_lists_its_injected_causes(audited):
    uri, _ = audited
    for run in _runs(uri):
        tags = run.data.tags
        name = tags[SAMPLE_TAG]
        expected = {c for c in tags[EXPECTED_TAG].split(",") if c}
        found = [c for c in tags["nnaudit.causes"].split(",") if c]
        if not expected:
            assert tags["nnaudit.status"] == "healthy", f"{name}: {tags['nnaudit.status']} {found}"
            assert found == []
            # a set-up risk injected into a run that trained well is an advisory, tagged for filtering
            advisories = set(tags["nnaudit.advisories"].split(",")) - {""}
            for cause in (c for c in tags.get(ADVISORIES_TAG, "").split(",") if c):
                assert cause in advisories and tags[f"nnaudit.cause.{cause}"], f"{name}: {cause} not an advisory"
            continue
        assert tags["nnaudit.status"] in ("failed", "warning"), name
        assert expected <= set(found), f"{name}: expected {expected}, found {found}"
        for cause in found:
            assert tags[f"nnaudit.cause.{cause}"] in ("high", "medium", "low")
        assert tags["nnaudit.recommendation"], name


def test_cause_filter_with_backticks(audited):
    uri, _ = audited
    runs = _runs(uri, "tags.`nnaudit.cause.nonfinite_loss` = 'high'")
    assert {r.data.tags[SAMPLE_TAG] for r in runs} == {
        n for n, causes in EXPECTED.items() if "nonfinite_loss" in causes
    }


def test_audit_json_artifact_holds_the_evidence(audited):
    uri, results = audited
    client = MlflowClient(tracking_uri=uri)
    nan_run = next(r for r in results if r.run_name == "nan_lr_huge")
    path = client.download_artifacts(nan_run.run_id, "nnaudit/audit.json")
    with open(path) as fh:
        doc = json.load(fh)
    assert doc["status"] == "failed"
    finding = next(f for f in doc["findings"] if f["cause"] == "nonfinite_loss")
    ev = finding["evidence"][0]
    assert ev["test"] == "nonfinite" and ev["curve"] == "nnaudit/train_loss"
    assert ev["values"]["first_nonfinite_step"] >= 0


def test_reaudit_changes_nothing_but_the_time(audited):
    uri, first = audited
    before = {r.info.run_id: dict(r.data.tags) for r in _runs(uri)}
    again = mlflow_nnaudit.audit(tracking_uri=uri, force=True)
    after = {r.info.run_id: dict(r.data.tags) for r in _runs(uri)}
    assert {r.run_id: r.status for r in again} == {r.run_id: r.status for r in first}
    for run_id, tags in before.items():
        a = {k: v for k, v in tags.items() if k != "nnaudit.audited_at"}
        b = {k: v for k, v in after[run_id].items() if k != "nnaudit.audited_at"}
        assert a == b


def test_second_audit_without_force_skips_unchanged_runs(audited):
    uri, first = audited
    again = mlflow_nnaudit.audit(tracking_uri=uri)
    assert again and all(r.skipped for r in again)
    assert {r.run_id: r.status for r in again} == {r.run_id: r.status for r in first}


def test_audit_touches_only_its_own_tags_and_nothing_else(audited):
    uri, _ = audited
    for run in _runs(uri):
        assert run.info.status == "FINISHED"
        own = [k for k in run.data.tags if k.startswith("nnaudit.")]
        assert all(
            k.startswith(
                (
                    "nnaudit.status",
                    "nnaudit.cause",
                    "nnaudit.recommendation",
                    "nnaudit.audited_at",
                    "nnaudit.version",
                    "nnaudit.ruleset",
                    "nnaudit.advisories",
                    "nnaudit.recorder.",
                )
            )
            for k in own
        ), own


# --- status follows harm: a set-up smell on a run that trained well is an advisory ---------------------
def _train_polynomial_regression(target_scale: float = 33.0, steps_per_epoch: int = 32, epochs: int = 25) -> str:
    """The PyTorch examples' polynomial regression: a Linear layer on [x, x^2, x^3, x^4] fitting a
    random degree-4 polynomial whose targets have a std of ~12, trained with mlflow.autolog()."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    w = torch.randn(4, 1) * target_scale
    x = torch.rand(steps_per_epoch * 32, 1) * 2 - 1
    feats = torch.cat([x, x**2, x**3, x**4], dim=1)
    y = feats @ w + 3.0
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(feats, y), batch_size=32, shuffle=True)
    model = nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.3)
    mlflow.autolog()
    with mlflow.start_run(run_name="polynomial") as run:
        for _ in range(epochs):
            for xb, yb in loader:
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(xb), yb)
                loss.backward()
                opt.step()
            schedule.step()
    mlflow.autolog(disable=True)
    return run.info.run_id, float(y.std()), float(loss.detach())


def test_a_healthy_regression_on_large_targets_is_healthy_with_an_advisory(store_uri):
    run_id, target_std, last_loss = _train_polynomial_regression()
    assert 8 < target_std < 20 and last_loss < 1e-3 * target_std**2  # it converged, on targets of std ~12
    (result,) = [r for r in mlflow_nnaudit.audit(tracking_uri=store_uri, force=True) if r.run_id == run_id]
    assert result.status == "healthy", (result.causes, result.notes)
    assert result.causes == [] and "targets_not_normalized" in result.advisories
    tags = MlflowClient(tracking_uri=store_uri).get_run(run_id).data.tags
    assert tags["nnaudit.status"] == "healthy" and tags["nnaudit.causes"] == ""
    assert "targets_not_normalized" in tags["nnaudit.advisories"].split(",")
    assert tags["nnaudit.cause.targets_not_normalized"] in ("high", "medium", "low")
    assert tags["nnaudit.recommendation"].startswith("Advisory")
    # filtering by cause finds it; filtering by status does not call it failing
    assert [r.info.run_id for r in _runs(store_uri, "tags.`nnaudit.cause.targets_not_normalized` LIKE '%'")] == [run_id]
    assert _runs(store_uri, "tags.nnaudit.status != 'healthy'") == []
    # a stale advisory left by an earlier audit is removed on re-audit, like a stale cause
    client = MlflowClient(tracking_uri=store_uri)
    client.set_tag(run_id, "nnaudit.cause.missing_bias", "low")
    client.set_tag(run_id, "nnaudit.advisories", tags["nnaudit.advisories"] + ",missing_bias")
    mlflow_nnaudit.audit(tracking_uri=store_uri, force=True)
    tags = client.get_run(run_id).data.tags
    assert "nnaudit.cause.missing_bias" not in tags and "missing_bias" not in tags["nnaudit.advisories"]
    # and an up-to-date run whose advisories match their tags is not audited again
    (again,) = mlflow_nnaudit.audit(tracking_uri=store_uri)
    assert again.skipped and again.advisories == result.advisories
    # the CLI's table says so, for the run audited now and for the one skipped as unchanged
    from mlflow_nnaudit.cli import format_table

    for shown in (result, again):
        table = format_table([shown])
        assert (
            "advisory: targets_not_normalized" in table
            and "advisories (healthy runs): targets_not_normalized 1" in table
        )
