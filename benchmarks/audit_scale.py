"""Auditing a big store as users run it: `nnaudit audit` with its writes and default options,
on sqlite, on PostgreSQL and through a tracking server, against the naive client loop.

    python benchmarks/audit_scale.py [--runs 10000] [--points 500] [--new-runs 500]
        [--server-runs 2000] [--server-latency-ms 20] [--sample 100] [--only sqlite,postgres,server] [--keep DIR]

Stores: `--runs` FINISHED runs, each with 4 metrics (`train_loss`, `val_loss`, `lr`,
`grad_norm`) of `--points` points; curves a mix of healthy decays (70%), NaN blow-ups (10%),
overfitting (10%) and plateaus (10%), so that rules walk their real paths. The schema is made
by MLflow itself (its migrations); rows go in through MLflow's own SQLAlchemy models
(`SqlRun`, `SqlTag`, `SqlMetric`, `SqlLatestMetric`) as bulk INSERTs with the column values
`create_run` / `log_batch` / `set_terminated` write (`log_batch` would take ~45 min for 10,000
runs). Building is never part of a figure (a child process). PostgreSQL and the server come
from tests/services.py (a throw-away cluster, a real `mlflow server` with proxied artifacts).

Measured, each a separate `nnaudit audit` process started as a user starts it (so wall time
includes Python's start and MLflow's import; CPU is user+system of the process and its
workers; peak memory is the largest sum of RSS over the process tree, sampled every 50 ms):

  (a) the real command, writing every tag and both artifacts of every run, default options;
  (b) the same with `--dry-run --force` (reading and analysis only);
  (c) a second audit of the unchanged store (every run skipped);
  (d) a night's increment: `--new-runs` new runs added to the store, audited;
  (e) the naive client loop a user would write: per run, `get_metric_history` per metric,
      one `log_batch` of the tags and one `log_artifact` of audit.json, timed on `--sample`
      random runs and extrapolated to the store (its per-run cost grows with the store);
  (f) through a local `mlflow server` over PostgreSQL, `--server-runs` runs: (a) and (e);
  (f') the same server as a remote one is met, `--server-latency-ms` away (a forwarding proxy,
      tests/services.py's SlowProxy, holds every request that long; 0 skips it): (a) with
      `--force` (the runs were audited by (f)) and (e). On loopback both loops wait on the same
      server CPU (its history endpoint serialises each point); across a network the naive loop
      also waits a round trip per call.

Targets (issue 13): (a) <= 60 s for 10,000 x 4 x 500 on 2 cores, <= 1 GB; (c) <= 5% of (a);
(d) <= 10 s; (f) >= 20x faster than the naive loop through the same server.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

KEYS = ("train_loss", "val_loss", "lr", "grad_norm")
T0 = 1_700_000_000_000
RUN_SPACING_MS = 1_000_000  # longer than a run (500 points, 1 s apart)


def _curves(rng: np.random.Generator, kind: str, n: int) -> dict[str, np.ndarray]:
    t = np.arange(n, dtype=float)
    tau = n / rng.uniform(4, 12)
    floor = rng.uniform(0.05, 0.4)
    train = floor + 2.0 * np.exp(-t / tau) + 0.03 * rng.standard_normal(n)
    val = floor + 0.05 + 2.0 * np.exp(-t / tau) + 0.04 * rng.standard_normal(n)
    lr = np.full(n, 10 ** rng.uniform(-4, -2))
    gn = np.abs(1.0 + 0.2 * rng.standard_normal(n))
    if kind == "nan":
        at = int(rng.uniform(0.3, 0.9) * n)
        train[at:] = np.nan
        val[at:] = np.nan
        gn[at - 5 : at] *= 1e3
    elif kind == "overfit":
        val = (
            floor + 0.05 + 2.0 * np.exp(-t / tau) + np.maximum(0, t - n / 3) * (1.0 / n) + 0.02 * rng.standard_normal(n)
        )
    elif kind == "plateau":
        train = 2.3 + 0.01 * rng.standard_normal(n)
        val = 2.3 + 0.01 * rng.standard_normal(n)
    return {"train_loss": train, "val_loss": val, "lr": lr, "grad_norm": gn}


def build_store(
    path_or_uri: str, n_runs: int, n_points: int, seed: int = 0, offset: int = 0, artifact_root: str | None = None
) -> str:
    """A store of `n_runs` finished runs in experiment `scale` (made when missing; with `offset`,
    runs numbered from there, started after the ones before); returns its URI. `path_or_uri`:
    a sqlite file path or a database URI. `artifact_root`: the experiment's artifact location
    (default: `artifacts/` next to a sqlite file), e.g. `mlflow-artifacts:/` behind a server."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient
    from sqlalchemy import insert, text

    uri = path_or_uri if "://" in path_or_uri else f"sqlite:///{path_or_uri}"
    sqlite = uri.startswith("sqlite")
    root = artifact_root or os.path.join(os.path.dirname(uri.split(":///", 1)[1]), "artifacts")
    client = MlflowClient(tracking_uri=uri)  # creates the schema through MLflow's migrations
    exp = client.get_experiment_by_name("scale")
    exp_id = exp.experiment_id if exp else client.create_experiment("scale", artifact_location=root)
    store = SqlAlchemyStore(uri, root)
    rng = np.random.default_rng(seed + offset)
    kinds = rng.choice(["healthy", "nan", "overfit", "plateau"], size=n_runs, p=[0.7, 0.1, 0.1, 0.1])
    steps = np.arange(n_points)
    stamps = T0 + steps * 1000
    batch = 100
    for lo in range(0, n_runs, batch):
        runs, tags, metrics, latest = [], [], [], []
        for j in range(lo, min(n_runs, lo + batch)):
            i = offset + j
            run_id = uuid.uuid4().hex
            # one run every 1,000 s from T0 (Nov 2023): 10,500 runs end in early 2024, never in the
            # future (a run whose data is newer than its audit is rightly audited again, which
            # would make (c) and (d) measure more than the unchanged store and the night's runs)
            start = T0 + i * RUN_SPACING_MS
            name = f"run-{i:06d}"
            runs.append(
                dict(
                    run_uuid=run_id,
                    name=name,
                    source_type="UNKNOWN",
                    source_name="",
                    entry_point_name="",
                    user_id="bench",
                    status="FINISHED",
                    start_time=start,
                    end_time=start + n_points * 1000 + 1,
                    deleted_time=None,
                    source_version="",
                    lifecycle_stage="active",
                    artifact_uri=f"{root.rstrip('/')}/{exp_id}/{run_id}/artifacts"
                    if root.startswith("mlflow-artifacts:")
                    else f"{root}/{run_id}/artifacts",
                    experiment_id=int(exp_id),
                )
            )
            tags.append(dict(key="mlflow.runName", value=name, run_uuid=run_id))
            tags.append(dict(key="mlflow.user", value="bench", run_uuid=run_id))
            for key, values in _curves(rng, kinds[j], n_points).items():
                ts = (stamps + start - T0).tolist()
                is_nan = np.isnan(values)
                vals = np.where(is_nan, 0.0, values).tolist()
                nan_list = is_nan.tolist()
                metrics.extend(
                    dict(key=key, value=v, timestamp=s_, step=st, is_nan=nn, run_uuid=run_id)
                    for v, s_, st, nn in zip(vals, ts, steps.tolist(), nan_list)
                )
                latest.append(
                    dict(
                        key=key,
                        value=vals[-1],
                        timestamp=ts[-1],
                        step=n_points - 1,
                        is_nan=nan_list[-1],
                        run_uuid=run_id,
                    )
                )
        with store.ManagedSessionMaker(read_only=False) as session:
            if sqlite:  # building speed only (a crash mid-build just means building again)
                session.execute(text("PRAGMA synchronous=OFF"))
                session.execute(text("PRAGMA cache_size=-500000"))
            session.execute(insert(SqlRun), runs)
            session.execute(insert(SqlTag), tags)
            session.execute(insert(SqlMetric), metrics)
            session.execute(insert(SqlLatestMetric), latest)
        if (lo // batch) % 10 == 9:
            print(f"  built {lo + batch} runs", file=sys.stderr, flush=True)
    store.engine.dispose()
    return uri


def _build(uri: str, runs: int, points: int, offset: int = 0, artifact_root: str | None = None) -> None:
    """build_store in a child process (its time and memory are in no figure)."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--build-only",
        uri,
        "--runs",
        str(runs),
        "--points",
        str(points),
        "--offset",
        str(offset),
    ] + (["--artifact-root", artifact_root] if artifact_root else [])
    subprocess.run(cmd, check=True)


def _tree_rss(pid: int) -> int:
    """RSS (bytes) of a process and all its descendants, from /proc."""
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            kids.setdefault(int(parts[1]), []).append(int(d))
            rss[int(d)] = int(parts[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += kids.get(p, [])
    return total


def timed_cli(uri: str, *args: str) -> dict:
    """`nnaudit audit --tracking-uri URI ARGS` as a user runs it: wall, CPU (process and its
    workers), peak RSS of the process tree, and its JSON output's summary."""
    import threading

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow_nnaudit.cli", "audit", "--tracking-uri", uri, "--format", "json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _tree_rss(proc.pid))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    done.set()
    th.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"nnaudit audit {' '.join(args)} exited {proc.returncode}: {err.decode()[-2000:]}")
    import json

    summary = json.loads(out)["summary"]
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_mb": peak[0] / 2**20,
        "summary": summary,
    }


def naive_loop(uri: str, sample: int) -> dict:
    """What a user's own loop costs per run: each metric's history, one tag batch, one artifact
    (timed on `sample` random runs, extrapolated to all); split into its three parts."""
    import json

    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("scale")
    runs, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        runs += [(r.info.run_id, list(r.data.metrics)) for r in page]
        token = page.token
        if not token:
            break
    picked = random.Random(1).sample(runs, min(sample, len(runs)))
    parts = {"read": 0.0, "tags": 0.0, "artifact": 0.0}
    t0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        for run_id, keys in picked:
            t = time.perf_counter()
            for key in keys:
                client.get_metric_history(run_id, key)
            t2 = time.perf_counter()
            client.log_batch(
                run_id, tags=[RunTag("naive.status", "healthy"), RunTag("naive.causes", "")], synchronous=True
            )
            t3 = time.perf_counter()
            path = os.path.join(tmp, "audit.json")
            with open(path, "w") as fh:
                json.dump({"run_id": run_id}, fh)
            client.log_artifact(run_id, path, "naive")
            t4 = time.perf_counter()
            parts["read"] += t2 - t
            parts["tags"] += t3 - t2
            parts["artifact"] += t4 - t3
    n = len(picked)
    per_run = {k: v / n for k, v in parts.items()}
    return {
        "wall": sum(per_run.values()) * len(runs),
        "cpu": (time.process_time() - t0) / n * len(runs),
        "per_run_ms": {k: 1000 * v for k, v in per_run.items()},
        "sampled": n,
        "runs": len(runs),
    }


def scenario(name: str, uri: str, args, add_runs) -> list[tuple]:
    """(b), (a), (c), (d), (e) on one store; returns table rows."""
    rows = []
    b = timed_cli(uri, "--dry-run", "--force")
    a = timed_cli(uri)
    c = timed_cli(uri)
    add_runs()
    d = timed_cli(uri)
    e = naive_loop(uri, args.sample)
    n = a["summary"]["runs"]
    rows.append((name, "(a) audit, writes, defaults", n, a, None))
    rows.append((name, "(b) dry run", n, b, None))
    rows.append((name, "(c) second audit, unchanged", n, c, f"{c['wall'] / a['wall']:.1%} of (a)"))
    rows.append(
        (
            name,
            f"(d) +{args.new_runs} new runs",
            d["summary"]["audited"],
            d,
            f"{d['summary']['audited']} audited, {d['summary']['skipped_unchanged']} skipped",
        )
    )
    rows.append(
        (
            name,
            "(e) naive client loop",
            e["runs"],
            e,
            f"{e['wall'] / a['wall']:.0f}x (a); per run ms: "
            + ", ".join(f"{k} {v:.0f}" for k, v in e["per_run_ms"].items())
            + f" ({e['sampled']} sampled)",
        )
    )
    return rows


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def server_rows(label: str, url: str, sample: int, *extra: str) -> list[tuple]:
    """(a) and (e) through a tracking server, and their ratio."""
    a = timed_cli(url, *extra)
    e = naive_loop(url, sample)
    return [
        ("server/pg", f"{label} audit, writes, defaults", a["summary"]["runs"], a, None),
        (
            "server/pg",
            f"{label} naive client loop",
            e["runs"],
            e,
            f"{e['wall'] / a['wall']:.1f}x {label.split()[0]}; per run ms: "
            + ", ".join(f"{k} {v:.0f}" for k, v in e["per_run_ms"].items())
            + f" ({e['sampled']} sampled)",
        ),
    ]


def _print_rows(rows: list[tuple], args) -> None:
    print(
        f"\n{args.runs:,} runs x {len(KEYS)} metrics x {args.points} points ({args.server_runs:,} through the "
        f"server); {os.cpu_count()} cores; nnaudit audit with default options (--workers {os.cpu_count()})"
    )
    print(
        f"{'store':10s} {'measure':32s} {'runs':>7s} {'wall s':>8s} {'CPU s':>8s} {'peak MB':>8s} {'runs/s':>8s}  note"
    )
    for store, what, n, m, note in rows:
        peak = f"{m['peak_mb']:8.0f}" if "peak_mb" in m else f"{'-':>8s}"
        print(
            f"{store:10s} {what:32s} {n:7d} {m['wall']:8.1f} {m['cpu']:8.1f} {peak} {n / m['wall']:8.0f}  {note or ''}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--new-runs", type=int, default=500)
    ap.add_argument("--server-runs", type=int, default=2000)
    ap.add_argument("--server-latency-ms", type=float, default=20.0, help="(f'): a remote server's delay; 0 skips")
    ap.add_argument("--sample", type=int, default=100, help="runs timed in the naive loop (extrapolated)")
    ap.add_argument("--only", default="sqlite,postgres,server")
    ap.add_argument("--keep", help="build the stores in this folder and leave them there")
    ap.add_argument("--build-only", metavar="URI", help=argparse.SUPPRESS)
    ap.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--artifact-root", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build_only:  # the child process that builds, so that its memory is not in the figures
        build_store(args.build_only, args.runs, args.points, offset=args.offset, artifact_root=args.artifact_root)
        return
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    sys.path.insert(0, REPO)
    only = set(args.only.split(","))
    tmp = args.keep or tempfile.mkdtemp(prefix="nnaudit-scale-")
    os.makedirs(tmp, exist_ok=True)
    rows: list[tuple] = []
    pg = None
    try:
        if "sqlite" in only:
            db = os.path.join(tmp, "sqlite", "mlflow.db")
            os.makedirs(os.path.dirname(db), exist_ok=True)
            t = time.perf_counter()
            _build(db, args.runs, args.points)
            print(f"built sqlite store in {time.perf_counter() - t:.0f} s (not measured)", flush=True)
            uri = f"sqlite:///{db}"
            rows += scenario("sqlite", uri, args, lambda: _build(db, args.new_runs, args.points, offset=args.runs))
        if only & {"postgres", "server"}:
            from tests.services import MlflowServer, Postgres

            pg = Postgres()
        if "postgres" in only:
            uri = pg.create_database("scale")
            root = os.path.join(tmp, "pg-artifacts")
            _build(uri, args.runs, args.points, artifact_root=root)
            rows += scenario(
                "postgres",
                uri,
                args,
                lambda: _build(uri, args.new_runs, args.points, offset=args.runs, artifact_root=root),
            )
        if "server" in only:
            uri = pg.create_database("served")
            _build(uri, args.server_runs, args.points, artifact_root="mlflow-artifacts:/")
            os.makedirs(os.path.join(tmp, "server"), exist_ok=True)
            server = MlflowServer(uri, os.path.join(tmp, "server"))
            try:
                rows += server_rows("(f)", server.url, args.sample)
                if args.server_latency_ms > 0:
                    from tests.services import SlowProxy

                    proxy = SlowProxy(server.url, {"": args.server_latency_ms / 1000})  # "" is in every path
                    try:
                        rows += server_rows(
                            f"(f') {args.server_latency_ms:g} ms away", proxy.url, args.sample, "--force"
                        )
                    finally:
                        proxy.stop()
            finally:
                server.stop()
    finally:  # the figures measured so far are printed even when a later part fails
        _print_rows(rows, args)
        if pg is not None:
            pg.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
