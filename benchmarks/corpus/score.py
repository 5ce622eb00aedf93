"""Score the auditor on the corpus: per split (tune, heldout), with the recorder and curves only.

With the recorder: `nnaudit audit --force` writes its tags into the store, and they are read back.
Curves only: each run is audited again in this process, writing nothing, as it would look without
the recorder: its `nnaudit.recorder*` tags (so no diagnostics.json), `nnaudit.*` params and every
`nnaudit/` metric are hidden, leaving the curves the run logged itself (per-epoch `train_loss`/
`val_loss` of the plain loops, Lightning's `self.log` curves, the HF Trainer's `loss`/`eval_loss`).
This is `benchmarks/detection.py`'s approach, except that corpus runs log their own curves, so
the recorder's loss curves are hidden too (kept only for a run that logged none itself).

Runs whose truth is `borderline` (see README.md) are not scored. `corpus.*` tags are read only
here, never by the auditor.

    python -m benchmarks.corpus score --tracking-uri sqlite:///DIR/mlflow.db
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

TRUTH, SPLIT, ALSO = "corpus.truth", "corpus.split", "corpus.also"
HEALTHY = "healthy"
LR_HIGH, LR_LOW = "learning_rate_too_high", "learning_rate_too_low"
EXPERIMENT = "corpus"
USER_LOSS_KEYS = ("train_loss", "val_loss", "loss", "eval_loss", "train_loss_step", "train_loss_epoch")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclasses.dataclass
class Row:
    key: str
    truth: str
    split: str
    status: str
    causes: list[str]
    #: set-up risks on a run that showed no harm (status healthy; each also tagged nnaudit.cause.<id>)
    advisories: list[str] = dataclasses.field(default_factory=list)
    #: other answers accepted as right (tag corpus.also): a run that overfit at a learning rate above its
    #: sweep's best is both `overfitting` (what happened) and `learning_rate_too_high` (why so soon)
    also: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.truth, *self.also)

    @property
    def named(self) -> list[str]:
        """The causes, or on a healthy run the advisories: a fault that did the run no harm is
        named as an advisory by design (status follows harm), and a cause filter finds it."""
        return self.causes or self.advisories

    @property
    def first(self) -> str:
        return self.named[0] if self.named else f"({self.status})"


def run_audit(tracking_uri: str, jobs: int, echo=print) -> None:
    """`nnaudit audit --force` on the corpus experiment (the recorder's evidence included)."""
    cmd = [
        sys.executable,
        "-c",
        "from mlflow_nnaudit.cli import main; main()",
        "audit",
        "--tracking-uri",
        tracking_uri,
        "--experiment",
        EXPERIMENT,
        "--force",
        "--workers",
        str(jobs),
    ]
    echo("$ nnaudit audit --tracking-uri " + tracking_uri + f" --experiment {EXPERIMENT} --force --workers {jobs}")
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"nnaudit audit failed ({out.returncode}):\n{out.stderr[-3000:]}")
    tail = [line for line in out.stdout.splitlines() if line.strip()][-2:]
    echo("\n".join("  " + line for line in tail))


def recorder_rows(tracking_uri: str) -> list[Row]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    rows = []
    for run in client.search_runs([exp.experiment_id], max_results=50000):
        t = run.data.tags
        rows.append(
            Row(
                t["corpus.key"],
                t.get(TRUTH, "borderline"),
                t.get(SPLIT, "tune"),
                t.get("nnaudit.status", "(not audited)"),
                [c for c in t.get("nnaudit.causes", "").split(",") if c],
                [c for c in t.get("nnaudit.advisories", "").split(",") if c],
                _also(t),
            )
        )
    return rows


def _also(tags: dict) -> tuple[str, ...]:
    return tuple(c for c in tags.get(ALSO, "").split(",") if c)


def curves_only(run):
    """The run as it would look without the recorder (see the module docstring)."""
    own = any(k in run.metric_keys for k in USER_LOSS_KEYS)
    keep = () if own else ("nnaudit/train_loss", "nnaudit/val_loss")
    return dataclasses.replace(
        run,
        tags={k: v for k, v in run.tags.items() if not k.startswith("nnaudit.recorder")},
        params={k: v for k, v in run.params.items() if not k.startswith("nnaudit.")},
        metric_keys=[k for k in run.metric_keys if not k.startswith("nnaudit/") or k in keep],
    )


def curves_only_rows(tracking_uri: str, jobs: int) -> list[Row]:
    """Audit every corpus run curves-only, writing nothing, chunk by chunk as `audit()` does (one
    false-discovery family per chunk)."""
    import functools
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from itertools import islice

    from mlflow_nnaudit.auditor.runner import (
        AUDIT_CHUNK_RUNS,
        analyse,
        curve_keys,
        gather,
    )
    from mlflow_nnaudit.auditor.store import Store
    from mlflow_nnaudit.auditor.verdict import control_false_discoveries

    store = Store(tracking_uri)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) if jobs > 1 else None
    work = functools.partial(analyse, with_report=False)
    rows = []
    try:
        runs = (curves_only(r) for r in store.iter_runs(store.experiments((EXPERIMENT,))))
        while chunk := list(islice(runs, AUDIT_CHUNK_RUNS)):
            keys = {r.run_id: curve_keys(r) for r in chunk}
            store.prefetch(chunk, {rid: c + e for rid, (c, e) in keys.items()})
            inputs = [gather(store, r, None, keys[r.run_id]) for r in chunk]
            results = list(pool.map(work, inputs, chunksize=4)) if pool else [work(i) for i in inputs]
            control_false_discoveries(results)
            for run, res in zip(chunk, results):
                rows.append(
                    Row(
                        run.tags["corpus.key"],
                        run.tags.get(TRUTH, "borderline"),
                        run.tags.get(SPLIT, "tune"),
                        res.status,
                        list(res.causes),
                        list(res.advisories),
                        _also(run.tags),
                    )
                )
    finally:
        if pool is not None:
            pool.shutdown()
        store.close()
    return rows


def scores(rows: list[Row]) -> dict:
    """Every figure of one (split, mode): see README.md for their definitions."""
    rows = [r for r in rows if r.truth != "borderline"]
    faulty = [r for r in rows if r.truth != HEALTHY]
    healthy = [r for r in rows if r.truth == HEALTHY]
    out: dict = {"runs": len(rows), "faulty": len(faulty), "healthy": len(healthy)}
    n = max(len(faulty), 1)
    out["top1"] = sum(r.first in r.accepted for r in faulty) / n
    out["top3"] = sum(any(a in r.named[:3] for a in r.accepted) for r in faulty) / n
    # the same, counting only causes (a fault named as an advisory on a healthy run is a miss)
    out["top1_causes_only"] = sum(r.causes[:1] != [] and r.causes[0] in r.accepted for r in faulty) / n
    out["top3_causes_only"] = sum(any(a in r.causes[:3] for a in r.accepted) for r in faulty) / n
    out["with_alternatives"] = sum(bool(r.also) for r in faulty)
    causes = sorted({r.truth for r in faulty} | {r.first for r in rows if r.named})
    per = {}
    for c in causes:
        tp = sum(r.first == c and c in r.accepted for r in rows)
        named = sum(r.first == c for r in rows)
        actual = sum(r.truth == c for r in rows)
        tp_recall = sum(r.truth == c and r.first in r.accepted for r in rows)
        per[c] = {
            "n": actual,
            "named_first": named,
            "tp": tp,
            "precision": tp / named if named else None,
            "recall": tp_recall / actual if actual else None,
        }
    out["per_cause"] = per
    for status in ("warning", "failed"):
        k = sum(r.status == status for r in healthy)
        out[f"healthy_{status}"] = {
            "k": k,
            "n": len(healthy),
            "rate": k / max(len(healthy), 1),
            "ci95": wilson(k, len(healthy)),
        }
    out["healthy_status_healthy"] = sum(r.status == HEALTHY for r in healthy)
    hi = [r for r in rows if LR_HIGH in r.accepted]
    lo = [r for r in rows if LR_LOW in r.accepted]
    out["lr_direction_errors"] = {
        "too_high_named_too_low": sum(LR_LOW in r.causes for r in hi),
        "too_high_named_too_low_first": sum(r.first == LR_LOW for r in hi),
        "n_too_high": len(hi),
        "too_low_named_too_high": sum(LR_HIGH in r.causes for r in lo),
        "too_low_named_too_high_first": sum(r.first == LR_HIGH for r in lo),
        "n_too_low": len(lo),
    }
    confusion = defaultdict(Counter)
    for r in rows:
        confusion[r.truth][r.first] += 1
    out["confusion"] = {t: dict(c.most_common()) for t, c in sorted(confusion.items())}
    errors = Counter(
        (r.truth, r.first)
        for r in rows
        if r.first not in r.accepted and not (r.truth == HEALTHY and r.status == HEALTHY)
    )
    out["top_errors"] = [[t, f, n] for (t, f), n in errors.most_common(12)]
    return out


def _pct(x) -> str:
    return "   -" if x is None else f"{x:4.0%}"


def format_scores(title: str, s: dict) -> str:
    lines = [
        f"== {title}: {s['runs']} runs scored ({s['faulty']} faulty, {s['healthy']} healthy)",
        f"top-1 {s['top1']:.2f}   top-3 {s['top3']:.2f}   (faulty runs: the truth first / in the first three; "
        f"an advisory on a healthy run counts)",
        f"causes only: top-1 {s['top1_causes_only']:.2f}   top-3 {s['top3_causes_only']:.2f}",
        f"faulty runs with an accepted alternative (corpus.also): {s['with_alternatives']}",
    ]
    for status in ("warning", "failed"):
        h = s[f"healthy_{status}"]
        lines.append(
            f"healthy runs {status}: {h['k']}/{h['n']} = {h['rate']:.1%} (95% CI {h['ci95'][0]:.1%}"
            f"..{h['ci95'][1]:.1%})"
        )
    d = s["lr_direction_errors"]
    lines.append(
        f"learning-rate direction errors: too high named too low {d['too_high_named_too_low']}/{d['n_too_high']}"
        f" (first: {d['too_high_named_too_low_first']}); too low named too high "
        f"{d['too_low_named_too_high']}/{d['n_too_low']} (first: {d['too_low_named_too_high_first']})"
    )
    lines.append(f"{'cause':<34} {'n':>4} {'named 1st':>9} {'precision':>9} {'recall':>7}")
    for c, p in sorted(s["per_cause"].items(), key=lambda kv: (-kv[1]["n"], kv[0])):
        lines.append(f"{c:<34} {p['n']:>4} {p['named_first']:>9} {_pct(p['precision']):>9} {_pct(p['recall']):>7}")
    lines.append("confusion (truth -> first cause named: count; '(status)' when no cause was named):")
    for t, row in s["confusion"].items():
        lines.append(f"  {t:<32} " + ", ".join(f"{f} {n}" for f, n in row.items()))
    lines.append("largest errors (truth -> first cause named):")
    for t, f, n in s["top_errors"]:
        lines.append(f"  {n:>3}  {t} -> {f}")
    return "\n".join(lines)


def main(tracking_uri: str, jobs: int = 1, audit_first: bool = True, curves_only: bool = True, echo=print) -> dict:
    if audit_first:
        run_audit(tracking_uri, jobs, echo)
    modes = {"with the recorder": recorder_rows(tracking_uri)}
    if curves_only:
        modes["curves only"] = curves_only_rows(tracking_uri, jobs)
    borderline = sum(r.truth == "borderline" for r in modes["with the recorder"])
    echo(f"{len(modes['with the recorder'])} runs; {borderline} borderline (not scored)")
    report = {}
    for mode, rows in modes.items():
        present = {r.split for r in rows}
        for split in [p for p in ("tune", "heldout") if p in present] + sorted(present - {"tune", "heldout"}):
            s = scores([r for r in rows if r.split == split])
            report[f"{split} / {mode}"] = s
            echo("")
            echo(format_scores(f"{split} / {mode}", s))
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///") :]).resolve().parent / "scores.json"
        path.write_text(json.dumps(report, indent=1))
        echo(f"\nscores written to {path}")
    return report
