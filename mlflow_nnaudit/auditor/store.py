"""Reading an MLflow tracking store: which runs to audit, their metric histories, and the
recorder's artifacts. The first stage of the audit; knows nothing of statistics or rules.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import logging
import os
import re
import sqlite3
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mlflow_nnaudit.auditor import bulk, file_bulk, rest_bulk
from mlflow_nnaudit.auditor.curves import Curve

_log = logging.getLogger(__name__)

#: runs an ambiguous id prefix lists (`nnaudit explain`)
MAX_LISTED_MATCHES = 10

#: run statuses worth auditing: finished, and the crashed or killed ones most of all
AUDITABLE_STATUSES = ("FINISHED", "FAILED", "KILLED")


class StoreError(Exception):
    """The store cannot be used: unreachable, missing, unreadable, or an unknown experiment.
    Its message is one line meant for the user."""


@dataclass
class RunRecord:
    """What the audit needs to know about a run before reading its curves."""

    run_id: str
    run_name: str
    experiment_id: str
    experiment_name: str
    status: str
    start_time: int | None
    end_time: int | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metric_keys: list[str] = field(default_factory=list)
    latest_metric_ms: int | None = None  # timestamp of the newest metric point
    metric_steps: dict[str, int] = field(default_factory=dict, repr=False)  # latest step per metric key
    artifact_uri: str = ""  # where the run's artifacts go ("" when unknown: the writer asks the store)


@dataclass
class ExperimentRecord:
    """An experiment as the audit needs it (read in SQL; otherwise MLflow's `Experiment`, which
    has the same attributes)."""

    experiment_id: str
    name: str
    lifecycle_stage: str


def resolve_tracking_uri(uri: str | None) -> str:
    """`uri`, or MLflow's usual resolution when None (`mlflow.get_tracking_uri()`: a URI set in
    this process, then `MLFLOW_TRACKING_URI`, then its default), importing MLflow (~2 s) only
    when the environment does not answer: with MLflow not imported yet, no URI was set here."""
    if uri:
        return uri
    if "mlflow" not in sys.modules and os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    import mlflow

    return mlflow.get_tracking_uri()


def sqlite_path(uri: str) -> str | None:
    """The database file of a `sqlite:///` URI (None for other stores and in-memory databases)."""
    if urllib.parse.urlparse(uri).scheme.split("+")[0] != "sqlite" or ":///" not in uri:
        return None
    path = uri.split(":///", 1)[1].split("?", 1)[0]
    return path if path and path != ":memory:" else None


#: URI schemes of the stores MLflow's client can read (a `+driver` suffix aside)
KNOWN_SCHEMES = (
    "",
    "file",
    "sqlite",
    "postgresql",
    "postgres",
    "mysql",
    "mssql",
    "http",
    "https",
    "databricks",
    "databricks-uc",
    "uc",
)


def _check_uri(uri: str) -> None:
    """Fail fast, with a one-line reason, on a store that does not exist or cannot be reached.

    MLflow itself would create an empty sqlite file for a mistyped path (and a later audit
    would find nothing), and retry an unreachable server for minutes.
    """
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in KNOWN_SCHEMES and not (len(scheme) == 1 and os.name == "nt"):  # C:\... on Windows
        raise StoreError(
            f"cannot read a store at {_redacted(uri)}: unknown URI scheme {scheme + '://'!r} (a "
            "store is a directory, sqlite:///FILE, postgresql://..., mysql://..., http(s)://SERVER "
            "or databricks)"
        )
    if scheme == "sqlite":
        path = sqlite_path(uri)
        if path and not os.path.exists(path):
            raise StoreError(f"no MLflow store at {uri}: the sqlite file {path!r} does not exist")
        if path:
            _check_sqlite_tables(uri, path)
    elif scheme in ("", "file"):
        path = parsed.path if scheme == "file" else uri
        if not os.path.isdir(path):
            raise StoreError(f"no MLflow store at {uri}: {path!r} is not a directory")
    elif scheme in ("http", "https"):
        # urllib takes no user:password@ in a URL (MLflow's client does): send them as Basic auth
        request = urllib.request.Request(
            urllib.parse.urlunparse(
                parsed._replace(
                    netloc=parsed.netloc.rpartition("@")[2],
                    path=parsed.path.rstrip("/") + "/health",
                    params="",
                    query="",
                    fragment="",
                )
            )
        )
        if parsed.username is not None:
            creds = f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}"
            request.add_header("Authorization", "Basic " + base64.b64encode(creds.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError:
            pass  # the server answered (maybe behind auth); the API calls will tell the rest
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreError(f"cannot reach the tracking server at {_redacted(uri)}: {reason}") from None


#: tables every MLflow tracking database has (since MLflow 1.x); a file without them is not a store
MLFLOW_TABLES = ("experiments", "runs", "metrics", "tags", "alembic_version")


def _check_sqlite_tables(uri: str, path: str) -> None:
    """Refuse a sqlite file that is not an MLflow store (an empty file, another application's
    database) before MLflow sees it: MLflow would create its schema in it, even for a dry run.
    Looked at through a read-only connection, so the file stays byte-identical."""
    try:
        con = sqlite3.connect("file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro", uri=True, timeout=5)
        try:
            names = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        what = "locked by another process (try again when it is done)" if "locked" in str(exc) else str(exc)
        raise StoreError(f"cannot read the sqlite file {path!r} of {_redacted(uri)}: {what}") from None
    missing = [t for t in MLFLOW_TABLES if t not in names]
    if missing:
        kind = f"a sqlite database without MLflow's tables ({', '.join(missing)})" if names else "an empty sqlite file"
        raise StoreError(f"no MLflow store at {_redacted(uri)}: {path!r} is {kind}; nothing was written to it")


def _redacted(uri: str) -> str:
    """The URI without its password, for logs."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.replace(":" + parsed.password + "@", ":***@", 1)
    return urllib.parse.urlunparse(parsed._replace(netloc=netloc))


def redact_secrets(text: str, uri: str | None) -> str:
    """`text` with the password of `uri` (as written, and URL-decoded) replaced by ***: MLflow's
    messages quote the URI they were given, password and all."""
    if not uri:
        return text
    try:
        password = urllib.parse.urlparse(uri).password
    except ValueError:
        return text
    for secret in {password or "", urllib.parse.unquote(password or "")}:
        if len(secret) >= 1:
            text = text.replace(":" + secret + "@", ":***@")
            if len(secret) >= 4:
                text = text.replace(secret, "***")
    return text


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


@contextlib.contextmanager
def _no_download_bar():
    """MLflow draws a progress bar per artifact download: one line per run in an audit's output
    (and in cron logs). Off while the audit downloads, restored after."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _record(run, experiment_name: str) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        experiment_id=run.info.experiment_id,
        experiment_name=experiment_name,
        status=run.info.status,
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metric_keys=sorted(run.data.metrics),
        latest_metric_ms=max((m.timestamp for m in run.data._metric_objs), default=None),
        metric_steps={m.key: int(m.step) for m in run.data._metric_objs},
        artifact_uri=run.info.artifact_uri or "",
    )


class Store:
    """A read view of one tracking store, plus the client the writer uses.

    Metric histories are read through the MLflow client, run by run and key by key, except on
    sqlite and PostgreSQL stores, where `prefetch` reads a whole chunk of runs with one SQL
    query (auditor/bulk.py), and on tracking servers, where it asks the server's bulk history
    endpoint for groups of runs in parallel, and on `./mlruns` file stores, where it reads the
    metric files directly (auditor/file_bulk.py); `load_curves` serves those.
    `close()` releases the reader.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.uri = resolve_tracking_uri(tracking_uri)
        _check_uri(self.uri)
        self._client = None
        self._cache: dict[tuple[str, str], Curve] = {}
        # Bulk reading: one SELECT per chunk of runs on SQL stores, the server's bulk endpoint on
        # http(s) servers, the metric files of file: stores; None keeps the client path (MySQL).
        self._bulk: bulk.SqlBulkReader | rest_bulk.RestBulkReader | file_bulk.FileBulkReader | None = None
        # On a sqlite or PostgreSQL store that MLflow's client would open unchanged, experiments and
        # runs are listed in SQL and the client (importing MLflow, its schema check: ~3 s, most of
        # the second audit of an unchanged store) is made only when something needs it.
        self._client_checked = True  # made by `_open_client`, with its check and its errors
        if bulk.supports(self.uri):
            reader = bulk.SqlBulkReader(self.uri)
            if reader.opens_as_mlflow_would():
                self._bulk, self._client_checked = reader, False
                return
            reader.close()
        self._client = self._open_client()
        if bulk.supports(self.uri):
            self._bulk = bulk.SqlBulkReader(self.uri)
        elif rest_bulk.supports(self.uri):
            self._bulk = rest_bulk.RestBulkReader(self._client)
        elif file_bulk.file_store_root(self.uri) is not None:
            self._bulk = file_bulk.FileBulkReader(file_bulk.file_store_root(self.uri))

    def _open_client(self):
        """MLflow's client for the store, checked with one read; StoreError when it cannot be used."""
        from mlflow.tracking import MlflowClient

        try:
            client = MlflowClient(tracking_uri=self.uri)
            client.search_experiments(max_results=1)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure here means "cannot read the store"
            if "MLFLOW_ALLOW_FILE_STORE" in str(exc):
                raise StoreError(
                    f"{self.uri} is a file store, which this MLflow version reads only with "
                    "MLFLOW_ALLOW_FILE_STORE=true set (or migrate it: `mlflow migrate-filestore`)"
                ) from None
            hint = ""
            if "error code 401" in str(exc) or "error code 403" in str(exc):
                hint = (
                    " (the server wants credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD,"
                    " or MLFLOW_TRACKING_TOKEN, for a user allowed to read and tag these runs)"
                )
            raise StoreError(f"cannot read the MLflow store at {_redacted(self.uri)}: {_one_line(exc)}{hint}") from None
        return client

    @classmethod
    def sql_reader(cls, uri: str) -> Store:
        """A Store for an audit's worker process on a sqlite or PostgreSQL store the main process
        has already opened and checked: its bulk reader only, with MLflow's client made (and
        MLflow imported, ~170 MB a process) only if something asks for it (a fallback read, a
        recorder's diagnostics artifact, an artifact location that is not local)."""
        self = cls.__new__(cls)
        self.uri = uri
        self._client = None
        self._client_checked = True  # the main process checked the store: a plain client will do
        self._bulk = bulk.SqlBulkReader(uri)
        self._cache = {}
        return self

    @property
    def client(self):
        """MLflow's client for this store (made on first use by a `sql_reader` Store, and by a
        Store on a SQL store that MLflow's client would open unchanged)."""
        if self._client is None:
            if self._client_checked:
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(tracking_uri=self.uri)
            else:
                self._client = self._open_client()
        return self._client

    @property
    def has_client(self) -> bool:
        """Whether MLflow's client has been made (it is made on first use where it can wait)."""
        return self._client is not None

    @client.setter
    def client(self, value) -> None:
        self._client = value

    @property
    def bulk_enabled(self) -> bool:
        """Whether `prefetch` reads through bulk SQL (False once it has fallen back)."""
        return self._bulk is not None

    def prefetch(self, runs: list[RunRecord], keys_by_run: dict[str, list[str]] | None = None) -> None:
        """Read the histories `load_curves` will be asked for next, for a chunk of runs at once.

        `keys_by_run` maps run ids to metric keys (each run's `metric_keys` when None). Replaces
        whatever an earlier prefetch left, so memory holds one chunk. On stores without bulk
        reading this does nothing; on a database error or an unverified schema version it logs
        one warning and the store reads through the MLflow client from then on. Either way
        `load_curves` returns the same curves, only slower.
        """
        self._cache = {}
        if self._bulk is None or not runs:
            return
        if keys_by_run is None:
            keys_by_run = {run.run_id: list(run.metric_keys) for run in runs}
        wanted = {run.run_id: keys_by_run.get(run.run_id, []) for run in runs}
        try:
            if isinstance(self._bulk, rest_bulk.RestBulkReader):
                # points per curve, estimated from the latest step, to fill each request
                sizes = {(run.run_id, k): run.metric_steps.get(k, 0) + 1 for run in runs for k in wanted[run.run_id]}
                self._cache = self._bulk.read(wanted, sizes)
            elif isinstance(self._bulk, file_bulk.FileBulkReader):
                self._cache = self._bulk.read(wanted, {run.run_id: run.experiment_id for run in runs})
            else:
                self._cache = self._bulk.read(wanted)
        except Exception as exc:  # noqa: BLE001 - any failure means: use the client API instead
            _log.warning(
                "bulk reading of metric histories from %s is off (%s); reading them through the "
                "MLflow client instead (slower, same results)",
                _redacted(self.uri),
                _one_line(exc),
            )
            self._disable_bulk()

    def _disable_bulk(self) -> None:
        if self._bulk is not None:
            try:
                self._bulk.close()
            except Exception:  # noqa: BLE001 - closing a broken engine must not hide the fallback
                pass
            self._bulk = None
        self._cache = {}

    def close(self) -> None:
        """Release the bulk reader's engine and the prefetched curves (the client needs nothing)."""
        if self._bulk is not None:
            self._bulk.close()
        self._cache = {}

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def experiments(self, names: list[str] | tuple[str, ...] = ()) -> list:
        """The named experiments (every one must exist), or all active ones when none is named."""
        if self._client is None and isinstance(self._bulk, bulk.SqlBulkReader):
            found = self._experiments_sql(names)
            if found is not None:
                return found
        if not names:
            return list(self.client.search_experiments())
        found = []
        for name in names:
            exp = self.client.get_experiment_by_name(name)
            if exp is None and name.isdigit():
                try:
                    exp = self.client.get_experiment(name)
                except Exception:  # noqa: BLE001 - not an id either
                    exp = None
            if exp is None or exp.lifecycle_stage != "active":
                raise StoreError(f"unknown experiment {name!r} in {_redacted(self.uri)}")
            found.append(exp)
        return found

    def _experiments_sql(self, names: list[str] | tuple[str, ...]) -> list[ExperimentRecord] | None:
        """`experiments`, read in SQL as the client reads them (None on any database error: the
        client then answers, as it always did)."""
        try:
            if not names:
                return [ExperimentRecord(*row) for row in self._bulk.active_experiments()]
            rows = []
            for name in names:
                row = self._bulk.experiment(name=name)
                if row is None and name.isdigit():
                    row = self._bulk.experiment(experiment_id=int(name))
                rows.append(row)
        except Exception:  # noqa: BLE001 - the client's answer (or error) instead
            return None
        for name, row in zip(names, rows):
            if row is None or row[2] != "active":
                raise StoreError(f"unknown experiment {name!r} in {_redacted(self.uri)}")
        return [ExperimentRecord(*row) for row in rows]

    def count_runs(self, experiments: list, since_ms: int | None = None) -> int | None:
        """How many runs `iter_runs` will yield, when the store can say cheaply (SQL stores);
        None otherwise. For progress display only."""
        if not isinstance(self._bulk, bulk.SqlBulkReader) or not experiments:
            return None
        try:
            return self._bulk.count_runs([e.experiment_id for e in experiments], AUDITABLE_STATUSES, since_ms)
        except Exception:  # noqa: BLE001 - a count is a nicety: without it progress shows no total
            return None

    def get_run(self, run_id: str) -> RunRecord:
        """One run by id, or by a unique prefix of its id as the audit's table prints it,
        whatever its status (for `nnaudit explain`)."""
        run_id = run_id.strip()
        try:
            run = self.client.get_run(run_id)
        except Exception as exc:  # noqa: BLE001 - unknown id, or a prefix of one
            run = self._run_by_prefix(run_id, exc)
        exp = self.client.get_experiment(run.info.experiment_id)
        return _record(run, exp.name if exp else "")

    def _run_by_prefix(self, prefix: str, error: Exception):
        from mlflow.entities import ViewType

        if not re.fullmatch(r"[0-9a-f]{1,31}", prefix):
            raise StoreError(f"no run {prefix!r} in {_redacted(self.uri)}: {_one_line(error)}") from None
        exp_ids, token = [], None
        while True:  # every page of experiments (search_runs takes at most 100 ids a call, see below)
            page = self.client.search_experiments(view_type=ViewType.ALL, page_token=token)
            exp_ids += [e.experiment_id for e in page]
            token = page.token
            if not token:
                break
        found = []
        for lo in range(0, len(exp_ids), 100):
            found += self.client.search_runs(
                exp_ids[lo : lo + 100],
                f"attributes.run_id LIKE '{prefix}%'",
                ViewType.ALL,
                max_results=MAX_LISTED_MATCHES + 1,
            )
            if len(found) > MAX_LISTED_MATCHES:
                break
        if not found:
            raise StoreError(f"no run whose id starts with {prefix!r} in {_redacted(self.uri)}") from None
        if len(found) > 1:
            listed = ", ".join(f"{r.info.run_id} ({r.info.run_name or '-'})" for r in found[:MAX_LISTED_MATCHES])
            more = " and more" if len(found) > MAX_LISTED_MATCHES else ""
            raise StoreError(
                f"{prefix!r} is ambiguous: it starts the ids of {len(found[:MAX_LISTED_MATCHES])}"
                f"{more} runs in {_redacted(self.uri)}: {listed}{more}; give more of the id"
            ) from None
        return found[0]

    def iter_runs(self, experiments: list, since_ms: int | None = None) -> Iterator[RunRecord]:
        """Every active (not deleted) run of the experiments whose status is auditable,
        newest first, page by page (bulk SQL on SQL stores, else MLflow's search)."""
        names = {e.experiment_id: e.name for e in experiments}
        if not names:
            return
        if isinstance(self._bulk, bulk.SqlBulkReader):
            listed = self._bulk.list_runs(list(names), AUDITABLE_STATUSES, since_ms)
            try:
                first = next(listed, None)
            except Exception as exc:  # noqa: BLE001 - as for prefetch: the client path gives the same runs
                _log.warning(
                    "bulk reading from %s is off (%s); listing runs and reading metric histories "
                    "through the MLflow client instead (slower, same results)",
                    _redacted(self.uri),
                    _one_line(exc),
                )
                self._disable_bulk()  # one warning: prefetch will not try again
            else:
                for d in itertools.chain([first] if first is not None else [], listed):
                    yield RunRecord(
                        run_id=d["run_id"],
                        run_name=d["run_name"],
                        experiment_id=d["experiment_id"],
                        experiment_name=names.get(d["experiment_id"], ""),
                        status=d["status"],
                        start_time=d["start_time"],
                        end_time=d["end_time"],
                        tags=d["tags"],
                        params=d["params"],
                        metric_keys=sorted(d["metrics"]),
                        latest_metric_ms=max((t for _, t in d["metrics"].values()), default=None),
                        metric_steps={k: step for k, (step, _) in d["metrics"].items()},
                        artifact_uri=d["artifact_uri"],
                    )
                return
        yield from self._iter_runs_client(names, since_ms)

    def _iter_runs_client(self, names: dict[str, str], since_ms: int | None) -> Iterator[RunRecord]:
        from mlflow.entities import ViewType

        # MLflow's search grammar has no OR/IN for statuses: they are filtered here instead.
        filt = f"attributes.end_time >= {since_ms}" if since_ms else ""
        token = None
        while True:
            page = self.client.search_runs(
                experiment_ids=list(names),
                filter_string=filt,
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=1000,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            for run in page:
                if run.info.status not in AUDITABLE_STATUSES:
                    continue
                yield _record(run, names.get(run.info.experiment_id, ""))
            token = page.token
            if not token:
                break

    def load_curve(self, run_id: str, key: str) -> Curve:
        """The full history of one metric (NaN and MLflow's Inf stand-ins preserved)."""
        hist = self.client.get_metric_history(run_id, key)
        steps = np.fromiter((m.step for m in hist), dtype=float, count=len(hist))
        values = np.fromiter((m.value for m in hist), dtype=float, count=len(hist))
        stamps = np.fromiter((m.timestamp for m in hist), dtype=float, count=len(hist))
        return Curve(key, steps, values, stamps)

    def load_curves(self, run: RunRecord, keys: list[str] | None = None) -> dict[str, Curve]:
        """Histories for the given keys (all of the run's metrics when None): the prefetched ones
        from the cache (each served once), the others through the client."""
        out = {}
        for key in keys if keys is not None else run.metric_keys:
            curve = self._cache.pop((run.run_id, key), None)
            out[key] = curve if curve is not None else self.load_curve(run.run_id, key)
        return out

    def load_json_artifact(self, run_id: str, path: str) -> dict | None:
        """A JSON artifact of the run (e.g. the recorder's `nnaudit/diagnostics.json`), or None."""
        import mlflow.artifacts

        try:
            with tempfile.TemporaryDirectory() as tmp, _no_download_bar():
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=self.uri
                )
                with open(local, encoding="utf-8") as fh:
                    return json.load(fh)
        except Exception:  # noqa: BLE001 - a missing or unreadable artifact is simply absent evidence
            return None
