"""The audit: store -> curves -> statistics -> rules -> verdict -> writer, for every run."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from itertools import islice
from datetime import datetime, timedelta, timezone

from mlflow_nnaudit._version import __version__
from mlflow_nnaudit.auditor import writer
from mlflow_nnaudit.auditor.config import load_roles
from mlflow_nnaudit.auditor.curves import ROLES, TRAIN_LOSS, VAL_LOSS, assign_roles, role_priority
from mlflow_nnaudit.auditor.result import AuditResult
from mlflow_nnaudit.auditor.rules import ALL_RULES, Rule, RunView
from mlflow_nnaudit.auditor.rules.base import UPDATE_RATIO_PREFIX
from mlflow_nnaudit.auditor.store import RunRecord, Store, StoreError
from mlflow_nnaudit.auditor.verdict import (
    INCONCLUSIVE,
    control_false_discoveries,
    decide_status,
    drop_explained,
    rank_findings,
)

_log = logging.getLogger(__name__)

#: the recorder's curves that rules read besides the role curves (per-layer and per-batch evidence)
RECORDER_EVIDENCE_CURVES = (UPDATE_RATIO_PREFIX, "nnaudit/labels_per_batch", "nnaudit/dead_relu/", "nnaudit/saturated/",
                            "nnaudit/grad_present_before_backward", "nnaudit/grad_norm/")
#: curves read by their exact name: the epoch counter Lightning and the HF Trainer log against the step
#: (gives the epoch length in steps)
EPOCH_CURVES = ("epoch", "train/epoch")
#: the recorder marks the runs it recorded with this tag, and leaves its one-off facts here
RECORDER_TAG = "nnaudit.recorder.version"
DIAGNOSTICS_ARTIFACT = "nnaudit/diagnostics.json"

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
    """Audited by this version, after the run's last data arrived: nothing new to look at."""
    audited = _audited_ms(run.tags)
    return (
        audited is not None
        and run.tags.get(writer.TAG_VERSION) == __version__
        and audited >= _last_data_ms(run, latest_metric_ms)
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


def audit_run(
    store: Store, run: RunRecord, role_overrides: dict[str, str] | None = None, rules: Iterable[Rule] = ALL_RULES
) -> AuditResult:
    """Read one run's curves, run every rule on them and decide its status. Writes nothing."""
    candidates, extra_keys = curve_keys(run, role_overrides)
    loaded = store.load_curves(run, candidates)
    roles = assign_roles({k: len(c) for k, c in loaded.items()}, role_overrides)
    by_role = {role: loaded[key] for role, key in roles.items()}
    extra = store.load_curves(run, extra_keys)
    for key in EPOCH_CURVES:  # one name for the rules, however it was logged
        if key in extra:
            extra["epoch"] = extra.pop(key)
    diagnostics = None
    if RECORDER_TAG in run.tags:
        diagnostics = store.load_json_artifact(run.run_id, DIAGNOSTICS_ARTIFACT)
    view = RunView(by_role, params=run.params, extra_curves=extra, diagnostics=diagnostics)

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
    if loss is not None:
        for rule in rules:
            try:
                f = rule.evaluate(view)
            except Exception as exc:  # noqa: BLE001 - one broken rule must not hide the others
                _log.warning("rule %s failed on run %s: %s", rule.cause, run.run_id, exc)
                result.notes.append(f"rule {rule.cause} failed: {type(exc).__name__}: {exc}")
                continue
            if f is not None:
                findings.append(f)
    findings, dropped = drop_explained(findings, {r.cause: r.explained_by for r in rules})
    result.notes.extend(dropped)
    result.findings = rank_findings(findings)
    result.status = decide_status(result.findings, result.reason)
    return result


def audit(
    tracking_uri: str | None = None,
    experiments: Iterable[str] = (),
    since: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    roles: dict[str, str] | None = None,
    on_progress: Callable[[AuditResult], None] | None = None,
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
        config: a TOML file with a `[roles]` (or `[tool.nnaudit.roles]`) table; when None,
            `nnaudit.toml` then `pyproject.toml` in the working directory, if present.
        on_progress: called with each result once it is final (after the false-discovery control
            across the whole audit, see `verdict.control_false_discoveries`), as it is written.

    Returns:
        One `AuditResult` per finished, failed or killed run (skipped ones have `skipped=True`).

    Raises:
        StoreError: the store is missing or unreachable, or an experiment is unknown.
    """
    if isinstance(experiments, str):
        experiments = (experiments,)
    roles = {**load_roles(config), **(roles or {})}
    unknown_roles = set(roles or {}) - set(ROLES)
    if unknown_roles:
        raise ValueError(f"unknown curve role(s) {', '.join(sorted(unknown_roles))}; roles are: {', '.join(ROLES)}")
    store = Store(tracking_uri)
    try:
        exps = store.experiments(tuple(experiments))
        cutoff = parse_since(since)
        results: list[AuditResult] = []
        runs = store.iter_runs(exps, cutoff)
        # Chunks of runs: one bulk read of the curves the chunk's audits will ask for (SQL stores;
        # see Store.prefetch), then the runs one by one. Memory holds one chunk of curves.
        while chunk := list(islice(runs, AUDIT_CHUNK_RUNS)):
            todo = [run for run in chunk if force or not is_up_to_date(run, run.latest_metric_ms)]
            store.prefetch(todo, {run.run_id: [k for keys in curve_keys(run, roles) for k in keys] for run in todo})
            for run in chunk:
                if not force and is_up_to_date(run, run.latest_metric_ms):
                    result = AuditResult(
                        run.run_id, run.run_name, run.experiment_id, run.experiment_name,
                        status=run.tags.get(writer.TAG_STATUS, INCONCLUSIVE), skipped=True,
                        audited_at=run.tags.get(writer.TAG_AUDITED_AT, ""), tags=run.tags,
                    )
                else:
                    result = audit_run(store, run, roles)
                results.append(result)
        # One family for false-discovery control: every curve test of this audit. So results are
        # final, and written, only once all runs are audited (they hold findings, not curves).
        control_false_discoveries(results)
        for result in results:
            if not result.skipped and not dry_run:
                writer.write_result(store.client, result, result.tags)
            if on_progress is not None:
                on_progress(result)
    finally:
        store.close()
    return results


__all__ = ["audit", "audit_run", "parse_since", "StoreError"]
