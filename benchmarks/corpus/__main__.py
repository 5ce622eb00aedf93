"""`python -m benchmarks.corpus generate|score`: the generated corpus of training runs and its scores.
See benchmarks/corpus/README.md."""

from __future__ import annotations

import os

import click


@click.group()
def main() -> None:
    """A generated corpus of small real training runs, labelled, and the auditor's scores on it."""


@main.command()
@click.option(
    "--tracking-uri", required=True, help="sqlite:///DIR/mlflow.db (a fresh folder; artifacts go to DIR/artifacts)"
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default=True,
    help="Worker processes training runs in parallel (one CPU thread each).",
)
@click.option("--size", type=click.Choice(["small", "full"]), default="small", show_default=True)
@click.option(
    "--only",
    multiple=True,
    metavar="TEXT",
    help="Only the runs whose key contains TEXT (repeatable; for development: the labels need whole sweeps).",
)
@click.option(
    "--seeds",
    default=None,
    metavar="N,N,...",
    help="Seeds to train (default: 0,1 for full, 0 for small). Other seeds give a population the rules "
    "were never tuned on; use them with --split.",
)
@click.option(
    "--split",
    "force_split",
    default=None,
    metavar="NAME",
    help="Put every run in this split (e.g. 'fresh') instead of dividing them tune/heldout.",
)
def generate(
    tracking_uri: str, jobs: int, size: str, only: tuple[str, ...], seeds: str | None, force_split: str | None
) -> None:
    """Train the corpus into a fresh sqlite store, label it and split it."""
    from benchmarks.corpus.generate import generate as run

    try:
        seed_list = tuple(int(s) for s in seeds.split(",")) if seeds else None
    except ValueError:
        raise click.BadParameter(f"{seeds!r} is not a comma-separated list of integers", param_hint="--seeds") from None
    run(tracking_uri, jobs, size, echo=click.echo, only=only, seeds=seed_list, force_split=force_split)


@main.command()
@click.option("--tracking-uri", required=True, help="sqlite:///DIR/mlflow.db of a generated corpus")
def relabel(tracking_uri: str) -> None:
    """Label the corpus again after a change to the labeller; every run keeps its tune/heldout split."""
    from benchmarks.corpus.generate import label_and_split

    for line in label_and_split(tracking_uri):
        click.echo(line)


@main.command()
@click.option("--tracking-uri", required=True)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True, help="Workers for the audits."
)
@click.option("--no-audit", is_flag=True, help="Score the store's nnaudit tags as they are (no `nnaudit audit` first).")
@click.option("--no-curves-only", is_flag=True, help="Skip the curves-only audit.")
def score(tracking_uri: str, jobs: int, no_audit: bool, no_curves_only: bool) -> None:
    """Audit the corpus (`nnaudit audit`), then print its scores per split, with and without the recorder."""
    from benchmarks.corpus.score import main as run

    run(tracking_uri, jobs, audit_first=not no_audit, curves_only=not no_curves_only, echo=click.echo)


if __name__ == "__main__":
    main()
