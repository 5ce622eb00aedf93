"""`make compat`: the fast subset run against the dependency floors and against the newest
versions the registry serves, each in its own virtual environment (see the Makefile).

Train two sample runs with the recorder into a fresh sqlite store (one healthy, one whose loss
turns NaN), audit them with the `nnaudit` command, and read the tags back through MLflow's
client. Not collected by pytest (its name does not start with test_): `make test` uses the
project's own environment only. Exit status 0 when every check holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def main() -> int:
    print(
        "versions: "
        + ", ".join(f"{p} {version(p)}" for p in ("mlflow", "sqlalchemy", "numpy", "scipy", "pandas", "click", "torch"))
    )
    import mlflow
    from mlflow.tracking import MlflowClient

    from sample_runs.faults import SAMPLES, train_sample

    with tempfile.TemporaryDirectory(prefix="nnaudit-compat-") as tmp:
        os.chdir(tmp)
        uri = f"sqlite:///{tmp}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        exp_id = mlflow.create_experiment("compat", artifact_location=f"{tmp}/artifacts")
        wanted = {"healthy_adam_mlp": ("healthy", ()), "nan_lr_huge": ("failed", ("nonfinite_loss",))}
        ids = {s.name: train_sample(s, exp_id) for s in SAMPLES if s.name in wanted}
        cmd = [sys.executable, "-m", "mlflow_nnaudit.cli", "audit", "--tracking-uri", uri, "--experiment", "compat"]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        for extra in ([], ["--dry-run", "--force"]):  # write, then read only
            done = subprocess.run(cmd + extra, check=False, capture_output=True, text=True, env=env, timeout=600)
            print(done.stdout + done.stderr)
            if done.returncode != 0:
                print(f"FAIL: nnaudit audit {' '.join(extra)} exited {done.returncode}")
                return 1
        client = MlflowClient(uri)
        bad = 0
        for name, (status, causes) in wanted.items():
            tags = client.get_run(ids[name]).data.tags
            got = (tags.get("nnaudit.status"), tags.get("nnaudit.causes", ""))
            ok = got[0] == status and all(c in got[1].split(",") for c in causes)
            recorded = "nnaudit.recorder.version" in tags
            print(
                f"{'ok  ' if ok and recorded else 'FAIL'} {name}: status {got[0]}, causes {got[1] or '-'}, "
                f"recorder tag {'present' if recorded else 'missing'}"
            )
            bad += not (ok and recorded)
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
