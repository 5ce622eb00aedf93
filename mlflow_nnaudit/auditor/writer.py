"""Writing an audit back into the store: the `nnaudit.` tags users filter on and the
`nnaudit/audit.json` and `nnaudit/report.html` artifacts. The last stage of the audit, and the
only one that writes.

It writes only tags under `nnaudit.` and artifacts under `nnaudit/`, and of the `nnaudit.`
tags it only ever replaces or removes its own (the recorder's live under `nnaudit.recorder.`).

A run's write is artifacts first, then tags, and the tags change in one step where the store
allows it, so that an interrupted audit leaves every run either as the last audit left it or
fully audited (its tags never mix two audits):

* sqlite and PostgreSQL stores: the tags of a whole chunk of runs in one SQL transaction
  (`SqlTagWriter`, same schema-version check as the bulk reader, auditor/bulk.py; on any other
  version the client path below);
* other stores (tracking servers, ...): one `log_batch` with every new tag (one transaction on
  the server's side), in which the cause tags that no longer apply are emptied, then their
  removal. Between the two, the run has its complete new audit and an empty, stale
  `nnaudit.cause.*` tag that no cause filter matches: the next audit sees the mismatch
  (runner.is_up_to_date) and writes the run again. A tag already gone (another audit removed it)
  is not an error.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterable

from mlflow_nnaudit import schema
from mlflow_nnaudit._version import __version__
from mlflow_nnaudit.auditor import ruleset
from mlflow_nnaudit.auditor.result import AuditResult

_log = logging.getLogger(__name__)

# the contract's names (see mlflow_nnaudit/schema.py), kept here under the names the auditor uses
TAG_STATUS = schema.TAG_STATUS
TAG_CAUSES = schema.TAG_CAUSES
TAG_CAUSE_PREFIX = schema.TAG_CAUSE_PREFIX
TAG_ADVISORIES = schema.TAG_ADVISORIES
TAG_RECOMMENDATION = schema.TAG_RECOMMENDATION
TAG_AUDITED_AT = schema.TAG_AUDITED_AT
TAG_VERSION = schema.TAG_VERSION
TAG_RULESET = schema.TAG_RULESET
AUDIT_ARTIFACT = schema.AUDIT_ARTIFACT
REPORT_ARTIFACT = schema.REPORT_ARTIFACT
_MAX_TAGS_PER_BATCH = 100  # MLflow's log_batch limit
#: the value a stale `nnaudit.cause.<id>` tag is given, in the batch that writes the new audit,
#: before it is removed (see `write_tags`): no confidence, so no cause filter matches it
WITHDRAWN = ""
#: seconds a write waits for sqlite's lock (a training job or another audit writing) before failing
SQLITE_LOCK_TIMEOUT = 60


def audit_tags(result: AuditResult) -> dict[str, str]:
    """The auditor's tags for a result, exactly as the contract names them."""
    tags = {
        TAG_STATUS: result.status,
        TAG_CAUSES: ",".join(result.causes),
        # set-up risks on a run that showed no harm; each also has its nnaudit.cause.<id> tag
        TAG_ADVISORIES: ",".join(result.advisories),
        # the UI shows tags as plain text: drop the code-span backticks kept in audit.json
        TAG_RECOMMENDATION: result.recommendation.replace("`", ""),
        TAG_AUDITED_AT: result.audited_at,
        TAG_VERSION: __version__,
        TAG_RULESET: ruleset.fingerprint(),
    }
    for f in result.findings:
        tags[TAG_CAUSE_PREFIX + f.cause] = f.confidence
    return tags


def is_audit_tag(key: str) -> bool:
    """Tags this writer owns (and may replace or delete)."""
    return key in (
        TAG_STATUS,
        TAG_CAUSES,
        TAG_ADVISORIES,
        TAG_RECOMMENDATION,
        TAG_AUDITED_AT,
        TAG_VERSION,
        TAG_RULESET,
    ) or key.startswith(TAG_CAUSE_PREFIX)


# -- artifacts ------------------------------------------------------------------------------------


def _artifact_files(result: AuditResult) -> dict[str, str]:
    files = {os.path.basename(AUDIT_ARTIFACT): json.dumps(result.to_dict(), indent=2, sort_keys=False)}
    if result.report_html is not None:
        files[os.path.basename(REPORT_ARTIFACT)] = result.report_html
    return files


def _local_dir(artifact_uri: str) -> str | None:
    """The directory of a run's artifacts when they live on this machine's file system."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return artifact_uri
    return None


def write_artifacts(result: AuditResult, artifact_uri: str, tracking_uri: str, client=None) -> None:
    """`nnaudit/audit.json` (and `nnaudit/report.html` when the result carries its page) into the
    run's artifact location. A local location is written directly (each file complete or absent:
    written aside, then renamed); any other through MLflow's artifact repository for that
    location, without asking the store for the run again; with no known location, through the
    client (one `get_run` more)."""
    files = _artifact_files(result)
    folder = os.path.dirname(AUDIT_ARTIFACT)
    local = _local_dir(artifact_uri) if artifact_uri else None
    if local is not None:
        target = os.path.join(local, folder)
        os.makedirs(target, exist_ok=True)
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=target)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, os.path.join(target, name))
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        return
    with tempfile.TemporaryDirectory(prefix="nnaudit-") as tmp:
        for name, text in files.items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as fh:
                fh.write(text)
        if artifact_uri:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
            from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

            uri = add_databricks_profile_info_to_artifact_uri(artifact_uri, tracking_uri)
            get_artifact_repository(uri, tracking_uri=tracking_uri).log_artifacts(tmp, folder)
        else:
            client.log_artifacts(result.run_id, tmp, folder)


def write_artifacts_noted(result: AuditResult, artifact_uri: str, tracking_uri: str, client=None) -> bool:
    """`write_artifacts`, except that a location that cannot be written (a file where a folder
    should be, no permission, a bucket that refuses) does not stop the audit: the run keeps its
    tags, its result says why its artifacts are missing (`artifacts_error`, and a note).
    Returns whether they were written."""
    try:
        write_artifacts(result, artifact_uri, tracking_uri, client)
        return True
    except Exception as exc:  # noqa: BLE001 - one run's artifact location must not stop every later run
        text = str(exc).strip().splitlines()
        result.artifacts_error = f"{type(exc).__name__}: {text[0][:300] if text else ''}"
        result.notes.append(f"artifacts not written ({result.artifacts_error}); the tags were")
        _log.warning("run %s: artifacts not written (%s); its tags are", result.run_id, result.artifacts_error)
        return False


# -- tags through the client ------------------------------------------------------------------------


def write_tags(client, result: AuditResult, existing_tags: dict[str, str]) -> None:
    """One run's tags through the MLflow client: every new tag in one batch (one transaction on
    the store's side), then the cause tags of an earlier audit that no longer apply. A tag
    already gone (another audit at the same time removed it) is not an error."""
    from mlflow.entities import RunTag

    tags = audit_tags(result)
    stale = [k for k in existing_tags if k.startswith(TAG_CAUSE_PREFIX) and k not in tags]
    # the same batch empties the stale cause tags (a REST store cannot delete in a batch): if
    # the audit stops before their removal below, what is left matches no confidence filter
    # (`tags.`nnaudit.cause.<id>` = 'high'`), and the next audit sees the mismatch and removes it
    items = [RunTag(k, v) for k, v in tags.items()] + [RunTag(k, WITHDRAWN) for k in stale]
    for i in range(0, len(items), _MAX_TAGS_PER_BATCH):
        client.log_batch(result.run_id, tags=items[i : i + _MAX_TAGS_PER_BATCH], synchronous=True)
    for key in stale:
        try:
            client.delete_tag(result.run_id, key)
        except Exception as exc:
            if "No tag with name" not in str(exc) and "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                raise


def write_result(client, result: AuditResult, existing_tags: dict[str, str]) -> None:
    """Store one run's audit through the client: the artifacts, then the tags (`write_tags`)."""
    write_artifacts(result, "", client.tracking_uri, client)
    write_tags(client, result, existing_tags)


# -- tags straight into SQL stores ------------------------------------------------------------------


class SqlTagWriter:
    """Writes the tags of many runs in one transaction of MLflow's `tags` table (sqlite and
    PostgreSQL stores whose schema version the bulk reader was verified on): per run, its
    `nnaudit.cause.*` tags are removed and every new tag inserted or updated, for all the runs
    of a chunk at once. Each chunk's transaction commits whole or not at all. Values go
    through MLflow's own tag validation. Runs deleted since they were listed are left alone."""

    def __init__(self, uri: str) -> None:
        from mlflow_nnaudit.auditor import bulk

        if not bulk.supports(uri):
            raise bulk.BulkUnavailable(f"SQL tag writing supports sqlite and PostgreSQL, not {bulk.scheme(uri)!r}")
        self.uri = uri
        self.dialect = bulk.scheme(uri)
        self._engine = None
        self._checked = False

    def _connect_sqlite(self) -> sqlite3.Connection:
        path = self.uri.split(":///", 1)[1].split("?", 1)[0]
        # autocommit mode: the transaction is the explicit BEGIN IMMEDIATE below
        return sqlite3.connect(path, timeout=SQLITE_LOCK_TIMEOUT, isolation_level=None)

    def _check_schema(self, rows) -> None:
        from mlflow_nnaudit.auditor import bulk

        versions = sorted({r[0] for r in rows})
        if len(versions) != 1 or versions[0] not in bulk.VERIFIED_SCHEMA_VERSIONS:
            raise bulk.BulkUnavailable(
                f"schema version {', '.join(versions) or 'none'} is not one SQL tag "
                f"writing was verified on ({', '.join(sorted(bulk.VERIFIED_SCHEMA_VERSIONS))})"
            )
        self._checked = True

    def write(self, items: Iterable[tuple[AuditResult, dict[str, str]]]) -> None:
        """Tags for (result, tags the run had when listed) pairs, in one transaction."""
        from mlflow.utils.validation import _validate_tag

        rows = []
        for result, _existing in items:
            for key, value in audit_tags(result).items():
                tag = _validate_tag(key, value)
                rows.append((tag.key, tag.value, result.run_id))
        run_ids = sorted({r[2] for r in rows})
        if not run_ids:
            return
        if self.dialect == "sqlite":
            self._write_sqlite(run_ids, rows)
        else:
            self._write_postgres(run_ids, rows)

    def _write_sqlite(self, run_ids: list[str], rows: list[tuple[str, str, str]]) -> None:
        con = self._connect_sqlite()
        try:
            con.execute("BEGIN IMMEDIATE")  # the write lock now, not half-way (no deadlock with readers)
            try:
                if not self._checked:
                    self._check_schema(con.execute("SELECT version_num FROM alembic_version").fetchall())
                marks = ",".join("?" * len(run_ids))
                active = {
                    r[0]
                    for r in con.execute(
                        f"SELECT run_uuid FROM runs WHERE lifecycle_stage = 'active' AND run_uuid IN ({marks})", run_ids
                    )
                }
                con.execute(
                    f"DELETE FROM tags WHERE run_uuid IN ({marks}) AND substr(key, 1, ?) = ?",
                    [*run_ids, len(TAG_CAUSE_PREFIX), TAG_CAUSE_PREFIX],
                )
                con.executemany(
                    "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
                    "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
                    [r for r in rows if r[2] in active],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()

    def _write_postgres(self, run_ids: list[str], rows: list[tuple[str, str, str]]) -> None:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        if self._engine is None:
            self._engine = sa.create_engine(self.uri, poolclass=NullPool)
        ids = sa.bindparam("ids", expanding=True)
        with self._engine.begin() as conn:  # one transaction: commits whole, or rolls back
            if not self._checked:
                self._check_schema(conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall())
            active = {
                r[0]
                for r in conn.execute(
                    sa.text(
                        "SELECT run_uuid FROM runs WHERE lifecycle_stage = 'active' AND run_uuid IN :ids "
                        "ORDER BY run_uuid FOR UPDATE"
                    ).bindparams(ids),
                    {"ids": run_ids},
                )
            }
            conn.execute(
                sa.text("DELETE FROM tags WHERE run_uuid IN :ids AND substr(key, 1, :n) = :prefix").bindparams(ids),
                {"ids": run_ids, "n": len(TAG_CAUSE_PREFIX), "prefix": TAG_CAUSE_PREFIX},
            )
            # one INSERT for the whole chunk: a text() executemany is one statement and one
            # round trip per tag through psycopg2 (~2,000 a chunk; 1.8 s of client and 1.0 s of
            # server CPU per 2,000 runs), three arrays unnested are one. A (key, run) pair
            # twice would make ON CONFLICT fail ("cannot affect row a second time"): the last
            # value wins, as it did row after row.
            kept = {(k, r): v for k, v, r in rows if r in active}
            if kept:
                conn.execute(
                    sa.text(
                        "INSERT INTO tags (key, value, run_uuid) "
                        "SELECT * FROM unnest(CAST(:k AS text[]), CAST(:v AS text[]), CAST(:r AS text[])) "
                        "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value"
                    ),
                    {"k": [k for k, _ in kept], "v": list(kept.values()), "r": [r for _, r in kept]},
                )

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
