"""The real-program evaluation's harness (benchmarks/programs), end to end on a few of its fastest
programs: each trains in its own process into one store, is audited, and comes back as one row.

Asserts on the plumbing, not on today's verdicts (those are the evaluation's output)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parent.parent
FAST = ["f07_logsoftmax_one_unit_bceloss", "f08_optimizer_given_data_tensors", "h04_polynomial_regression"]


def test_every_program_has_a_ground_truth_header():
    from benchmarks.programs.run import discover

    progs = discover()
    faulty = [p for p in progs if not p.healthy]
    healthy = [p for p in progs if p.healthy]
    assert len(faulty) >= 30 and len(healthy) >= 10
    causes_md = (ROOT / "docs" / "causes.md").read_text()
    for p in faulty:
        assert f"`{p.first}`" in causes_md or f"## {p.first}" in causes_md, (p.name, p.first)
        assert p.symptoms, p.name
        assert "http" in p.path.read_text().split('"""')[1], p.name
        assert '"--fix" in sys.argv' in p.path.read_text(), p.name


@pytest.mark.slow
@pytest.mark.parametrize("no_recorder", [False, True], ids=["recorder", "curves-only"])
def test_runner_trains_audits_and_scores(tmp_path, no_recorder):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out_json = tmp_path / "rows.json"
    cmd = [sys.executable, "-m", "benchmarks.programs", "--tracking-uri", uri, "--jobs", "2", "--json", str(out_json)]
    cmd += [a for name in FAST for a in ("--only", name)]
    if no_recorder:
        cmd.append("--no-recorder")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out_json.read_text())
    rows = {r["program"]: r for r in result["rows"]}
    assert set(rows) == set(FAST)
    assert all(r["rc"] == 0 for r in rows.values()), rows
    assert all(r["status"] in ("healthy", "warning", "failed", "inconclusive") for r in rows.values()), rows
    assert result["scores"]["faulty"] == 2 and result["scores"]["healthy"] == 1
    # one run per program, in one experiment, holding the program's own curves
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("nnaudit-programs-curves" if no_recorder else "nnaudit-programs")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["programs.name"] for r in runs) == sorted(FAST)
    by_name = {r.data.tags["programs.name"]: r for r in runs}
    assert "train_loss" in by_name["f08_optimizer_given_data_tensors"].data.metrics
    assert "loss" in by_name["h04_polynomial_regression"].data.metrics
    recorded = any(k.startswith("nnaudit") for k in by_name["h04_polynomial_regression"].data.metrics)
    assert recorded is (not no_recorder)
    assert "PROGRAM" in proc.stdout and "healthy called healthy" in proc.stdout
