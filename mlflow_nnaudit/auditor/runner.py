"""The audit: which runs to look at (run selection), then a pipeline over chunks of them whose
stages run in this order: read -> analyse -> control false discoveries -> draw -> write."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import islice

from mlflow_nnaudit import schema
from mlflow_nnaudit._version import __version__
from mlflow_nnaudit.auditor import bulk, report, ruleset, writer
from mlflow_nnaudit.auditor.config import load_roles
from mlflow_nnaudit.auditor.curves import (
    ROLES,
    TRAIN_LOSS,
    VAL_LOSS,
    Curve,
    adversarial_game,
    assign_roles,
    reinforcement_learning,
    role_priority,
    train_loss_per_sample,
)
from mlflow_nnaudit.auditor.result import AuditResult
from mlflow_nnaudit.auditor.rules import ALL_RULES, Rule, RunView, curves_read_by
from mlflow_nnaudit.auditor.store import RunRecord, Store, StoreError
from mlflow_nnaudit.auditor.verdict import (
    INCONCLUSIVE,
    Links,
    control_false_discoveries,
    default_links,
    judge,
    set_aside_for_game,
)

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
    try:
        return int((now - timedelta(seconds=seconds)).timestamp() * 1000)
    except (OverflowError, ValueError):  # reaches before year 1: a one-line error, not a traceback
        raise ValueError(f"duration {since!r} is too long: it reaches back before the year 1") from None


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


def is_up_to_date(run: RunRecord, latest_metric_ms: int | None = None, now_ms: int | None = None) -> bool:
    """Audited by this version and rule set, after the run's last data arrived, and its tags consistent
    (one `nnaudit.cause.<id>` per cause listed, as a completed write leaves them): nothing new
    to look at. An audit time later than now (a clock that ran ahead, or a forged tag) proves
    nothing: such a run is audited again (else it would be skipped until that time, whatever
    data arrived)."""
    audited = _audited_ms(run.tags)
    now_ms = now_ms if now_ms is not None else int(datetime.now(timezone.utc).timestamp() * 1000)
    if audited is not None and audited > now_ms:
        return False
    listed = {c for key in (writer.TAG_CAUSES, writer.TAG_ADVISORIES) for c in run.tags.get(key, "").split(",") if c}
    tagged = {k[len(writer.TAG_CAUSE_PREFIX) :] for k in run.tags if k.startswith(writer.TAG_CAUSE_PREFIX)}
    return (
        audited is not None
        and run.tags.get(writer.TAG_VERSION) == __version__
        and run.tags.get(writer.TAG_RULESET) == ruleset.fingerprint()
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
    store: Store,
    run: RunRecord,
    role_overrides: dict[str, str] | None = None,
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
            notes.append(
                f"the recorder's {DIAGNOSTICS_ARTIFACT} could not be read (artifacts unreachable from "
                "here?): its one-off facts were not used"
            )
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
    per_sample_note = train_loss_per_sample(by_role, inp.diagnostics)
    view = RunView(
        by_role, params=run.params, extra_curves=inp.extra, diagnostics=inp.diagnostics, metric_keys=run.metric_keys
    )

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
        points = "1 point" if len(loss) == 1 else f"{len(loss)} points"
        if TRAIN_LOSS not in by_role:  # e.g. the HF Trainer's evaluate() after train() logs a run of its own
            result.reason = (
                f"an evaluation-only run: no training loss, and {loss.key!r} has only {points} (such as "
                "a run that trainer.evaluate() opens after train())"
            )
        else:
            result.reason = f"the loss curve {loss.key!r} has only {points}"
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
    game = adversarial_game(run.metric_keys, inp.diagnostics) or reinforcement_learning(
        run.metric_keys, inp.diagnostics
    )
    game_notes: list[str] = []
    if game is not None:
        findings, game_notes = set_aside_for_game(findings, game)
        result.harm = None
    # the registered rules' links are made once per process (stage 3 uses the same), not once a run
    links = default_links() if rules == ALL_RULES else Links.of(rules)
    result.findings, result.status, dropped = judge(findings, links, result.reason, result.harm)
    result.notes.extend(inp.notes)
    result.notes.extend(game_notes)
    if per_sample_note:
        result.notes.append(per_sample_note)
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


def _skipped(run: RunRecord, sparkline: list[float] | None = None) -> AuditResult:
    return AuditResult(
        run.run_id,
        run.run_name,
        run.experiment_id,
        run.experiment_name,
        status=run.tags.get(writer.TAG_STATUS, INCONCLUSIVE),
        skipped=True,
        audited_at=run.tags.get(writer.TAG_AUDITED_AT, ""),
        tags=run.tags,
        sparkline=sparkline or [],
    )


def _loss_key(run: RunRecord, role_overrides: dict[str, str] | None) -> str | None:
    """The metric an audit of the run would take for its loss (its sparkline), from the keys alone."""
    candidates, _ = curve_keys(run, role_overrides)
    roles = assign_roles({k: run.metric_steps.get(k, 0) + 1 for k in candidates}, role_overrides)
    return roles.get(TRAIN_LOSS) or roles.get(VAL_LOSS)


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
    sparklines: bool = False,
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
        workers: processes that audit chunks of runs in parallel (each reads, analyses and draws
            its own chunk and writes its artifacts; listing the runs and writing the tags stay in
            this one). Same results and tags whatever the number.
            They are spawned: a script that calls this with workers > 1 needs the usual
            `if __name__ == "__main__":` guard (without it, the audit warns and works in
            this process).
        shard: "K/N" (or (K, N)): audit only the K-th of N disjoint parts of the store, so that
            N machines or CronJob pods can split one store between them.
        on_start: called once, before the first result, with the number of runs to look at
            when the store can count them cheaply (SQL stores without a shard), else None.
        config: a TOML file with a `[roles]` (or `[tool.nnaudit.roles]`) table; when None,
            `nnaudit.toml` then `pyproject.toml` in the working directory, if present.
        sparklines: also read the loss of runs skipped as unchanged, so that every result carries
            its `sparkline` (for the summary page; audited runs always do).

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
    plan = ChunkPlan(store.uri, roles, dry_run, sparklines)
    results: list[AuditResult] = []
    try:
        exps = store.experiments(tuple(experiments))
        if on_start is not None:
            on_start(store.count_runs(exps, cutoff) if part is None else None)
        with _Chunks(store, plan, workers) as pipeline:
            for chunk, done in pipeline.run(select_runs(store, exps, cutoff, part, force)):
                pipeline.write_tags(chunk, done)
                for result in done:  # in the store's order, whatever order the workers finished in
                    results.append(result)
                    if on_progress is not None:
                        on_progress(result)
    finally:
        store.close()
    return results


# -- run selection -------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Up to `AUDIT_CHUNK_RUNS` runs in the store's order, and those of them to audit now
    (the others are unchanged since their last audit)."""

    runs: list[RunRecord]
    todo: list[RunRecord]


def select_runs(
    store: Store, experiments: list, cutoff: int | None, part: tuple[int, int] | None, force: bool
) -> Iterator[Chunk]:
    """The runs to look at, newest first, chunk by chunk: active, auditable, in the window and
    in the shard; each chunk says which of its runs need an audit."""
    runs = (run for run in store.iter_runs(experiments, cutoff) if in_shard(run.run_id, part))
    while chunk := list(islice(runs, AUDIT_CHUNK_RUNS)):
        yield Chunk(chunk, [run for run in chunk if force or not is_up_to_date(run, run.latest_metric_ms)])


# -- the chunk pipeline: read -> analyse -> control false discoveries -> draw -> write -----------


@dataclass
class ChunkPlan:
    """What every chunk of one audit shares (picklable: it goes to the workers with each chunk)."""

    uri: str
    roles: dict[str, str]
    dry_run: bool
    #: also read the loss of the runs skipped as unchanged, for their sparklines (the summary page)
    sparklines: bool = False


def read_chunk(
    store: Store, chunk: Chunk, roles: dict[str, str], sparklines: bool = False
) -> tuple[list[AuditInput], dict[str, list[float]]]:
    """Stage 1: one bulk read of the curves the chunk's audits ask for (see Store.prefetch),
    then each run's input, in the chunk's order; with `sparklines`, the same read also takes the
    loss of each run left unchanged, and returns its sparkline by run id."""
    keys = {run.run_id: curve_keys(run, roles) for run in chunk.todo}
    wanted = {rid: candidates + extra for rid, (candidates, extra) in keys.items()}
    unchanged = [run for run in chunk.runs if run.run_id not in wanted] if sparklines else []
    losses = {run.run_id: key for run in unchanged if (key := _loss_key(run, roles)) is not None}
    store.prefetch(chunk.todo + unchanged, wanted | {rid: [key] for rid, key in losses.items()})
    sparks: dict[str, list[float]] = {}
    for run in unchanged:
        if run.run_id in losses:
            key = losses[run.run_id]
            try:
                sparks[run.run_id] = report.sparkline(store.load_curves(run, [key])[key])
            except Exception as exc:  # noqa: BLE001 - a picture is not worth stopping the audit for
                _log.warning("loss of run %s not read for its sparkline: %s", run.run_id, exc)
    return [gather(store, run, roles, keys[run.run_id]) for run in chunk.todo], sparks


def analyse_chunk(inputs: list[AuditInput]) -> list[AuditResult]:
    """Stage 2: every rule on every run (pure computation); no page drawn yet."""
    return [analyse(inp, with_report=False) for inp in inputs]


def control_chunk(results: list[AuditResult]) -> None:
    """Stage 3: one false-discovery family per chunk (verdict.control_false_discoveries)."""
    control_false_discoveries(results)


def draw_chunk(results: list[AuditResult], inputs: list[AuditInput]) -> None:
    """Stage 4: each run's `nnaudit/report.html`, once, from its final findings."""
    for result, inp in zip(results, inputs):
        result.report_html = _report_page(result, inp)


def write_artifacts_chunk(store: Store, chunk: Chunk, results: list[AuditResult], plan: ChunkPlan) -> None:
    """Stage 5, first half: each audited run's `nnaudit/` artifacts, before any of its tags (a
    run whose location cannot be written keeps its verdict, with a note; see
    writer.write_artifacts_noted). The page is not kept in memory once written."""
    where = {run.run_id: run.artifact_uri for run in chunk.todo}
    for result in results:
        location = where.get(result.run_id, "")
        # the client only where the run's location is unknown (it asks the store): made on first use
        client = None if location else store.client
        writer.write_artifacts_noted(result, location, plan.uri, client)
        result.report_html = None


def audit_chunk(store: Store, chunk: Chunk, plan: ChunkPlan) -> list[AuditResult]:
    """Stages 1-5 for one chunk up to its tags: read, analyse, control, draw, write the
    artifacts. Returns a result for every run of the chunk in its order (unchanged runs as
    skipped results); the tags are written by `_Chunks.write_tags`, after the artifacts."""
    inputs, sparks = read_chunk(store, chunk, plan.roles, plan.sparklines)
    results = analyse_chunk(inputs)
    control_chunk(results)
    if not plan.dry_run:  # a dry run writes no report pages, so it draws none
        draw_chunk(results, inputs)
        write_artifacts_chunk(store, chunk, results, plan)
    fresh = {r.run_id: r for r in results}
    return [fresh.get(run.run_id) or _skipped(run, sparks.get(run.run_id)) for run in chunk.runs]


#: a worker process's own view of the store (each worker reads its chunks itself, in its own
#: read-only snapshots); opened on its first chunk
_WORKER_STORE: Store | None = None


def _audit_chunk_in_worker(chunk: Chunk, plan: ChunkPlan) -> list[AuditResult]:
    global _WORKER_STORE
    if _WORKER_STORE is None or _WORKER_STORE.uri != plan.uri:
        _WORKER_STORE = Store.sql_reader(plan.uri) if bulk.supports(plan.uri) else Store(plan.uri)
    return audit_chunk(_WORKER_STORE, chunk, plan)


class _Done:
    """A chunk audited in this process (the sequential twin of a Future)."""

    def __init__(self, value) -> None:
        self._value = value

    def result(self):
        return self._value


class _Chunks:
    """Runs the chunk pipeline: everything up to the tags in worker processes when there are
    any (several chunks in flight; without workers one chunk at a time, written before the next
    is read), the tags here, chunk after chunk in the store's order. An interruption loses at most the
    chunks in flight, which the next audit redoes."""

    def __init__(self, store: Store, plan: ChunkPlan, workers: int) -> None:
        self.store, self.plan = store, plan
        # started on the first chunk with runs to audit: an audit that skips every run (the
        # second audit of an unchanged store) spends nothing on starting processes
        self.pool: ProcessPoolExecutor | None = None
        self._workers = self._workers_wanted = workers
        self.in_flight = max(2, 2 * workers)  # chunks given to the workers ahead of the writing
        # Writes: several at once through a tracking server or into PostgreSQL (each run's tags
        # are one request/transaction; most of a write's time is waiting); one at a time into
        # sqlite, whose single writer lock would only make threads queue.
        self.writers = ThreadPoolExecutor(WRITE_THREADS) if _concurrent_writes(store.uri) else None
        # sqlite and PostgreSQL: a chunk's tags in one transaction instead
        self.sql = writer.SqlTagWriter(store.uri) if bulk.supports(store.uri) and not plan.dry_run else None

    def __enter__(self) -> _Chunks:
        return self

    def __exit__(self, *exc) -> None:
        # writes already started finish first (through a server a run's tags are two requests:
        # an interrupt must not leave a run between them), then the workers are let go without
        # waiting for their chunks (an interrupted audit redoes those)
        if self.writers is not None:
            # (queued ones are dropped: after a failed write, the server gone, each would wait out its
            # retries in turn)
            self.writers.shutdown(wait=True, cancel_futures=True)
        if self.sql is not None:
            self.sql.close()
        if self.pool is not None:
            self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)

    def _submit(self, chunk: Chunk):
        if not chunk.todo:  # nothing to read: no need to bother a worker
            return _Done(audit_chunk(self.store, chunk, self.plan))
        if self._workers > 1:
            self._workers = 1  # one try
            self.pool = _start_pool(self._workers_wanted)
        if self.pool is not None:
            try:
                return self.pool.submit(_audit_chunk_in_worker, chunk, self.plan)
            except BrokenProcessPool:
                self._stop_workers()
        return _Done(audit_chunk(self.store, chunk, self.plan))

    def _collect(self, chunk: Chunk, future) -> list[AuditResult]:
        try:
            return future.result()
        except BrokenProcessPool:
            self._stop_workers()
            return audit_chunk(self.store, chunk, self.plan)

    def _stop_workers(self) -> None:
        if self.pool is not None:  # a worker died (killed for memory, ...): go on without them
            _log.warning("analysis workers stopped; auditing in this process instead")
            self.pool.shutdown(cancel_futures=True)
            self.pool = None

    def run(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, list[AuditResult]]]:
        """Each chunk with its results (all stages but the tags done), in the order of `chunks`."""
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, self._submit(chunk)))
            while len(pending) > (self.in_flight if self.pool is not None else 0):
                chunk_, future = pending.popleft()
                yield chunk_, self._collect(chunk_, future)
        while pending:
            chunk_, future = pending.popleft()
            yield chunk_, self._collect(chunk_, future)

    def write_tags(self, chunk: Chunk, results: list[AuditResult]) -> None:
        """Stage 5, second half: the tags of every audited run of the chunk (nothing on a dry
        run). On sqlite and PostgreSQL stores, one transaction for the whole chunk; elsewhere
        one batch per run, several runs at once through servers. A failed write stops the audit."""
        if self.plan.dry_run:
            return
        tags = {run.run_id: run.tags for run in chunk.runs}
        todo = [r for r in results if not r.skipped]
        if not todo:
            return
        if self.sql is not None:
            try:
                self.sql.write([(r, tags[r.run_id]) for r in todo])
                return
            except bulk.BulkUnavailable as exc:  # a schema this was not verified on: MLflow's client then
                _log.warning(
                    "writing tags straight into %s is off (%s); writing them through the MLflow client "
                    "instead (slower, same tags)",
                    self.store.uri,
                    exc,
                )
                self.sql.close()
                self.sql = None
        if self.writers is not None:
            futures = [self.writers.submit(writer.write_tags, self.store.client, r, tags[r.run_id]) for r in todo]
            for f in futures:
                f.result()
        else:
            for r in todo:
                writer.write_tags(self.store.client, r, tags[r.run_id])


#: runs written at once through a tracking server or into PostgreSQL
WRITE_THREADS = 8


def _concurrent_writes(uri: str) -> bool:
    kind = bulk.scheme(uri) or uri.strip().lower()  # a bare "databricks" has no "://"
    return kind in ("http", "https", "postgresql", "postgres", "databricks")


def _report_page(result: AuditResult, inp: AuditInput) -> str | None:
    try:
        return report.run_report_html(
            result, {role: inp.loaded[key] for role, key in result.roles.items() if key in inp.loaded}
        )
    except Exception as exc:  # noqa: BLE001 - a page that cannot be drawn must not lose the verdict
        _log.warning("report of run %s not drawn: %s", result.run_id, exc)
        result.notes.append(f"report not drawn: {type(exc).__name__}: {exc}")
        return None


def _ping() -> int:
    return 0


def _start_pool(workers: int) -> ProcessPoolExecutor | None:
    """Worker processes, started and checked before any chunk is given to them. Spawned, not
    forked: the parent holds database connections and MLflow's threads. Returns None (the
    audit then works in this process) when they cannot start, e.g. in a script that calls
    audit(workers=N) without the `if __name__ == "__main__":` guard spawned processes need."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        # In an unguarded script's worker (re-running the script as it starts), this raises
        # RuntimeError, which must end that worker rather than start an audit inside it.
        pool.submit(_ping).result(timeout=120)
        return pool
    except (BrokenProcessPool, TimeoutError, OSError) as exc:
        pool.shutdown(wait=False, cancel_futures=True)
        _log.warning(
            "analysis workers could not start (%s; a script that calls audit(workers=N) needs an "
            "`if __name__ == '__main__':` guard); analysing in this process instead",
            type(exc).__name__,
        )
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
