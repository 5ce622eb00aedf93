"""`nnaudit`: the command line. Thin: parse options, call the library, print."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time

import click

from mlflow_nnaudit._version import __version__


def _parse_roles(values: tuple[str, ...]) -> dict[str, str]:
    from mlflow_nnaudit.auditor.curves import ROLES

    roles = {}
    for v in values:
        role, sep, key = v.partition("=")
        if not sep or not role.strip() or not key.strip():
            raise click.BadParameter(f"{v!r}: expected ROLE=METRIC_KEY, e.g. train_loss=my_loss", param_hint="--role")
        if role.strip() not in ROLES:
            raise click.BadParameter(
                f"{v!r}: unknown role {role.strip()!r}; roles are: {', '.join(ROLES)}", param_hint="--role"
            )
        roles[role.strip()] = key.strip()
    return roles


def _roles_option(ctx, param, value) -> dict[str, str]:
    """--role, checked while click parses the command line: a bad one is a usage error (exit 2)."""
    return _parse_roles(value or ())


def _since_option(ctx, param, value):
    """--since, checked while click parses the command line (the audit reads the string again)."""
    if value is None:
        return None
    from mlflow_nnaudit.auditor.runner import parse_since

    try:
        parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


class _Progress:
    """A progress bar on stderr while auditing (runs done, rate, time left when the total is
    known, failures so far), only when stderr is a terminal: quiet in cron logs and pipes."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.n = 0
        self.total: int | None = None
        self.failed = 0
        self.t0 = time.monotonic()
        self._last = 0.0

    def start(self, total: int | None) -> None:
        self.total = total
        self.t0 = time.monotonic()

    def __call__(self, result) -> None:
        self.n += 1
        self.failed += result.status == "failed"
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.1 or self.n == self.total):
            self._last = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.t0, 1e-9)
        rate = self.n / elapsed
        tail = f"{rate:,.0f} runs/s, {self.failed} failed"
        if self.total:
            done = min(self.n / self.total, 1.0)
            bar = "#" * int(done * 30)
            left = (self.total - self.n) / rate if rate > 0 else 0
            return f"[{bar:<30}] {self.n:,}/{self.total:,} runs, {tail}, ~{left:,.0f} s left"
        return f"audited {self.n:,} runs, {tail}"

    def close(self) -> None:
        if self.enabled and self.n:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def format_table(results) -> str:
    """Results as a plain-text table, worst first, then the counts by status and by cause."""
    from mlflow_nnaudit.auditor.report import printable, summarize, worst_first

    rows = [("RUN", "RUN ID", "EXPERIMENT", "STATUS", "CAUSES")]
    for r in worst_first(results):
        causes = ",".join(r.causes) or (f"advisory: {','.join(r.advisories)}" if r.advisories else "")
        causes += " (unchanged)" if r.skipped else ""
        rows.append(
            tuple(
                printable(cell)
                for cell in (r.run_name or "-", r.run_id[:12], r.experiment_name, r.status, causes or "-")
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows]
    s = summarize(results)
    lines.append("")
    lines.append(
        f"{s['runs']} runs: "
        + (", ".join(f"{n} {st}" for st, n in s["by_status"].items()) or "none")
        + (f" ({s['skipped_unchanged']} unchanged since their last audit)" if s["skipped_unchanged"] else "")
    )
    if s["by_cause"]:
        lines.append("causes: " + ", ".join(f"{c} {n}" for c, n in s["by_cause"].items()))
    if s["by_advisory"]:
        lines.append("advisories (healthy runs): " + ", ".join(f"{c} {n}" for c, n in s["by_advisory"].items()))
    if s["artifacts_not_written"]:
        lines.append(
            f"artifacts not written for {len(s['artifacts_not_written'])} run(s) (tags written; see each "
            "run's notes in --format json): " + ", ".join(rid[:12] for rid in s["artifacts_not_written"][:10])
        )
    return "\n".join(lines)


_FAIL_ON = {
    "failed": ("failed",),
    "warning": ("failed", "warning"),
    "inconclusive": ("failed", "warning", "inconclusive"),
}
#: exit status when --fail-on finds a run at or above its level (1 is an error, 2 bad usage)
EXIT_FOUND = 3


def _parse_shard(ctx, param, value):
    if value is None:
        return None
    from mlflow_nnaudit.auditor.runner import parse_shard

    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
@click.version_option(__version__, prog_name="nnaudit")
def main() -> None:
    """Find out why PyTorch training runs failed, and tag them in MLflow."""


_tracking_uri_option = click.option(
    "--tracking-uri", metavar="URI", help="MLflow store; default: MLFLOW_TRACKING_URI, then sqlite:///mlflow.db."
)
_role_option = click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE=KEY",
    callback=_roles_option,
    help="Say which metric plays a role, e.g. --role train_loss=my_loss (roles: train_loss, val_loss, "
    "train_acc, val_acc, lr, grad_norm, val_r2).",
)


_EXIT_CODES = f"""\b
Exit status:
  0  the audit ran (whatever it found, unless --fail-on)
  1  error, one line: the store is missing, unreachable, locked or not
     MLflow's; or the audit stopped half-way (run it again to finish)
  2  usage error (an option's value cannot be read)
  {EXIT_FOUND}  --fail-on found a run at its level"""


@main.command(epilog=_EXIT_CODES)
@_tracking_uri_option
@click.option(
    "--experiment", "experiments", multiple=True, metavar="NAME", help="Experiment to audit (repeatable); default: all."
)
@click.option(
    "--since", metavar="DURATION", callback=_since_option, help="Only runs that ended within this time, e.g. 24h, 7d."
)
@click.option("--force", is_flag=True, help="Re-audit runs already audited with no new data since.")
@click.option("--dry-run", is_flag=True, help="Print what would be tagged; write nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_role_option
@click.option(
    "--config",
    metavar="FILE",
    help="TOML file with a [roles] table (default: nnaudit.toml, then "
    "[tool.nnaudit.roles] in pyproject.toml, if present).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=lambda: os.cpu_count() or 1,
    show_default="the machine's cores",
    help="Processes auditing chunks of runs in parallel (1: all in this process).",
)
@click.option(
    "--shard",
    metavar="K/N",
    callback=_parse_shard,
    help="Audit only part K of N of the store (stable split by run id), e.g. 1/4 on the first of four pods.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Also write the summary as an HTML page with plots to FILE.",
)
@click.option(
    "--ui-url",
    metavar="URL",
    help="MLflow UI the summary page links runs to; default: the tracking "
    "server, or http://127.0.0.1:5000 (`mlflow ui`) for other stores.",
)
@click.option(
    "--fail-on",
    type=click.Choice(list(_FAIL_ON)),
    default=None,
    help=f"Exit with status {EXIT_FOUND} if a run of this audit's window (audited now, or unchanged since "
    "its last audit) is this bad or worse (for pipelines).",
)
def audit(
    tracking_uri, experiments, since, force, dry_run, fmt, roles, config, workers, shard, report_path, ui_url, fail_on
) -> None:
    """Audit finished runs and tag each with nnaudit.status, nnaudit.causes, ..."""
    from mlflow_nnaudit.auditor.report import printable
    from mlflow_nnaudit.auditor.runner import audit as run_audit
    from mlflow_nnaudit.auditor.store import StoreError, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)  # MLflow is imported only if a run needs it
    role_map = roles
    if report_path:
        _check_report_path(report_path, uri)
    _bound_and_quiet()
    progress = _Progress()
    try:
        results = run_audit(
            tracking_uri=tracking_uri,
            experiments=experiments,
            since=since,
            force=force,
            dry_run=dry_run,
            roles=role_map,
            on_progress=progress,
            workers=workers,
            shard=shard,
            on_start=progress.start,
            config=config,
            sparklines=bool(report_path),
        )
    except (StoreError, ValueError) as exc:
        raise _error(str(exc), uri) from None
    except Exception as exc:
        if os.environ.get("NNAUDIT_DEBUG"):
            raise
        raise _error(
            f"the audit stopped after {progress.n:,} runs: {_one_line(exc)} ({type(exc).__name__}). "
            "The runs written before it keep their tags; run the same command again to finish "
            "(NNAUDIT_DEBUG=1 shows the traceback)",
            uri,
        ) from None
    finally:
        progress.close()
    if fmt == "json":
        from mlflow_nnaudit.auditor.report import summarize

        runs = [r.to_dict() | {"skipped": r.skipped} for r in results]
        click.echo(json.dumps({"summary": summarize(results), "runs": runs}, indent=2))
    else:
        click.echo(format_table(results))
        if dry_run:
            click.echo("(dry run: nothing was written)")
    if report_path:
        from mlflow_nnaudit.auditor.report import summary_html

        _write_report(report_path, summary_html(results, _redacted(uri), ui_url=ui_url or default_ui_url(uri)))
        click.echo(f"summary page: {printable(report_path)}", err=True)
    if fail_on:
        # every run of the window counts: a failed run left unchanged since last night is still failed
        bad = [r for r in results if r.status in _FAIL_ON[fail_on]]
        if bad:
            kept = sum(r.skipped for r in bad)
            click.echo(
                f"{len(bad)} run(s) of this audit are {' or '.join(_FAIL_ON[fail_on])} ({len(bad) - kept} "
                f"audited now, {kept} unchanged since their last audit)",
                err=True,
            )
            sys.exit(EXIT_FOUND)


#: where `mlflow ui` serves a local store
LOCAL_UI = "http://127.0.0.1:5000"


def default_ui_url(tracking_uri: str) -> str:
    """The MLflow UI of a store: a tracking server serves its own (its URL without credentials),
    other stores are seen through `mlflow ui` on its default address."""
    import urllib.parse

    parsed = urllib.parse.urlparse(tracking_uri)
    if parsed.scheme in ("http", "https"):
        return urllib.parse.urlunparse(
            parsed._replace(netloc=parsed.netloc.rpartition("@")[2], query="", fragment="")
        ).rstrip("/")
    return LOCAL_UI


def _check_report_path(path: str, tracking_uri: str) -> None:
    """Refuse, before the audit starts, a --report path that cannot or must not be written: in a
    missing or read-only directory, the store itself, or an existing file that is not a page of
    ours (the summary is rewritten every night; nothing else may be overwritten by mistake)."""
    from mlflow_nnaudit.auditor.report import PAGE_START, is_our_page
    from mlflow_nnaudit.auditor.store import sqlite_path

    def refuse(why: str):
        raise click.BadParameter(f"{path!r}: {why}", param_hint="--report")

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        refuse(f"the directory {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        refuse(f"the directory {folder!r} is not writable")
    if not os.path.exists(path):
        return
    if os.path.isdir(path):
        refuse("it is a directory")
    store_file = sqlite_path(tracking_uri)
    if store_file and os.path.exists(store_file) and os.path.samefile(path, store_file):
        refuse("it is the tracking store's database file")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(len(PAGE_START))
    except OSError as exc:
        refuse(f"it cannot be read ({exc.strerror})")
    if head and not is_our_page(head):
        refuse("it exists and is not a summary page written by nnaudit: give a new file name, or remove it first")


def _write_report(path: str, text: str) -> None:
    """Write the page next to its final name, then rename: never a half-written page."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".nnaudit-report-", suffix=".html", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


#: MLflow retries a failed HTTP request for minutes by default (7 times, backoff factor 2, 120 s per
#: request): an audit whose server died would hang silently. The command's bounds, unless set already.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


def _bound_and_quiet() -> None:
    import logging

    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)
    # urllib3 says "Retrying (...)" once per retry on stderr, and MLflow's SQL store prints a traceback
    # for a database error (a locked sqlite file) before raising it: the error line says what happened
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    db_utils = logging.getLogger("mlflow.store.db.utils")
    db_utils.setLevel(logging.CRITICAL)
    # MLflow is imported after this when the audit needs it, and MLflow before 3.17 sets up its
    # logging with dictConfig, which resets the level of every `mlflow.*` logger made before (not
    # its filters): the same silence as a filter too
    if _only_critical not in db_utils.filters:
        db_utils.addFilter(_only_critical)


def _only_critical(record) -> bool:
    import logging

    return record.levelno >= logging.CRITICAL


def _one_line(exc: BaseException) -> str:
    from mlflow_nnaudit.auditor.store import _one_line as one_line

    return one_line(exc)


def _error(message: str, uri: str | None) -> click.ClickException:
    """A one-line error for the user: no password of the URI (MLflow's own messages quote it),
    no control characters (names come from whoever can log to the store)."""
    from mlflow_nnaudit.auditor.report import printable
    from mlflow_nnaudit.auditor.store import redact_secrets

    return click.ClickException(printable(redact_secrets(message, uri)))


def _redacted(uri: str) -> str:
    from mlflow_nnaudit.auditor.store import _redacted as redact

    return redact(uri)


@main.command()
@click.argument("run_id")
@_tracking_uri_option
@_role_option
@click.option("--config", metavar="FILE", help="TOML file with a [roles] table (as for audit).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def explain(run_id, tracking_uri, roles, config, fmt) -> None:
    """Audit one run and print why it is healthy or not, with its curves, evidence and fixes.
    Writes nothing."""
    import mlflow

    from mlflow_nnaudit.auditor.report import explain_text
    from mlflow_nnaudit.auditor.runner import explain as run_explain
    from mlflow_nnaudit.auditor.store import StoreError

    uri = tracking_uri or mlflow.get_tracking_uri()
    _bound_and_quiet()
    try:
        result = run_explain(run_id, tracking_uri=tracking_uri, roles=roles, config=config)
    except (StoreError, ValueError) as exc:
        raise _error(str(exc), uri) from None
    except Exception as exc:
        if os.environ.get("NNAUDIT_DEBUG"):
            raise
        raise _error(f"{_one_line(exc)} ({type(exc).__name__}; NNAUDIT_DEBUG=1 shows the traceback)", uri) from None
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(explain_text(result, result.curves or {}))


if __name__ == "__main__":  # pragma: no cover
    main()
