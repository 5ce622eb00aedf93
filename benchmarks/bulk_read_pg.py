"""The PostgreSQL bulk read alone: rows as binary COPY against rows fetched as text.

    python benchmarks/bulk_read_pg.py [--runs 1000] [--points 500] [--repeats 3] [--keep DIR]

Builds a store of `--runs` runs x 4 metrics x `--points` points in a throw-away PostgreSQL
cluster (tests/services.py; rows written by benchmarks/audit_scale.py's `build_store`, not
timed), then reads every run's 4 histories with `SqlBulkReader.read` in chunks of 200 runs (an
audit's chunk), alternating the paths `--repeats` times each in one process: "fetch+sort"
(before: the SELECT fetched through psycopg2's text protocol, in the planner's own plan, which
sorts), "copy+sort" (`COPY ... TO STDOUT WITH (FORMAT binary)` parsed by numpy, same plan) and
"copy" (now: binary COPY with `bulk._POSTGRES_PLANNER`, rows in index order). For each: wall
time, the client's CPU (this process) and the database server's CPU (the postmaster and its
backends, exited ones included, from /proc), and the medians' ratios to "fetch+sort". Checks that both paths give the same curves bit for bit. The database server runs
on the same cores: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.audit_scale import KEYS, build_store
from mlflow_nnaudit.auditor import bulk

CHUNK = 200


def _proc_cpu(pid: int, children_too: bool = False) -> float:
    """utime + stime (s) of a process, plus its reaped children's when `children_too`."""
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    ticks = int(parts[11]) + int(parts[12]) + ((int(parts[13]) + int(parts[14])) if children_too else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster with its reaped backends, and the
    live ones (its children)."""
    total = _proc_cpu(postmaster, children_too=True)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            if ppid == postmaster:
                total += _proc_cpu(int(d))
        except (OSError, ValueError, IndexError):
            continue
    return total


#: the paths timed: (binary COPY?, the planner settings of the read's transaction)
PATHS = {
    "fetch+sort": (False, ()),  # before: rows as text, the planner's own plan (a sort)
    "copy+sort": (True, ()),
    "copy": (True, bulk._POSTGRES_PLANNER),  # now: binary COPY, rows in index order
}


def read_all(uri: str, run_ids: list[str], path: str) -> tuple[dict, bulk.SqlBulkReader]:
    copy, planner = PATHS[path]
    bulk._POSTGRES_PLANNER = planner
    reader = bulk.SqlBulkReader(uri)
    if not copy:
        reader._copy_cursor = lambda conn: None
    out = {}
    try:
        for lo in range(0, len(run_ids), CHUNK):
            out.update(reader.read({rid: KEYS for rid in run_ids[lo : lo + CHUNK]}))
    finally:
        reader.close()
    return out, reader


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import sqlalchemy as sa

    from tests.services import Postgres

    pg = Postgres()
    try:
        with open(os.path.join(pg.data, "postmaster.pid")) as fh:
            postmaster = int(fh.readline())
        uri = pg.create_database("bulkread")
        t = time.perf_counter()
        build_store(uri, args.runs, args.points, artifact_root=os.path.join(pg.root, "artifacts"))
        print(f"built {args.runs} runs x 4 x {args.points} points in {time.perf_counter() - t:.0f} s", flush=True)
        engine = sa.create_engine(uri)
        with engine.connect() as conn:
            run_ids = [r[0] for r in conn.exec_driver_sql("SELECT run_uuid FROM runs ORDER BY start_time DESC")]
        engine.dispose()
        for name in PATHS:  # warm the server's cache and the imports
            read_all(uri, run_ids[:CHUNK], name)
        times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in PATHS}
        answers = {}
        for _ in range(args.repeats):
            for name in PATHS:
                time.sleep(0.5)
                s0, c0, w0 = server_cpu(postmaster), time.process_time(), time.perf_counter()
                got, reader = read_all(uri, run_ids, name)
                w1, c1 = time.perf_counter(), time.process_time()
                time.sleep(0.5)  # the backend has exited and been reaped
                s1 = server_cpu(postmaster)
                assert (reader.copy_queries > 0) == PATHS[name][0] != (reader.fetch_queries > 0)
                times[name].append((w1 - w0, c1 - c0, s1 - s0))
                answers[name] = got
                print(f"  {name:10s} wall {w1 - w0:6.2f} s  client CPU {c1 - c0:6.2f} s  server CPU {s1 - s0:6.2f} s")
                del got
        a = answers["copy"]
        for b in answers.values():
            assert list(a) == list(b) and len(a) == 4 * len(run_ids)
            for k in a:
                for field in ("steps", "values", "timestamps"):
                    x, y = getattr(a[k], field), getattr(b[k], field)
                    assert x.dtype == y.dtype and np.array_equal(x.view(np.uint64), y.view(np.uint64)), (k, field)
        points = sum(len(c) for c in a.values())
        print(f"same curves bit for bit ({len(a)} curves, {points} points)")
        med = {n: [statistics.median(t[i] for t in times[n]) for i in range(3)] for n in times}
        for i, what in enumerate(("wall", "client CPU", "server CPU")):
            base = med["fetch+sort"][i]
            print(
                f"{what:11s} median: "
                + ", ".join(f"{n} {m[i]:6.2f} s ({base / max(m[i], 1e-9):4.1f}x)" for n, m in med.items())
            )
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
