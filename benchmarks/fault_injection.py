"""Interrupting audits at random points: every run's tags must stay consistent, and re-running
the audit must end in the same state as an audit that was never interrupted.

    python benchmarks/fault_injection.py [--interrupts 24] [--runs 600] [--points 200] [--server]
        [--while-writing] [--max-delay S]

Builds a sqlite store (benchmarks/audit_scale.py's builder) in which every run already carries
the tags of an *earlier, different* audit (status `failed`, two stale `nnaudit.cause.*` tags), so
that every write has something to replace and something to remove. Then, `--interrupts` times:
starts `nnaudit audit` as a user does (a subprocess, default options), waits a random time,
sends SIGINT or SIGKILL (alternating), and checks every run's tags (each interrupt starts from
the earlier audit's tags again, so that every one lands in an audit with all runs to write):

* consistent: either the earlier audit's tags untouched, or a complete new audit (status,
  causes, time and version present, one `nnaudit.cause.<id>` tag per cause or advisory listed and
  no other);
* finally, after the last interrupted audit is resumed (one more audit), the tags of every run equal (except the audit
  time) those of an uninterrupted audit of a fresh copy of the same store.

With `--server`, the same through a real `mlflow server` (tests/services.py) over the same kind
of store. Prints the counts of interrupts and of inconsistent runs (the target: 0).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

EARLIER = {
    "nnaudit.status": "failed",
    "nnaudit.causes": "stale_a,stale_b",
    "nnaudit.cause.stale_a": "high",
    "nnaudit.cause.stale_b": "low",
    "nnaudit.recommendation": "old",
    "nnaudit.audited_at": "2020-01-01T00:00:00.000Z",
    "nnaudit.version": "0.0.1",
}
OWN = ("nnaudit.status", "nnaudit.causes", "nnaudit.recommendation", "nnaudit.audited_at", "nnaudit.version")


def audit_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k in OWN or k.startswith("nnaudit.cause.")}


def consistent(tags: dict[str, str]) -> bool:
    """The earlier audit's tags untouched, or one complete audit (see the module's docstring)."""
    mine = audit_tags(tags)
    if mine == EARLIER:
        return True
    if not all(k in mine for k in OWN):
        return False
    # a healthy run's advisories are tagged `nnaudit.cause.<id>` too (filtering by cause finds them)
    listed = {c for key in ("nnaudit.causes", "nnaudit.advisories") for c in tags.get(key, "").split(",") if c}
    # an emptied cause tag (writer.WITHDRAWN) has no confidence: no cause filter matches it
    tagged = {k[len("nnaudit.cause.") :] for k, v in mine.items() if k.startswith("nnaudit.cause.") and v}
    return listed == tagged and mine["nnaudit.version"] != EARLIER["nnaudit.version"]


def withdrawn_left(tags: dict[str, str]) -> bool:
    """A complete new audit that still carries an emptied cause tag it no longer lists: the
    state the client path (through a server: one batch that writes the audit and empties the
    stale cause tags, then their removal) leaves when the process is killed between its two
    requests. Consistent for every filter; the next audit removes the tag
    (runner.is_up_to_date sees the mismatch)."""
    mine = audit_tags(tags)
    return consistent(tags) and any(k.startswith("nnaudit.cause.") and not v for k, v in mine.items())


def read_tags(db: str) -> dict[str, dict[str, str]]:
    """Every run's tags, straight from the store (read-only)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    try:
        out: dict[str, dict[str, str]] = {r[0]: {} for r in con.execute("SELECT run_uuid FROM runs")}
        for run, key, value in con.execute("SELECT run_uuid, key, value FROM tags"):
            out[run][key] = value
        return out
    finally:
        con.close()


def by_name(tags: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {
        t.get("mlflow.runName", rid): {k: v for k, v in audit_tags(t).items() if k != "nnaudit.audited_at"}
        for rid, t in tags.items()
    }


def build(path: str, runs: int, points: int) -> None:
    """A store whose runs all carry an earlier audit's tags (see EARLIER)."""
    from benchmarks.audit_scale import build_store

    build_store(path, runs, points)
    reset(path)


def reset(path: str) -> None:
    """Every run back to the earlier audit's tags (in one transaction; a server over the same
    file sees it as any other write)."""
    con = sqlite3.connect(path, timeout=60)
    with con:
        ids = [r[0] for r in con.execute("SELECT run_uuid FROM runs")]
        con.execute(
            f"DELETE FROM tags WHERE key IN ({','.join('?' * len(OWN))}) OR substr(key, 1, 14) = 'nnaudit.cause.'",
            OWN,
        )
        con.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
            [(k, v, rid) for rid in ids for k, v in EARLIER.items()],
        )
    con.close()


def copy_store(src_dir: str, dst_dir: str) -> str:
    """A copy of a store (database and artifacts) whose runs point at the copy's artifacts."""
    shutil.copytree(src_dir, dst_dir)
    db = os.path.join(dst_dir, "mlflow.db")
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (src_dir, dst_dir))
        con.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)", (src_dir, dst_dir))
    con.close()
    return db


def audit_cmd(uri: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mlflow_nnaudit.cli", "audit", "--tracking-uri", uri, "--format", "json", *extra]


def _written_so_far(db: str) -> int:
    try:
        return sum(audit_tags(t) != EARLIER for t in read_tags(db).values())
    except sqlite3.Error:  # locked for longer than the timeout: nothing to say yet
        return 0


def run_trial(
    uri: str, db: str, delay: float, sig: int, env: dict, after_first_write: bool = False
) -> tuple[int, int, int]:
    """One interrupted audit; returns (runs inconsistent, runs newly audited, runs total).
    With `after_first_write`, `delay` counts from the moment the first run's tags changed (so
    that the interrupt lands while the audit is writing)."""
    proc = subprocess.Popen(
        audit_cmd(uri), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    if after_first_write:
        while proc.poll() is None and _written_so_far(db) == 0:
            time.sleep(0.1)
    time.sleep(delay)
    if proc.poll() is None:
        os.killpg(proc.pid, sig)  # the audit and its workers, as a terminal's Ctrl-C or the OOM killer would
        if sig == signal.SIGINT:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    tags = read_tags(db)
    bad = sum(not consistent(t) for t in tags.values())
    extra = sum(withdrawn_left(t) for t in tags.values())
    if extra:
        print(
            f"   ({extra} consistent runs still carry an emptied stale cause tag, removed by the next audit)",
            flush=True,
        )
    new = sum(audit_tags(t) != EARLIER for t in tags.values())
    return bad, new, len(tags)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interrupts", type=int, default=24)
    ap.add_argument("--runs", type=int, default=600)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--max-delay", type=float, default=0.0, help="latest interrupt, s (default: a full audit's time)")
    ap.add_argument("--server", action="store_true", help="also through a real mlflow server over sqlite")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--while-writing",
        action="store_true",
        help="half the interrupts a random 0-2 s after the audit's first tag write",
    )
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    env = dict(
        os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"
    )
    total_bad = 0
    with tempfile.TemporaryDirectory(prefix="nnaudit-faults-") as tmp:
        base = os.path.join(tmp, "base")
        os.makedirs(base)
        build(os.path.join(base, "mlflow.db"), args.runs, args.points)
        ref_db = copy_store(base, os.path.join(tmp, "reference"))
        t = time.perf_counter()
        subprocess.run(audit_cmd(f"sqlite:///{ref_db}"), env=env, check=True, stdout=subprocess.DEVNULL)
        full = time.perf_counter() - t
        reference = by_name(read_tags(ref_db))
        max_delay = args.max_delay or full
        kinds = [("sqlite", None)] + ([("server", "server")] if args.server else [])
        for kind, _ in kinds:
            db = copy_store(base, os.path.join(tmp, f"trial-{kind}"))
            server = None
            uri = f"sqlite:///{db}"
            if kind == "server":
                from tests.services import MlflowServer

                server = MlflowServer(uri, os.path.join(tmp, f"trial-{kind}"))
                uri = server.url
            try:
                n = args.interrupts // len(kinds) if len(kinds) > 1 else args.interrupts
                bad_here = 0
                for i in range(n):
                    reset(db)  # each interrupt lands in an audit with every run to write
                    sig = signal.SIGINT if i % 2 == 0 else signal.SIGKILL
                    # half the interrupts anywhere in the audit, half while it writes
                    writing = args.while_writing and i % 4 >= 2
                    delay = rng.uniform(0.0, 2.0) if writing else rng.uniform(0.05, 1.0) * max_delay
                    bad, new, total = run_trial(uri, db, delay, sig, env, after_first_write=writing)
                    bad_here += bad
                    when = f"{delay:4.1f} s after its first write" if writing else f"after {delay:5.1f} s"
                    print(
                        f"{kind:6s} #{i + 1:2d} {signal.Signals(sig).name:7s} {when:28s}: "
                        f"{new:4d}/{total} runs audited so far, {bad} inconsistent",
                        flush=True,
                    )
                # the last interrupted audit, resumed: the same end as an audit never interrupted
                subprocess.run(audit_cmd(uri), env=env, check=True, stdout=subprocess.DEVNULL)
                final = by_name(read_tags(db))
                same = final == reference
                differ = sum(final.get(k) != v for k, v in reference.items())
                print(
                    f"{kind}: {n} interrupts, {bad_here} inconsistent run states seen; after one more audit, "
                    f"{'equal to' if same else f'{differ} runs differ from'} an uninterrupted audit"
                )
                total_bad += bad_here + differ
            finally:
                if server is not None:
                    server.stop()
        print(
            f"uninterrupted audit of {args.runs} runs: {full:.1f} s; interrupts at random points up to "
            f"{max_delay:.1f} s"
        )
    print(f"TOTAL inconsistent or differing: {total_bad}")
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
