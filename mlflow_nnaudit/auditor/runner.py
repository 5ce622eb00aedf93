"""The audit: store -> curves -> statistics -> rules -> verdict -> writer, for every run."""

from __future__ import annotations

import functools
import hashlib
import logging
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable
from itertools import islice
from datetime import datetime, timedelta, timezone

from mlflow_nnaudit._version import __version__
from mlflow_nnaudit.auditor import bulk, report, writer
from mlflow_nnaudit.auditor.config import load_roles
from mlflow_nnaudit.auditor.curves import ROLES, Curve, TRAIN_LOSS, VAL_LOSS, assign_roles, role_priority
from mlflow_nnaudit.auditor.result import AuditResult
from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules import ALL_RULES, Rule, RunView, curves_read_by
from mlflow_nnaudit.auditor.store import RunRecord, Store, StoreError
from mlflow_nnaudit.auditor.verdict import INCONCLUSIVE, Links, control_false_discoveries, judge

_log = logging.getLogger(__name__)

#: the recorder's curves that rules read besides the role curves (per-layer and per-batch evidence):
#: what the registered rules declare in their `reads`
RECORDER_EVIDENCE_CURVES = curves_read_by(ALL_RULES)
#: curves read by their exact name: the epoch counter Lightning and the HF Trainer log against the step
#: (gives the epoch length in steps)
EPOCH_CURVES = ("epoch", "train/epoch")
#: the recorder marks the runs it recorded with this tag, and leaves its one-off facts here
RECORDER_TAG = schema.TAG_RECORDER_VERSION
DIAGNOSTICS_ARTIFACT = schema.DIAGNOSTICS_ARTIFACT

#: runs whose curves audit() reads in one go (bulk SQL reading); bounds the memory of an audit
AUDIT_CHUNK_RUNS = 200

#: fewest finite loss points worth a verdict
MIN_POINTS_TO_JUDGE = 8

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(since: str | None, now: datetime | None = None) -> int | None:
    """'24h', '7d', '30m' -> a cutoff in epoch milliseconds (None for None)."""
    if since is None:
        return None
    m = _DURATION.match(since)
    if not m:
        raise ValueError(f"cannot read duration {since!r}: use a number and a unit, e.g. 30m, 24h, 7d")
    seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    now = now or datetime.now(timezone.utc)
    return int((now - timedelta(seconds=seconds)).timestamp() * 1000)


def _last_data_ms(run: RunRecord, latest_metric_ms: int | None) -> int:
    return max(run.end_time or 0, run.start_time or 0, latest_metric_ms or 0)


def _audited_ms(tags: dict[str, str]) -> int | None:
    stamp = tags.get(writer.TAG_AUDITED_AT)
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def is_up_to_date(run: RunRecord, latest_metric_ms: int | None = None) -> bool:
    """Audited by this version, after the run's last data arrived, and its tags consistent
    (one `nnaudit.cause.<id>` per cause listed, as a completed write leaves them): nothing new
    to look at."""
    audited = _audited_ms(run.tags)
    listed = {c for key in (writer.TAG_CAUSES, writer.TAG_ADVISORIES) for c in run.tags.get(key, "").split(",") if c}
    tagged = {k[len(writer.TAG_CAUSE_PREFIX):] for k in run.tags if k.startswith(writer.TAG_CAUSE_PREFIX)}
    return (
        audited is not None
        and run.tags.get(writer.TAG_VERSION) == __version__
        and audited >= _last_data_ms(run, latest_metric_ms)
        and listed == tagged
    )


def curve_keys(run: RunRecord, role_overrides: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The metric keys an audit of the run reads: candidates for a curve role (plus the user's
    overrides), and the recorder's evidence curves."""
    candidates = [k for k in run.metric_keys if any(role_priority(k, r) is not None for r in ROLES)]
    wanted = [k for v in (role_overrides or {}).values() for k in ([v] if isinstance(v, str) else v)]
    candidates += [k for k in wanted if k in run.metric_keys and k not in candidates]
    extra = [k for k in run.metric_keys if k.startswith(RECORDER_EVIDENCE_CURVES) and k not in candidates]
    epoch = next((k for k in EPOCH_CURVES if k in run.metric_keys), None)
    if epoch is not None:
        extra.append(epoch)
    return candidates, extra


@dataclass
class AuditInput:
    """Everything an analysis of one run needs, read from the store: picklable, so that
    analyses can run in worker processes while the main process reads and writes."""

    run: RunRecord
    loaded: dict[str, Curve]  # role candidates, by metric key
    extra: dict[str, Curve]  # the recorder's evidence curves, by metric key
    diagnostics: dict | None
    role_overrides: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)  # what could not be read


def gather(
    store: Store, run: RunRecord, role_overrides: dict[str, str] | None = None,
    keys: tuple[list[str], list[str]] | None = None,
) -> AuditInput:
    """Read what the audit of one run needs (prefetched curves come from the store's cache).
    `keys`: the run's `curve_keys`, when the caller has them already."""
    candidates, extra_keys = keys if keys is not None else curve_keys(run, role_overrides)
    loaded = store.load_curves(run, candidates)
    extra = store.load_curves(run, extra_keys)
    for key in EPOCH_CURVES:  # one name for the rules, however it was logged
        if key in extra:
            extra["epoch"] = extra.pop(key)
    notes = []
    diagnostics = None
    if RECORDER_TAG in run.tags:
        diagnostics = store.load_json_artifact(run.run_id, DIAGNOSTICS_ARTIFACT)
        if diagnostics is None:
            notes.append(f"the recorder's {DIAGNOSTICS_ARTIFACT} could not be read (artifacts unreachable from "
                         "here?): its one-off facts were not used")
    return AuditInput(run, loaded, extra, diagnostics, role_overrides, notes)


def analyse(
    inp: AuditInput, rules: Iterable[Rule] = ALL_RULES, with_report: bool = True, keep_curves: bool = False
) -> AuditResult:
    """Run every rule on one run's curves and decide its status; pure computation, no I/O.
    The result carries a sparkline of its loss; with `with_report`, its `nnaudit/report.html` page; with
    `keep_curves`, the curves it read by role (for `nnaudit explain`; an audit of many runs
    drops them, so that its memory holds one chunk of curves at a time)."""
    run = inp.run
    roles = assign_roles({k: len(c) for k, c in inp.loaded.items()}, inp.role_overrides)
    by_role = {role: inp.loaded[key] for role, key in roles.items()}
    view = RunView(by_role, params=run.params, extra_curves=inp.extra, diagnostics=inp.diagnostics)

    result = AuditResult(
        run_id=run.run_id,
        run_name=run.run_name,
        experiment_id=run.experiment_id,
        experiment_name=run.experiment_name,
        status=INCONCLUSIVE,
        roles=roles,
        # milliseconds: a run that ended in the same second as its audit must still compare as audited
        audited_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        tags=run.tags,
    )
    loss = by_role.get(TRAIN_LOSS) or by_role.get(VAL_LOSS)
    if loss is None:
        result.reason = "no loss curve found (log the training loss, or name it with --role train_loss=KEY)"
    elif int(loss.finite.sum()) < MIN_POINTS_TO_JUDGE and loss.finite.all():
        result.reason = f"the loss curve {loss.key!r} has only {len(loss)} points"
    findings = []
    rules = tuple(rules)
    if loss is not None:
        for rule in rules:
            try:
                f = rule.evaluate(view) if rule.applies(view) else None
            except Exception as exc:  # noqa: BLE001 - one broken rule must not hide the others
                _log.warning("rule %s failed on run %s: %s", rule.cause, run.run_id, exc)
                result.notes.append(f"rule {rule.cause} failed: {type(exc).__name__}: {exc}")
                continue
            if f is not None:
                findings.append(f)
    result.harm = view.outcome_harm() if loss is not None else None
    result.findings, result.status, dropped = judge(findings, Links.of(rules), result.reason, result.harm)
    result.notes.extend(inp.notes)
    result.notes.extend(dropped)
    result.sparkline = report.sparkline(loss)  # for the summary page, written or not
    if with_report:
        try:
            result.report_html = report.run_report_html(result, by_role)
        except Exception as exc:  # noqa: BLE001 - a page that cannot be drawn must not lose the verdict
            _log.warning("report of run %s not drawn: %s", run.run_id, exc)
            result.notes.append(f"report not drawn: {type(exc).__name__}: {exc}")
    if keep_curves:
        result.curves = by_role
    return result


def audit_run(
    store: Store, run: RunRecord, role_overrides: dict[str, str] | None = None, rules: Iterable[Rule] = ALL_RULES
) -> AuditResult:
    """Read one run's curves, run every rule on them and decide its status. Writes nothing."""
    return analyse(gather(store, run, role_overrides), rules)


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4): this process audits the second of four disjoint parts of the store."""
    if shard is None:
        return None
    if isinstance(shard, str):
        m = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", shard)
        if not m:
            raise ValueError(f"cannot read shard {shard!r}: use K/N, e.g. 1/4 for the first of four parts")
        shard = (int(m.group(1)), int(m.group(2)))
    k, n = shard
    if not (n >= 1 and 1 <= k <= n):
        raise ValueError(f"shard {k}/{n} does not exist: K must be between 1 and N")
    return k, n


def in_shard(run_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether a run belongs to shard K of N: a stable hash of its id (the same on every machine
    and every night), so that N processes split a store with no overlap and no gap."""
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.blake2b(run_id.encode(), digest_size=8).hexdigest(), 16) % n == k - 1


def _skipped(run: RunRecord) -> AuditResult:
    return AuditResult(
        run.run_id, run.run_name, run.experiment_id, run.experiment_name,
        status=run.tags.get(writer.TAG_STATUS, INCONCLUSIVE), skipped=True,
        audited_at=run.tags.get(writer.TAG_AUDITED_AT, ""), tags=run.tags,
    )


def audit(
    tracking_uri: str | None = None,
    experiments: Iterable[str] = (),
    since: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    roles: dict[str, str] | None = None,
    on_progress: Callable[[AuditResult], None] | None = None,
    workers: int = 1,
    shard: str | tuple[int, int] | None = None,
    on_start: Callable[[int | None], None] | None = None,
    config: str | None = None,
) -> list[AuditResult]:
    """Audit the runs of a tracking store and tag each with its status and causes.

    Args:
        tracking_uri: the store; MLflow's usual resolution when None (`MLFLOW_TRACKING_URI`,
            then `sqlite:///mlflow.db`).
        experiments: experiment names (or ids) to audit, one name or several; all active
            experiments when empty.
        since: only runs that ended within this duration ("24h", "7d").
        force: re-audit runs already audited by this version with no new data since.
        dry_run: compute and return results, write nothing.
        roles: override which metric plays which role, e.g. {"train_loss": "my_loss"}; wins
            over the config file, role by role.
        on_progress: called with each result once it is final (after the false-discovery control
            of its chunk of runs, see below), as it is written.
        workers: processes that analyse runs in parallel (reading and writing stay in this one).
            They are spawned: a script that calls this with workers > 1 needs the usual
            `if __name__ == "__main__":` guard (without it, the audit warns and analyses in
            this process).
        shard: "K/N" (or (K, N)): audit only the K-th of N disjoint parts of the store, so that
            N machines or CronJob pods can split one store between them.
        on_start: called once, before the first result, with the number of runs to look at
            when the store can count them cheaply (SQL stores without a shard), else None.
        config: a TOML file with a `[roles]` (or `[tool.nnaudit.roles]`) table; when None,
            `nnaudit.toml` then `pyproject.toml` in the working directory, if present.

    False discoveries: the findings that rest on a curve-only statistical test form one
    Benjamini-Hochberg family per chunk of `AUDIT_CHUNK_RUNS` runs audited together (all of
    them when fewer), see `verdict.control_false_discoveries`. A chunk, not the whole store, so
    that results are written as the audit goes (an interrupted audit keeps what it finished,
    and memory stays bounded on any store).

    Returns:
        One `AuditResult` per finished, failed or killed run (skipped ones have `skipped=True`).

    Raises:
        StoreError: the store is missing or unreachable, or an experiment is unknown.
        ValueError: a bad duration, shard, role or worker count.
    """
    if isinstance(experiments, str):
        experiments = (experiments,)
    roles = {**load_roles(config), **(roles or {})}
    _check_roles(roles)
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, not {workers}")
    part = parse_shard(shard)
    cutoff = parse_since(since)
    store = Store(tracking_uri)
    pool = None
    writers = None
    try:
        exps = store.experiments(tuple(experiments))
        if on_start is not None:
            on_start(store.count_runs(exps, cutoff) if part is None else None)
        if workers > 1:
            pool = _start_pool(workers)
        # Writes: several at once through a tracking server or into PostgreSQL (each run's tags
        # are one request/transaction; most of a write's time is waiting); one at a time into
        # sqlite, whose single writer lock would only make threads queue.
        writers = ThreadPoolExecutor(WRITE_THREADS) if _concurrent_writes(store.uri) else None
        write = writers.submit if writers is not None else _Deferred
        results: list[AuditResult] = []
        runs = (run for run in store.iter_runs(exps, cutoff) if in_shard(run.run_id, part))
        # a dry run writes no report pages, so it draws none (picklable for the workers)
        work = functools.partial(analyse, with_report=not dry_run)

        def stop_workers() -> None:
            nonlocal pool
            if pool is not None:  # a worker died (killed for memory, ...): go on without them
                _log.warning("analysis workers stopped; analysing in this process instead")
                pool.shutdown(cancel_futures=True)
                pool = None

        def finish(chunk: list[RunRecord], todo: list[RunRecord], inputs: list[AuditInput], analysed) -> None:
            try:
                done = list(analysed)
            except BrokenProcessPool:
                stop_workers()
                done = [work(inp) for inp in inputs]
            # one false-discovery family per chunk; a run that lost a finding gets its page again
            before = {id(r): len(r.findings) for r in done}
            if control_false_discoveries(done):
                by_id = {inp.run.run_id: inp for inp in inputs}
                for r in done:
                    if len(r.findings) != before[id(r)] and r.report_html is not None:
                        r.report_html = _report_page(r, by_id[r.run_id])
            fresh = dict(zip((run.run_id for run in todo), done))
            ordered = [(run, fresh.pop(run.run_id, None) or _skipped(run)) for run in chunk]
            writes = {} if dry_run else {
                run.run_id: write(writer.write_result, store.client, result, run.tags)
                for run, result in ordered if not result.skipped
            }
            for run, result in ordered:  # in the store's order, whatever order the workers finished in
                if run.run_id in writes:
                    writes[run.run_id].result()  # a failed write stops the audit, as it always did
                result.report_html = None  # written (or not wanted): the page is not kept in memory
                results.append(result)
                if on_progress is not None:
                    on_progress(result)

        # Chunks of runs: one bulk read of the curves the chunk's audits will ask for (see
        # Store.prefetch), the analyses, then the writes in the chunk's order. Without workers a
        # chunk is written before the next is read; with workers, the next chunk is read while
        # the workers analyse this one (memory holds at most two chunks of curves, and an
        # interruption loses at most the chunk in flight, which the next audit redoes).
        pending = None
        while chunk := list(islice(runs, AUDIT_CHUNK_RUNS)):
            todo = [run for run in chunk if force or not is_up_to_date(run, run.latest_metric_ms)]
            keys = {run.run_id: curve_keys(run, roles) for run in todo}
            store.prefetch(todo, {rid: candidates + extra for rid, (candidates, extra) in keys.items()})
            inputs = [gather(store, run, roles, keys[run.run_id]) for run in todo]
            if pool is not None:
                try:  # Executor.map submits every task at once; the results are collected by finish()
                    analysed = pool.map(work, inputs, chunksize=8)
                except BrokenProcessPool:
                    stop_workers()  # this chunk is analysed here, below
                else:
                    if pending is not None:
                        finish(*pending)
                    pending = (chunk, todo, inputs, analysed)
                    continue
            # no workers (or no longer): the chunk is finished (written) now, after any chunk
            # still held by workers that then stopped
            if pending is not None:
                finish(*pending)
                pending = None
            finish(chunk, todo, inputs, [work(inp) for inp in inputs])
        if pending is not None:
            finish(*pending)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if writers is not None:
            writers.shutdown(wait=True)  # writes already started finish; none is left half-done
        store.close()
    return results


#: runs written at once through a tracking server or into PostgreSQL
WRITE_THREADS = 8


def _concurrent_writes(uri: str) -> bool:
    kind = bulk.scheme(uri) or uri.strip().lower()  # a bare "databricks" has no "://"
    return kind in ("http", "https", "postgresql", "postgres", "databricks")


class _Deferred:
    """A write done when its result is asked for (the sequential twin of a Future): one run at
    a time, each just before its progress is reported."""

    def __init__(self, fn, *args) -> None:
        self._fn, self._args = fn, args

    def result(self):
        return self._fn(*self._args)


def _report_page(result: AuditResult, inp: AuditInput) -> str | None:
    try:
        return report.run_report_html(result, {role: inp.loaded[key] for role, key in result.roles.items()
                                               if key in inp.loaded})
    except Exception as exc:  # noqa: BLE001 - as in analyse(): the verdict matters more than its page
        result.notes.append(f"report not drawn: {type(exc).__name__}: {exc}")
        return None


def _ping() -> int:
    return 0


def _start_pool(workers: int) -> ProcessPoolExecutor | None:
    """Worker processes, started and checked before any chunk is given to them. Spawned, not
    forked: the parent holds database connections and MLflow's threads. Returns None (the
    audit then analyses in this process) when they cannot start, e.g. in a script that calls
    audit(workers=N) without the `if __name__ == "__main__":` guard spawned processes need."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        # In an unguarded script's worker (re-running the script as it starts), this raises
        # RuntimeError, which must end that worker rather than start an audit inside it.
        pool.submit(_ping).result(timeout=120)
        return pool
    except (BrokenProcessPool, TimeoutError, OSError) as exc:
        pool.shutdown(wait=False, cancel_futures=True)
        _log.warning("analysis workers could not start (%s; a script that calls audit(workers=N) needs an "
                     "`if __name__ == '__main__':` guard); analysing in this process instead", type(exc).__name__)
        return None



def _check_roles(roles: dict[str, str] | None) -> None:
    unknown_roles = set(roles or {}) - set(ROLES)
    if unknown_roles:
        raise ValueError(f"unknown curve role(s) {', '.join(sorted(unknown_roles))}; roles are: {', '.join(ROLES)}")


def explain(
    run_id: str, tracking_uri: str | None = None, roles: dict[str, str] | None = None, config: str | None = None
) -> AuditResult:
    """Audit one run (any status) without writing anything; the result keeps its curves by
    role in `result.curves` for display. Roles as for `audit`."""
    roles = {**load_roles(config), **(roles or {})}
    _check_roles(roles)
    store = Store(tracking_uri)
    try:
        run = store.get_run(run_id)
        return analyse(gather(store, run, roles), keep_curves=True)
    finally:
        store.close()


__all__ = ["audit", "audit_run", "explain", "parse_since", "parse_shard", "StoreError"]
