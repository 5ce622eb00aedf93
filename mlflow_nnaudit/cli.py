"""`nnaudit`: the command line. Thin: parse options, call the library, print."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from mlflow_nnaudit._version import __version__


def _parse_roles(values: tuple[str, ...]) -> dict[str, str]:
    roles = {}
    for v in values:
        role, sep, key = v.partition("=")
        if not sep or not role or not key:
            raise click.BadParameter(f"{v!r}: expected ROLE=METRIC_KEY, e.g. train_loss=my_loss", param_hint="--role")
        roles[role.strip()] = key.strip()
    return roles


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
    from mlflow_nnaudit.auditor.report import summarize, worst_first

    rows = [("RUN", "RUN ID", "EXPERIMENT", "STATUS", "CAUSES")]
    for r in worst_first(results):
        causes = ",".join(r.causes) + (" (unchanged)" if r.skipped else "")
        rows.append((r.run_name or "-", r.run_id[:12], r.experiment_name, r.status, causes or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows]
    s = summarize(results)
    lines.append("")
    lines.append(f"{s['runs']} runs: " + (", ".join(f"{n} {st}" for st, n in s["by_status"].items()) or "none")
                 + (f" ({s['skipped_unchanged']} unchanged since their last audit)" if s["skipped_unchanged"] else ""))
    if s["by_cause"]:
        lines.append("causes: " + ", ".join(f"{c} {n}" for c, n in s["by_cause"].items()))
    if s["artifacts_not_written"]:
        lines.append(f"artifacts not written for {len(s['artifacts_not_written'])} run(s) (tags written; see each "
                     "run's notes in --format json): " + ", ".join(rid[:12] for rid in s["artifacts_not_written"][:10]))
    return "\n".join(lines)


_FAIL_ON = {"failed": ("failed",), "warning": ("failed", "warning"), "inconclusive": ("failed", "warning", "inconclusive")}
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
    "--tracking-uri", metavar="URI", help="MLflow store; default: MLFLOW_TRACKING_URI, then sqlite:///mlflow.db.")
_role_option = click.option(
    "--role", "roles", multiple=True, metavar="ROLE=KEY",
    help="Say which metric plays a role, e.g. --role train_loss=my_loss (roles: train_loss, val_loss, "
         "train_acc, val_acc, lr, grad_norm).")


@main.command()
@_tracking_uri_option
@click.option("--experiment", "experiments", multiple=True, metavar="NAME", help="Experiment to audit (repeatable); default: all.")
@click.option("--since", metavar="DURATION", help="Only runs that ended within this time, e.g. 24h, 7d.")
@click.option("--force", is_flag=True, help="Re-audit runs already audited with no new data since.")
@click.option("--dry-run", is_flag=True, help="Print what would be tagged; write nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_role_option
@click.option("--config", metavar="FILE", help="TOML file with a [roles] table (default: nnaudit.toml, then "
                                               "[tool.nnaudit.roles] in pyproject.toml, if present).")
@click.option("--workers", type=click.IntRange(min=1), default=lambda: os.cpu_count() or 1,
              show_default="the machine's cores",
              help="Processes auditing chunks of runs in parallel (1: all in this process).")
@click.option("--shard", metavar="K/N", callback=_parse_shard,
              help="Audit only part K of N of the store (stable split by run id), e.g. 1/4 on the first of four pods.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Also write the summary as an HTML page with plots to FILE.")
@click.option("--fail-on", type=click.Choice(list(_FAIL_ON)), default=None,
              help=f"Exit with status {EXIT_FOUND} if a run of this audit's window (audited now, or unchanged since "
                   "its last audit) is this bad or worse (for pipelines).")
def audit(tracking_uri, experiments, since, force, dry_run, fmt, roles, config, workers, shard, report_path,
          fail_on) -> None:
    """Audit finished runs and tag each with nnaudit.status, nnaudit.causes, ..."""
    from mlflow_nnaudit.auditor.runner import audit as run_audit
    from mlflow_nnaudit.auditor.store import StoreError

    role_map = _parse_roles(roles)
    progress = _Progress()
    try:
        results = run_audit(
            tracking_uri=tracking_uri, experiments=experiments, since=since, force=force,
            dry_run=dry_run, roles=role_map, on_progress=progress, workers=workers, shard=shard,
            on_start=progress.start, config=config,
        )
    except (StoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
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
        import mlflow

        from mlflow_nnaudit.auditor.report import summary_html

        with open(report_path, "w", encoding="utf-8") as fh:
            fh.write(summary_html(results, _redacted(tracking_uri or mlflow.get_tracking_uri())))
        click.echo(f"summary page: {report_path}", err=True)
    if fail_on:
        # every run of the window counts: a failed run left unchanged since last night is still failed
        bad = [r for r in results if r.status in _FAIL_ON[fail_on]]
        if bad:
            kept = sum(r.skipped for r in bad)
            click.echo(f"{len(bad)} run(s) of this audit are {' or '.join(_FAIL_ON[fail_on])} ({len(bad) - kept} "
                       f"audited now, {kept} unchanged since their last audit)", err=True)
            sys.exit(EXIT_FOUND)


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
    from mlflow_nnaudit.auditor.report import explain_text
    from mlflow_nnaudit.auditor.runner import explain as run_explain
    from mlflow_nnaudit.auditor.store import StoreError

    try:
        result = run_explain(run_id, tracking_uri=tracking_uri, roles=_parse_roles(roles), config=config)
    except (StoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(explain_text(result, result.curves or {}))


if __name__ == "__main__":  # pragma: no cover
    main()
