"""`nnaudit`: the command line. Thin: parse options, call the library, print."""

from __future__ import annotations

import json
import sys

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
    """A one-line counter on stderr while auditing, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.n = 0

    def __call__(self, result) -> None:
        self.n += 1
        if self.enabled:
            click.echo(f"\raudited {self.n} runs ({result.status:<12})", nl=False, err=True)

    def close(self) -> None:
        if self.enabled and self.n:
            click.echo("\r" + " " * 40 + "\r", nl=False, err=True)


def format_table(results) -> str:
    """Results as a plain-text table, worst first."""
    order = {"failed": 0, "warning": 1, "inconclusive": 2, "healthy": 3}
    rows = [("RUN", "RUN ID", "EXPERIMENT", "STATUS", "CAUSES")]
    for r in sorted(results, key=lambda r: (order.get(r.status, 9), r.experiment_name, r.run_name)):
        causes = ",".join(r.causes) + (" (unchanged)" if r.skipped else "")
        rows.append((r.run_name or "-", r.run_id[:12], r.experiment_name, r.status, causes or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows]
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{counts[s]} {s}" for s in ("failed", "warning", "inconclusive", "healthy") if s in counts)
    lines.append("")
    lines.append(f"{len(results)} runs: {summary or 'none'}")
    return "\n".join(lines)


@click.group()
@click.version_option(__version__, prog_name="nnaudit")
def main() -> None:
    """Find out why PyTorch training runs failed, and tag them in MLflow."""


@main.command()
@click.option("--tracking-uri", metavar="URI", help="MLflow store; default: MLFLOW_TRACKING_URI, then sqlite:///mlflow.db.")
@click.option("--experiment", "experiments", multiple=True, metavar="NAME", help="Experiment to audit (repeatable); default: all.")
@click.option("--since", metavar="DURATION", help="Only runs that ended within this time, e.g. 24h, 7d.")
@click.option("--force", is_flag=True, help="Re-audit runs already audited with no new data since.")
@click.option("--dry-run", is_flag=True, help="Print what would be tagged; write nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--role", "roles", multiple=True, metavar="ROLE=KEY",
              help="Say which metric plays a role, e.g. --role train_loss=my_loss (roles: train_loss, val_loss, "
                   "train_acc, val_acc, lr, grad_norm).")
@click.option("--config", metavar="FILE", help="TOML file with a [roles] table (default: nnaudit.toml, then "
                                               "[tool.nnaudit.roles] in pyproject.toml, if present).")
def audit(tracking_uri, experiments, since, force, dry_run, fmt, roles, config) -> None:
    """Audit finished runs and tag each with nnaudit.status, nnaudit.causes, ..."""
    from mlflow_nnaudit.auditor.runner import audit as run_audit
    from mlflow_nnaudit.auditor.store import StoreError

    role_map = _parse_roles(roles)
    progress = _Progress()
    try:
        results = run_audit(
            tracking_uri=tracking_uri, experiments=experiments, since=since, force=force,
            dry_run=dry_run, roles=role_map, on_progress=progress, config=config,
        )
    except (StoreError, ValueError) as exc:
        progress.close()
        raise click.ClickException(str(exc)) from None
    progress.close()
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() | {"skipped": r.skipped} for r in results], indent=2))
    else:
        click.echo(format_table(results))
        if dry_run:
            click.echo("(dry run: nothing was written)")


if __name__ == "__main__":  # pragma: no cover
    main()
