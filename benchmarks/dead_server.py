"""The recorder's worst-case added latency per training step when the tracking server is dead
or dies mid-training, against the same loop with the recorder off.

    python benchmarks/dead_server.py [--steps 600] [--sleep 0.005]

Each scenario runs a tiny training loop (no `start_run`, `mlflow.autolog()`, as a user writes
it) in its own process, timing every step (forward, backward, optimizer step) with
`perf_counter`, and the process's whole wall time (the recorder's bounded wait at exit included):

- `off`: the recorder switched off (MLFLOW_NNAUDIT_DISABLE=1), against the dead port;
- `dead`: MLFLOW_TRACKING_URI points at a loopback port nothing listens on;
- `live`: a real `mlflow server` over sqlite (tests/services.py), alive throughout;
- `dying`: the same server, SIGKILLed by the training script at the middle step.

It prints, per scenario, the median, p99 and max step time, the worst step's excess over the
`off` scenario's p99, and the process's wall time. `--sleep` adds a fixed pause per step (a
stand-in for a real step's compute) so that the flush cadence matters as it would.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.services import MlflowServer, free_port

SCRIPT = """
import json, os, signal, sys, time
import mlflow, torch
from torch import nn
import mlflow_nnaudit

mlflow.autolog()
mlflow_nnaudit.autolog(flush_every_seconds=1.0)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x, y = torch.randn(64, 32), torch.randint(0, 2, (64,))
kill_at = int(os.environ.get("KILL_AT", "-1"))
times = []
for i in range({steps}):
    if i == kill_at:
        os.killpg(int(os.environ["SERVER_PGID"]), signal.SIGKILL)
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t0)
    time.sleep({sleep})
print(json.dumps(times), flush=True)
"""


def run(uri: str, steps: int, sleep: float, cwd: str, **env) -> tuple[np.ndarray, float]:
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": uri, **{k: str(v) for k, v in env.items()}}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(steps=steps, sleep=sleep)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env=full_env,
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    times = next(line for line in out.stdout.splitlines() if line.startswith("["))  # MLflow prints run URLs too
    return np.asarray(json.loads(times)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--sleep", type=float, default=0.005, help="seconds of pause per step (a step's compute)")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="nnaudit-dead-server-")
    dead = f"http://127.0.0.1:{free_port()}"
    results = {"off": run(dead, args.steps, args.sleep, root, MLFLOW_NNAUDIT_DISABLE=1)}
    base_p99 = float(np.percentile(results["off"][0], 99))
    print(f"{args.steps} steps, {args.sleep * 1e3:.0f} ms pause per step; step times in ms")
    print(f"{'scenario':<8} {'median':>8} {'p99':>8} {'max':>8} {'max-off p99':>12} {'process s':>10}")
    show("off", *results["off"], base_p99)
    results["dead"] = run(dead, args.steps, args.sleep, root)
    show("dead", *results["dead"], base_p99)
    for name in ("live", "dying"):
        server = MlflowServer(f"sqlite:///{os.path.join(root, name + '.db')}", root)
        try:
            extra = {"KILL_AT": args.steps // 2, "SERVER_PGID": os.getpgid(server.proc.pid)} if name == "dying" else {}
            results[name] = run(server.url, args.steps, args.sleep, root, **extra)
        finally:
            server.stop()
        show(name, *results[name], base_p99)


def show(name: str, times: np.ndarray, wall: float, base_p99: float) -> None:
    ms = times * 1e3
    print(
        f"{name:<8} {np.median(ms):8.2f} {np.percentile(ms, 99):8.2f} {ms.max():8.2f} "
        f"{ms.max() - base_p99 * 1e3:12.2f} {wall:10.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
