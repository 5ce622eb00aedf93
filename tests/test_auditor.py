"""The auditor on runs logged by hand (no recorder, no torch): the names real code uses,
re-audits, bad input, and what it may and may not write."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

import mlflow_nnaudit
from mlflow_nnaudit.auditor.store import StoreError
from mlflow_nnaudit.cli import main as cli


def log_curves(
    name: str,
    curves: dict[str, np.ndarray],
    tags: dict | None = None,
    params: dict | None = None,
    steps: dict[str, np.ndarray] | None = None,
) -> str:
    """Log a run's curves the way a hand-written loop would (one point per step)."""
    with mlflow.start_run(run_name=name) as run:
        if tags:
            mlflow.set_tags(tags)
        if params:
            mlflow.log_params(params)
        client = MlflowClient()
        from mlflow.entities import Metric

        metrics = []
        for key, values in curves.items():
            xs = steps[key] if steps and key in steps else np.arange(len(values))
            for i, (s, v) in enumerate(zip(xs, values)):
                metrics.append(Metric(key, float(v), 1_700_000_000_000 + i * 1000, int(s)))
        for i in range(0, len(metrics), 1000):
            client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
    return run.info.run_id


def healthy_curve(n: int, seed: int, floor: float = 0.2, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return floor + 2.0 * np.exp(-t / (n / 8)) + noise * rng.standard_normal(n)


def tags_of(run_id: str) -> dict[str, str]:
    return MlflowClient().get_run(run_id).data.tags


def test_hf_trainer_names_nan_run_fails_with_cause(store_uri):
    loss = healthy_curve(200, 1)
    loss[120:] = np.nan
    rid = log_curves(
        "hf",
        {"loss": loss, "learning_rate": np.full(200, 5e-5), "grad_norm": np.ones(200)},
        params={"learning_rate": "5e-05"},
    )
    (res,) = mlflow_nnaudit.audit()
    assert res.roles["train_loss"] == "loss" and res.roles["lr"] == "learning_rate"
    tags = tags_of(rid)
    assert tags["nnaudit.status"] == "failed"
    assert tags["nnaudit.causes"].split(",")[0] == "nonfinite_loss"
    assert tags["nnaudit.cause.nonfinite_loss"] == "high"
    assert "step 120" in tags["nnaudit.recommendation"]


def test_inf_stored_by_mlflow_is_seen_as_inf(store_uri):
    loss = healthy_curve(100, 2)
    loss[60:] = math.inf  # MLflow stores this as 1.797e308
    rid = log_curves("inf", {"train_loss": loss})
    (res,) = mlflow_nnaudit.audit()
    nf = next(f for f in res.findings if f.cause == "nonfinite_loss")
    assert nf.evidence[0].values["kind"] == "inf"
    assert tags_of(rid)["nnaudit.status"] == "failed"


def test_lightning_names_overfitting_is_a_warning(store_uri):
    n = 60
    t = np.arange(n)
    train = 0.05 + 1.5 * np.exp(-t / 10)
    val = 0.6 + 0.9 * np.exp(-t / 6) + 0.012 * np.maximum(0, t - 12)
    rid = log_curves("lightning", {"train_loss_epoch": train, "val_loss_epoch": val, "epoch": t.astype(float)})
    (res,) = mlflow_nnaudit.audit()
    assert res.roles == {"train_loss": "train_loss_epoch", "val_loss": "val_loss_epoch"}
    assert tags_of(rid)["nnaudit.status"] == "warning"
    assert "overfitting" in res.causes


def test_healthy_noisy_curve_is_healthy(store_uri):
    rid = log_curves("healthy", {"train_loss": healthy_curve(3000, 3, noise=0.15)})
    mlflow_nnaudit.audit()
    tags = tags_of(rid)
    assert tags["nnaudit.status"] == "healthy", tags.get("nnaudit.causes")
    assert tags["nnaudit.causes"] == ""
    assert not [k for k in tags if k.startswith("nnaudit.cause.")]


def test_run_without_loss_is_inconclusive(store_uri):
    rid = log_curves("no-loss", {"throughput": np.ones(50)})
    (res,) = mlflow_nnaudit.audit()
    assert res.status == "inconclusive" and res.reason
    assert tags_of(rid)["nnaudit.status"] == "inconclusive"


def test_role_override_reads_an_unusual_name(store_uri):
    loss = healthy_curve(200, 4)
    loss[100:] = np.nan
    rid = log_curves("custom", {"objective_value": loss})
    (res,) = mlflow_nnaudit.audit(roles={"train_loss": "objective_value"})
    assert res.roles["train_loss"] == "objective_value"
    assert tags_of(rid)["nnaudit.status"] == "failed"


def test_reaudit_removes_stale_cause_tags_and_keeps_user_tags(store_uri):
    rid = log_curves(
        "stale",
        {"train_loss": healthy_curve(500, 5)},
        tags={"team": "vision", "nnaudit.cause.plateau": "high", "nnaudit.status": "failed"},
    )
    mlflow_nnaudit.audit()
    tags = tags_of(rid)
    assert "nnaudit.cause.plateau" not in tags
    assert tags["nnaudit.status"] == "healthy"
    assert tags["team"] == "vision"


def test_running_and_deleted_runs_are_not_audited(store_uri):
    client = MlflowClient()
    exp = client.get_experiment_by_name("Default")
    running = client.create_run(exp.experiment_id)
    client.log_metric(running.info.run_id, "loss", 1.0)
    deleted = log_curves("deleted", {"train_loss": healthy_curve(100, 6)})
    client.delete_run(deleted)
    assert mlflow_nnaudit.audit() == []
    assert "nnaudit.status" not in client.get_run(running.info.run_id).data.tags


def test_crashed_run_is_audited(store_uri):
    loss = healthy_curve(100, 7)
    loss[50:] = np.nan
    with mlflow.start_run(run_name="crash") as run:
        for i, v in enumerate(loss[:51]):
            mlflow.log_metric("loss", float(v), step=i)
    MlflowClient().set_terminated(run.info.run_id, "FAILED")
    (res,) = mlflow_nnaudit.audit()
    assert res.status == "failed" and "nonfinite_loss" in res.causes
    assert MlflowClient().get_run(run.info.run_id).info.status == "FAILED"


def test_dry_run_writes_nothing(store_uri):
    rid = log_curves("dry", {"train_loss": healthy_curve(100, 8)})
    (res,) = mlflow_nnaudit.audit(dry_run=True)
    assert res.status == "healthy"
    assert not [k for k in tags_of(rid) if k.startswith("nnaudit.")]
    assert MlflowClient().list_artifacts(rid) == []


def test_since_limits_the_window(store_uri):
    log_curves("old", {"train_loss": healthy_curve(100, 9)})
    assert len(mlflow_nnaudit.audit(since="1h")) == 1
    with pytest.raises(ValueError):
        mlflow_nnaudit.audit(since="yesterday")


# --- the command line ---------------------------------------------------------------------------
def test_cli_table_and_json(store_uri):
    log_curves("a", {"train_loss": healthy_curve(200, 10)})
    runner = CliRunner()
    out = runner.invoke(cli, ["audit", "--tracking-uri", store_uri, "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "healthy" in out.output and "1 runs: 1 healthy" in out.output
    out = runner.invoke(cli, ["audit", "--tracking-uri", store_uri, "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["summary"]["by_status"] == {"healthy": 1}
    run = doc["runs"][0]
    assert run["status"] == "healthy" and run["curves"]["train_loss"] == "train_loss"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tracking-uri", "sqlite:///does/not/exist.db"], "does not exist"),
        (["--tracking-uri", "http://127.0.0.1:9"], "cannot reach"),
        (["--experiment", "no-such-experiment"], "unknown experiment"),
        (["--since", "soon"], "cannot read duration"),
        (["--role", "train_loss"], "ROLE=METRIC_KEY"),
    ],
)
def test_cli_bad_input_is_one_line_and_nonzero(store_uri, args, message):
    log_curves("x", {"train_loss": healthy_curve(50, 11)})
    out = CliRunner().invoke(cli, ["audit", *args])
    assert out.exit_code != 0
    assert message in out.output
    assert "Traceback" not in out.output


def test_missing_sqlite_file_is_not_created(tmp_path):
    path = tmp_path / "typo.db"
    with pytest.raises(StoreError):
        mlflow_nnaudit.audit(tracking_uri=f"sqlite:///{path}")
    assert not path.exists()


def test_auditor_never_imports_torch(store_uri):
    log_curves("t", {"train_loss": healthy_curve(50, 12)})
    code = (
        "import sys, mlflow_nnaudit\n"
        f"res = mlflow_nnaudit.audit(tracking_uri={store_uri!r})\n"
        "assert res, 'nothing audited'\n"
        "from mlflow_nnaudit import cli\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_an_ambiguous_finding_explains_nothing_away():
    """From curves alone an underfit run whose validation loss ends below its training loss
    fits too much regularisation and too small a model alike: both stay listed. With params
    that say the regularisation is strong, that reading explains the underfitting."""
    from mlflow_nnaudit.auditor.rules import ALL_RULES
    from mlflow_nnaudit.auditor.rules.base import Finding
    from mlflow_nnaudit.auditor.verdict import drop_explained

    explained_by = {r.cause: r.explained_by for r in ALL_RULES}
    capacity = Finding("insufficient_capacity", "low", "warning", "s", "r")
    for explains, kept_causes in (
        (False, {"too_much_regularization", "insufficient_capacity"}),
        (True, {"too_much_regularization"}),
    ):
        reg = Finding("too_much_regularization", "low", "warning", "s", "r", explains=explains)
        kept, _ = drop_explained([reg, capacity], explained_by)
        assert {f.cause for f in kept} == kept_causes
