"""End to end, scripts written the way users write them (`mlflow.autolog()` and a plain loop,
from benchmarks/programs): each trains in its own process into a fresh store and is audited;
the first cause must be the program's ground truth, and the healthy one must be healthy.

These are the cases the moment and learning evidence exists for: NaN in a few input rows
(`nonfinite_inputs`, not the learning rate), an optimizer handed the data tensors, a
parameter rebuilt through `.item()` each step, every parameter frozen behind
`loss.requires_grad = True` (all `frozen_parameters`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "f10_nan_in_some_inputs": "nonfinite_inputs",
    "f08_optimizer_given_data_tensors": "frozen_parameters",
    "f09_param_rebuilt_detach_item": "frozen_parameters",
    "f19_freeze_loop_freezes_head": "frozen_parameters",
    "h05_digits_mlp_adam": None,  # healthy
}


@pytest.mark.slow
@pytest.mark.parametrize("program", list(CASES))
def test_first_cause_of_a_user_script(tmp_path, program):
    from mlflow_nnaudit.auditor.runner import explain

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "programs" / f"{program}.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = MlflowClient(uri).search_runs(["0"])
    assert len(runs) == 1
    result = explain(runs[0].info.run_id, tracking_uri=uri)
    causes = [f.cause for f in result.findings]
    expected = CASES[program]
    if expected is None:
        assert result.status == "healthy", causes
    else:
        assert causes and causes[0] == expected, causes
        assert result.status == "failed" or expected == "frozen_parameters", (result.status, causes)
