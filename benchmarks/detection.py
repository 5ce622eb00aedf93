"""Detection quality on the sample runs: does the audit name the injected cause?

Trains the sample runs into a sqlite store (or reuses one given with --tracking-uri and
--reuse), then audits every run twice, writing nothing:

- with the recorder's evidence (its curves, per-layer metrics and diagnostics.json);
- curves only, as if the recorder had not been installed: the recorder's tag, its
  diagnostics, its `nnaudit.*` params and every `nnaudit/` metric are hidden, except the training and validation
  loss curves (a run without the recorder would have logged its losses by hand; this keeps
  the two audits comparable, and is an approximation: such a run's curves would be logged
  per epoch, not per step).

Prints, per injected cause, how often it is among the top 3 causes of its run, and how
healthy runs fared (failed / warning). Runs with a set-up risk injected that still train well
(`sample.expected_advisories`) count as healthy runs, and their risks must be found as advisories
(status follows harm). A cause's catalog evidence (R, C) says whether the
curves alone can be expected to show it.

    python benchmarks/detection.py [--tracking-uri URI --reuse]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mlflow_nnaudit.auditor.catalog import BY_ID
from mlflow_nnaudit.auditor.runner import audit_run
from mlflow_nnaudit.auditor.store import RunRecord, Store
from mlflow_nnaudit.auditor.verdict import control_false_discoveries

KEEP_IN_CURVES_ONLY = ("nnaudit/train_loss", "nnaudit/val_loss")
EXPECTED_TAG = "sample.expected_causes"
ADVISORIES_TAG = "sample.expected_advisories"


def curves_only(run: RunRecord) -> RunRecord:
    """The run as it would look without the recorder (see the module docstring)."""
    return dataclasses.replace(
        run,
        tags={k: v for k, v in run.tags.items() if not k.startswith("nnaudit.recorder")},
        params={k: v for k, v in run.params.items() if not k.startswith("nnaudit.")},
        metric_keys=[k for k in run.metric_keys if not k.startswith("nnaudit/") or k in KEEP_IN_CURVES_ONLY],
    )


def evaluate(store: Store, experiment: str, mode: str):
    exps = store.experiments([experiment])
    per_cause = defaultdict(lambda: [0, 0])  # cause -> [found in top 3, expected]
    per_advisory = defaultdict(lambda: [0, 0])  # cause -> [found as an advisory, expected]
    healthy = {"healthy": 0, "warning": 0, "failed": 0, "inconclusive": 0}
    misses = []
    audited = []
    for run in store.iter_runs(exps):
        if EXPECTED_TAG not in run.tags:
            continue
        view = curves_only(run) if mode == "curves" else run
        audited.append((run, audit_run(store, view)))
    control_false_discoveries([result for _, result in audited])  # as audit() does across its runs
    for run, result in audited:
        expected = [c for c in run.tags[EXPECTED_TAG].split(",") if c]
        top3 = result.causes[:3]
        if not expected:
            healthy[result.status] += 1
            if result.status != "healthy":
                misses.append(f"{run.run_name}: healthy run came out {result.status} ({','.join(result.causes)})")
            # set-up risks injected into a run that trained well: found as advisories (the recorder's
            # evidence is needed for the R causes, so curves-only counts only the C ones)
            for cause in (c for c in run.tags.get(ADVISORIES_TAG, "").split(",") if c):
                if mode == "curves" and "C" not in BY_ID[cause].evidence:
                    continue
                per_advisory[cause][1] += 1
                if cause in result.advisories:
                    per_advisory[cause][0] += 1
                else:
                    misses.append(
                        f"{run.run_name}: {cause} not among the advisories ({','.join(result.advisories) or '-'})"
                    )
        for cause in expected:
            per_cause[cause][1] += 1
            if cause in top3:
                per_cause[cause][0] += 1
            else:
                misses.append(f"{run.run_name}: {cause} not in top 3 ({','.join(result.causes) or '-'})")
    return per_cause, healthy, misses, per_advisory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", help="store holding the sample runs (default: train them into a temp store)")
    parser.add_argument("--experiment", default="nnaudit-samples")
    parser.add_argument("--reuse", action="store_true", help="audit the sample runs already in --tracking-uri")
    args = parser.parse_args()
    tmp = None
    uri = args.tracking_uri
    if uri is None or not args.reuse:
        import logging

        import mlflow
        import torch

        from sample_runs.faults import SAMPLES, train_sample

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        torch.set_num_threads(1)
        if uri is None:
            tmp = tempfile.mkdtemp()
            uri = f"sqlite:///{tmp}/mlflow.db"
            os.chdir(tmp)
        mlflow.set_tracking_uri(uri)
        exp = mlflow.set_experiment(args.experiment)
        for sample in SAMPLES:
            train_sample(sample, exp.experiment_id)
        print(f"trained {len(SAMPLES)} sample runs into {uri}")
    store = Store(uri)
    results = {mode: evaluate(store, args.experiment, mode) for mode in ("recorder", "curves")}

    causes = sorted({c for per_cause, _, _, _ in results.values() for c in per_cause})
    print(f"\n{'cause':<34} {'evidence':>8} {'with recorder':>14} {'curves only':>12}")
    totals = {m: [0, 0] for m in results}
    c_totals = {m: [0, 0] for m in results}
    for cause in causes:
        ev = BY_ID[cause].evidence
        cells = []
        for mode, (per_cause, _, _, _) in results.items():
            hit, n = per_cause.get(cause, [0, 0])
            totals[mode][0] += hit
            totals[mode][1] += n
            if "C" in ev:
                c_totals[mode][0] += hit
                c_totals[mode][1] += n
            cells.append(f"{hit}/{n}")
        print(f"{cause:<34} {ev:>8} {cells[0]:>14} {cells[1]:>12}")
    advisories = sorted({c for *_, per_adv in results.values() for c in per_adv})
    if advisories:
        print(
            f"\n{'advisory on a run that trained well':<34} {'evidence':>8} {'with recorder':>14} {'curves only':>12}"
        )
        for cause in advisories:
            cells = ["{}/{}".format(*per_adv.get(cause, [0, 0])) for *_, per_adv in results.values()]
            print(f"{cause:<34} {BY_ID[cause].evidence:>8} {cells[0]:>14} {cells[1]:>12}")
    print()
    for mode, (_, healthy, misses, per_adv) in results.items():
        hit, n = totals[mode]
        chit, cn = c_totals[mode]
        n_healthy = sum(healthy.values())
        print(
            f"{mode:>9}: injected causes in top 3: {hit}/{n} ({hit / max(n, 1):.0%}); curve-visible (C) causes: "
            f"{chit}/{cn} ({chit / max(cn, 1):.0%}); healthy runs: {healthy['healthy']}/{n_healthy} healthy, "
            f"{healthy['warning']} warning, {healthy['failed']} failed; advisories found: "
            f"{sum(h for h, _ in per_adv.values())}/{sum(n for _, n in per_adv.values())}"
        )
        for line in misses:
            print(f"           miss: {line}")


if __name__ == "__main__":
    main()
