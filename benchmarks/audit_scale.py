"""Auditing a big store: the full audit (bulk SQL reading) vs the naive per-run client loop.

    python benchmarks/audit_scale.py [--runs 10000] [--points 500] [--sample 200] [--db PATH]

1. Builds a sqlite MLflow store of `--runs` FINISHED runs, each with 4 metrics
   (`train_loss`, `val_loss`, `lr`, `grad_norm`) of `--points` points. The schema is made by
   MLflow itself (`MlflowClient` on a fresh sqlite URI runs MLflow's own migrations); the
   rows go in through MLflow's own SQLAlchemy store models (`SqlRun`, `SqlTag`, `SqlMetric`,
   `SqlLatestMetric` from `mlflow.store.tracking.dbmodels.models`) as bulk INSERTs in one
   session of `SqlAlchemyStore.ManagedSessionMaker`, with the same column values that
   `create_run` / `log_batch` / `set_terminated` write (NaN as value 0 with is_nan=1, the
   latest-metric row per key). `log_batch` took ~0.26 s per run here, i.e. ~45 min for 10,000
   runs; the bulk INSERTs take a few minutes. Building is NOT part of any figure (it runs in a
   child process, so its memory is not in the peak either). With
   `--db PATH` an existing store of the right size is reused.
   Curves are a mix: healthy decays (70%), NaN blow-ups (10%), overfitting (10%) and
   plateaus (10%), so that the rules walk their real paths.
2. Times, in this process:
   (a) a full `mlflow_nnaudit.audit(tracking_uri=..., dry_run=True)` over every run
       (listing runs, bulk reading, statistics, rules; nothing written);
   (b) the naive loop: `MlflowClient.get_metric_history` for each metric of each run, over
       a random sample of `--sample` runs, extrapolated linearly to all runs (reading only).
       Its cost per run grows with the store: on sqlite, MLflow's query (filter on run and
       key, ORDER BY timestamp, step, value) is planned on the primary-key index, which starts
       with `key`, so each call scans that key's points in every run (~0.13 s a run at 500
       runs, ~1.8 s a run at 10,000 runs here);
   (c) for reference, bulk reading alone (`Store.prefetch` over every run, chunk by chunk);
   (d) on a separate store of `--incremental-runs` runs: an audit that writes (tags and the
       two artifacts per run), then a second audit of the unchanged store, which skips every
       run;
   and prints the times, the ratio naive / full audit, runs per second and the process's
   peak memory (`resource.getrusage(RUSAGE_SELF).ru_maxrss` of the measuring process).
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
        val = floor + 0.05 + 2.0 * np.exp(-t / tau) + np.maximum(0, t - n / 3) * (1.0 / n) + 0.02 * rng.standard_normal(n)
    elif kind == "plateau":
        train = 2.3 + 0.01 * rng.standard_normal(n)
        val = 2.3 + 0.01 * rng.standard_normal(n)
    return {"train_loss": train, "val_loss": val, "lr": lr, "grad_norm": gn}


def build_store(path: str, n_runs: int, n_points: int, seed: int = 0) -> str:
    """A sqlite store of `n_runs` finished runs; returns its URI."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient
    from sqlalchemy import insert, text

    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri)  # creates the schema through MLflow's migrations
    exp_id = client.create_experiment("scale", artifact_location=os.path.join(os.path.dirname(path), "artifacts"))
    store = SqlAlchemyStore(uri, os.path.join(os.path.dirname(path), "artifacts"))
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["healthy", "nan", "overfit", "plateau"], size=n_runs, p=[0.7, 0.1, 0.1, 0.1])
    steps = np.arange(n_points)
    stamps = T0 + steps * 1000
    batch = 100
    for lo in range(0, n_runs, batch):
        runs, tags, metrics, latest = [], [], [], []
        for i in range(lo, min(n_runs, lo + batch)):
            run_id = uuid.uuid4().hex
            start = T0 + i * 10_000_000
            name = f"run-{i:06d}"
            runs.append(dict(
                run_uuid=run_id, name=name, source_type="UNKNOWN", source_name="", entry_point_name="",
                user_id="bench", status="FINISHED", start_time=start, end_time=start + n_points * 1000 + 1,
                deleted_time=None, source_version="", lifecycle_stage="active",
                artifact_uri=f"{os.path.dirname(path)}/artifacts/{run_id}/artifacts", experiment_id=int(exp_id),
            ))
            tags.append(dict(key="mlflow.runName", value=name, run_uuid=run_id))
            tags.append(dict(key="mlflow.user", value="bench", run_uuid=run_id))
            for key, values in _curves(rng, kinds[i], n_points).items():
                ts = (stamps + start - T0).tolist()
                is_nan = np.isnan(values)
                vals = np.where(is_nan, 0.0, values).tolist()
                nan_list = is_nan.tolist()
                metrics.extend(
                    dict(key=key, value=v, timestamp=s_, step=st, is_nan=nn, run_uuid=run_id)
                    for v, s_, st, nn in zip(vals, ts, steps.tolist(), nan_list)
                )
                latest.append(dict(key=key, value=vals[-1], timestamp=ts[-1], step=n_points - 1,
                                   is_nan=nan_list[-1], run_uuid=run_id))
        with store.ManagedSessionMaker(read_only=False) as session:
            # building speed only (a crash mid-build just means building again)
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


def _count_runs(path: str) -> int:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return -1
    finally:
        con.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--sample", type=int, default=200, help="runs read by the naive loop (extrapolated)")
    ap.add_argument("--db", help="sqlite file to build, or to reuse when it already holds --runs runs")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="analysis processes for the full audit (default: the machine's cores)")
    ap.add_argument("--incremental-runs", type=int, default=1000,
                    help="runs of the separate store on which a writing audit and a second audit are timed (0: skip)")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.build_only:  # the child process that builds, so that its memory is not in the figure
        build_store(args.db, args.runs, args.points)
        return
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

    tmp = None
    if args.db:
        path = os.path.abspath(args.db)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="nnaudit-scale-")
        path = os.path.join(tmp.name, "mlflow.db")
    if os.path.exists(path) and _count_runs(path) == args.runs:
        uri = f"sqlite:///{path}"
        print(f"reusing {uri} ({args.runs} runs)")
    else:
        if os.path.exists(path):
            sys.exit(f"{path} exists and does not hold {args.runs} runs: remove it or pick another --db")
        t = time.perf_counter()
        subprocess.run([sys.executable, os.path.abspath(__file__), "--build-only", "--db", path,
                        "--runs", str(args.runs), "--points", str(args.points)], check=True)
        uri = f"sqlite:///{path}"
        print(f"built {uri}: {args.runs} runs x {len(KEYS)} metrics x {args.points} points "
              f"in {time.perf_counter() - t:.0f} s (not measured below)")

    import mlflow_nnaudit
    from mlflow.tracking import MlflowClient
    from mlflow_nnaudit.auditor.store import Store

    # (a) the full audit
    t = time.perf_counter()
    results = mlflow_nnaudit.audit(tracking_uri=uri, dry_run=True, workers=args.workers)
    t_audit = time.perf_counter() - t
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    n = len(results)

    # (c) bulk reading alone, chunk by chunk as audit() does
    store = Store(uri)
    runs = list(store.iter_runs(store.experiments()))
    t = time.perf_counter()
    points = 0
    for lo in range(0, len(runs), 200):
        chunk = runs[lo : lo + 200]
        store.prefetch(chunk, {r.run_id: list(r.metric_keys) for r in chunk})
        for r in chunk:
            points += sum(len(c) for c in store.load_curves(r, r.metric_keys).values())
    t_bulk = time.perf_counter() - t
    bulk_used = store.bulk_enabled
    store.close()

    # (b) the naive loop over a sample, extrapolated
    client = MlflowClient(tracking_uri=uri)
    sample = random.Random(1).sample(runs, min(args.sample, len(runs)))
    t = time.perf_counter()
    for r in sample:
        for key in r.metric_keys:
            client.get_metric_history(r.run_id, key)
    t_sample = time.perf_counter() - t
    t_naive = t_sample / len(sample) * len(runs)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    # (d) incremental: on a separate, smaller store, an audit that writes its tags and
    # artifacts, then a second audit of the unchanged store (which must skip every run)
    incremental = None
    if args.incremental_runs:
        with tempfile.TemporaryDirectory(prefix="nnaudit-incr-") as itmp:
            ipath = os.path.join(itmp, "mlflow.db")
            subprocess.run([sys.executable, os.path.abspath(__file__), "--build-only", "--db", ipath,
                            "--runs", str(args.incremental_runs), "--points", str(args.points)], check=True)
            iuri = f"sqlite:///{ipath}"
            t = time.perf_counter()
            first = mlflow_nnaudit.audit(tracking_uri=iuri, workers=args.workers)
            t_first = time.perf_counter() - t
            t = time.perf_counter()
            second = mlflow_nnaudit.audit(tracking_uri=iuri, workers=args.workers)
            t_second = time.perf_counter() - t
            skipped = sum(r.skipped for r in second)
            incremental = (len(first), t_first, t_second, skipped, len(second))
    print(f"store: {len(runs)} runs x {len(KEYS)} metrics x {args.points} points ({points:,} points read)")
    print(f"(a) full audit, dry run:   {t_audit:8.1f} s  {n / t_audit:8.0f} runs/s  statuses {statuses} "
          f"({args.workers} worker{'s' if args.workers > 1 else ''} on {os.cpu_count()} cores)")
    print(f"(b) naive client loop:     {t_naive:8.1f} s  {len(runs) / t_naive:8.0f} runs/s  "
          f"(reading only; {len(sample)} random runs timed, {t_sample:.1f} s, extrapolated to {len(runs)})")
    print(f"(c) bulk reading alone:    {t_bulk:8.1f} s  {len(runs) / t_bulk:8.0f} runs/s  (bulk SQL used: {bulk_used})")
    print(f"naive loop / full audit:   {t_naive / t_audit:8.1f} x")
    print(f"naive loop / bulk reading: {t_naive / t_bulk:8.1f} x")
    print(f"peak memory (ru_maxrss):   {peak_mb:8.0f} MB  (main process, before (d))")
    if incremental:
        n_i, t_first, t_second, skipped, n_second = incremental
        print(f"(d) {n_i:,} runs, audit writing tags + artifacts: {t_first:6.1f} s ({n_i / t_first:.0f} runs/s); "
              f"second audit of the unchanged store: {t_second:5.1f} s, {skipped}/{n_second} skipped "
              f"({t_second / t_first:.1%} of the first)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
