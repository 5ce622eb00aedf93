"""`python -m sample_runs train|report`: train the sample runs into a store, and compare what
the audit found with what was injected."""

from __future__ import annotations

import time

import click

DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "nnaudit-samples"


@click.group()
def main() -> None:
    """Sample runs with injected faults."""


@main.command()
@click.option("--tracking-uri", default=DEFAULT_URI, show_default=True)
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True)
@click.option("--only", multiple=True, help="Train only these samples (by name).")
def train(tracking_uri: str, experiment: str, only: tuple[str, ...]) -> None:
    """Train the sample runs (earlier sample runs of the experiment are moved to the trash)."""
    import logging

    import mlflow
    import torch

    from sample_runs.faults import SAMPLE_TAG, SAMPLES, train_sample

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    torch.set_num_threads(1)  # tiny models: threads cost more than they give, and runs stay reproducible
    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.set_experiment(experiment)
    client = mlflow.tracking.MlflowClient()
    chosen = [s for s in SAMPLES if not only or s.name in only]
    unknown = set(only) - {s.name for s in SAMPLES}
    if unknown:
        raise click.ClickException(f"unknown sample(s): {', '.join(sorted(unknown))}")
    old = client.search_runs([exp.experiment_id], max_results=10000)
    for run in old:
        if SAMPLE_TAG in run.data.tags and (not only or run.data.tags[SAMPLE_TAG] in only):
            client.delete_run(run.info.run_id)
    t0 = time.time()
    for i, sample in enumerate(chosen, 1):
        t = time.time()
        train_sample(sample, exp.experiment_id)
        click.echo(f"[{i}/{len(chosen)}] {sample.name:<32} {time.time() - t:5.1f}s  {sample.description}")
    click.echo(
        f"trained {len(chosen)} sample runs in {time.time() - t0:.0f}s into {tracking_uri} (experiment {experiment!r})"
    )


@main.command()
@click.option("--tracking-uri", default=DEFAULT_URI, show_default=True)
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True)
def report(tracking_uri: str, experiment: str) -> None:
    """Print each sample run's injected causes next to what the audit found."""
    from sample_runs.evaluate import compare, format_comparison, load_sample_results

    rows = load_sample_results(tracking_uri, experiment)
    click.echo(format_comparison(rows))
    ok = compare(rows)
    click.echo("")
    click.echo(
        f"{ok.passed}/{ok.total} sample runs as expected"
        + (f"; unexpected: {', '.join(ok.misses)}" if ok.misses else "")
    )
    click.echo("")
    click.echo("See them in the MLflow UI:")
    from mlflow.tracking import MlflowClient

    from mlflow_nnaudit.auditor.report import FAILED_FILTER, ui_runs_url
    from mlflow_nnaudit.cli import default_ui_url

    exp = MlflowClient(tracking_uri).get_experiment_by_name(experiment)
    ui = default_ui_url(tracking_uri)
    if ui == tracking_uri.rstrip("/"):  # a tracking server serves its own UI
        click.echo(f"  open {ui_runs_url(ui, exp.experiment_id) if exp else ui}")
    else:
        click.echo(f"  .venv/bin/mlflow ui --backend-store-uri {tracking_uri}")
        click.echo(f"  then open {ui_runs_url(ui, exp.experiment_id) if exp else ui}")
    click.echo(f"  (the failed runs: the search box holds  {FAILED_FILTER})")
    click.echo("  (each audited run has its report under Artifacts: nnaudit/report.html)")
    click.echo("Or in the terminal:  .venv/bin/nnaudit explain RUN_ID   (a RUN ID from the table above)")


if __name__ == "__main__":
    main()
