"""Read the sample runs back with their audit tags and compare with what was injected."""

from __future__ import annotations

from dataclasses import dataclass, field

from sample_runs.faults import ADVISORIES_TAG, EXPECTED_TAG, SAMPLE_TAG


@dataclass
class SampleOutcome:
    name: str
    run_id: str
    expected: list[str]
    status: str
    found: list[str]
    advisories: list[str] = field(default_factory=list)  # expected advisories
    found_advisories: list[str] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        """Healthy samples must come out healthy (with their injected set-up risks as advisories);
        faulty ones failed or warning with every injected cause listed."""
        if not self.expected:
            return self.status == "healthy" and all(c in self.found_advisories for c in self.advisories)
        return self.status in ("failed", "warning") and all(c in self.found for c in self.expected)


@dataclass
class Comparison:
    passed: int
    total: int
    misses: list[str]


def load_sample_results(tracking_uri: str, experiment: str) -> list[SampleOutcome]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no experiment {experiment!r} in {tracking_uri}: run `python -m sample_runs train` first")
    out = []
    for run in client.search_runs([exp.experiment_id], max_results=10000, order_by=["attributes.start_time ASC"]):
        tags = run.data.tags
        if SAMPLE_TAG not in tags:
            continue
        out.append(
            SampleOutcome(
                name=tags[SAMPLE_TAG],
                run_id=run.info.run_id,
                expected=[c for c in tags.get(EXPECTED_TAG, "").split(",") if c],
                status=tags.get("nnaudit.status", "(not audited)"),
                found=[c for c in tags.get("nnaudit.causes", "").split(",") if c],
                advisories=[c for c in tags.get(ADVISORIES_TAG, "").split(",") if c],
                found_advisories=[c for c in tags.get("nnaudit.advisories", "").split(",") if c],
            )
        )
    return out


def compare(rows: list[SampleOutcome]) -> Comparison:
    misses = [r.name for r in rows if not r.as_expected]
    return Comparison(len(rows) - len(misses), len(rows), misses)


def format_comparison(rows: list[SampleOutcome]) -> str:
    table = [("RUN", "EXPECTED CAUSES", "STATUS", "CAUSES FOUND", "")]
    for r in rows:
        expected = ",".join(r.expected) or (
            "(healthy; advisory " + ",".join(r.advisories) + ")" if r.advisories else "(healthy)"
        )
        found = ",".join(r.found) or ("advisory " + ",".join(r.found_advisories) if r.found_advisories else "-")
        table.append((r.name, expected, r.status, found, "ok" if r.as_expected else "MISS"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in table)
