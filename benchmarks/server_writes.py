"""Writing audit results through a tracking server: one run at a time vs several at once.

    python benchmarks/server_writes.py [--runs 200] [--points 100] [--rounds 2]

Starts a real `mlflow server` over a fresh sqlite store, with artifacts proxied by the server
as a team's server does (`tests/services.py`). It then logs `--runs` finished runs through the
server's REST API, with curves as in audit_scale.py. It times a full writing audit
(`force=True`, so every round writes every run: the tags, `audit.json` and `report.html`) in
two ways, alternating `--rounds` times: writes one at a time, and `runner.WRITE_THREADS` at
once. It prints both times and their ratio. Reading and analysis are the same in both; only
the writes differ; a dry run of the same audit gives the time the writes add. The server's backend is sqlite, whose single writer lock serialises the tag
transactions, so a PostgreSQL-backed server would gain at least as much.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.audit_scale import KEYS, T0, _curves
from tests.services import MlflowServer


def log_runs(url: str, n_runs: int, n_points: int) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    exp_id = client.create_experiment("server-writes")
    rng = np.random.default_rng(0)
    kinds = rng.choice(["healthy", "nan", "overfit", "plateau"], size=n_runs, p=[0.7, 0.1, 0.1, 0.1])
    for i in range(n_runs):
        run = client.create_run(exp_id, run_name=f"run-{i:04d}")
        curves = _curves(rng, kinds[i], n_points)
        metrics = [Metric(k, float(v), T0 + s * 1000, s) for k in KEYS for s, v in enumerate(curves[k])]
        for lo in range(0, len(metrics), 1000):
            client.log_batch(run.info.run_id, metrics=metrics[lo : lo + 1000])
        client.set_terminated(run.info.run_id)
        if i % 50 == 49:
            print(f"  logged {i + 1} runs", file=sys.stderr, flush=True)


def timed_audit(url: str, threads: int, dry_run: bool = False) -> float:
    import mlflow_nnaudit
    from mlflow_nnaudit.auditor import runner

    saved = runner.WRITE_THREADS
    runner.WRITE_THREADS = threads
    try:
        t0 = time.perf_counter()
        results = mlflow_nnaudit.audit(tracking_uri=url, force=True, dry_run=dry_run)
        elapsed = time.perf_counter() - t0
    finally:
        runner.WRITE_THREADS = saved
    assert all(not r.skipped for r in results)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from mlflow_nnaudit.auditor import runner

    with tempfile.TemporaryDirectory() as root:
        server = MlflowServer(f"sqlite:///{root}/mlflow.db", root)
        try:
            log_runs(server.url, args.runs, args.points)
            dry = timed_audit(server.url, 1, dry_run=True)
            times: dict[int, list[float]] = {1: [], runner.WRITE_THREADS: []}
            order = list(times)
            for r in range(args.rounds):
                for threads in order if r % 2 == 0 else order[::-1]:
                    times[threads].append(timed_audit(server.url, threads))
                    print(f"  round {r + 1}: {threads} write thread(s): {times[threads][-1]:.1f} s", file=sys.stderr)
        finally:
            server.stop()
    one, many = (min(times[t]) for t in order)
    print(f"{args.runs} runs audited with writes through a local mlflow server (best of {args.rounds}):")
    print(f"  reading and analysis alone (dry run): {dry:.1f} s")
    print(f"  writes one at a time: {one:.1f} s ({args.runs / one:.1f} runs/s; writing {one - dry:.1f} s)")
    print(f"  {order[1]} writes at once:   {many:.1f} s ({args.runs / many:.1f} runs/s; writing {many - dry:.1f} s)")
    print(f"  ratio of the audits: {one / many:.2f}x; of the writing parts: {(one - dry) / max(many - dry, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
