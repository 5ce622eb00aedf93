"""Run the real-program evaluation: every program in this folder in its own process, into one
MLflow store (one experiment), then `nnaudit audit` over it, then a table and the scores.

    python -m benchmarks.programs [--tracking-uri URI] [--only NAME]... [--jobs N] [--no-recorder]

Each program is a script written the way users write them (`import mlflow; mlflow.autolog()`
and their own `mlflow.log_metric` calls) that follows one publicly reported training problem,
or is a healthy program in the style of a framework's own example. Its header docstring says
what it follows and its ground truth:

    Expected first: <cause id>        (the cause that must come first; `healthy` for a healthy one)
    Acceptable in top 3: <ids>        (other causes that also count for the top-3 score)
    Symptom: <ids>                    (what the curves alone should show: plateau, diverging, ...)

The runner creates the program's run itself (tagged `programs.name` and `programs.truth`) and
hands it to the process through MLFLOW_RUN_ID, so that whatever opens the run inside the program
(`mlflow.start_run()`, autolog's run around Lightning's fit, the HF Trainer's callback) resumes
it and each program maps to exactly one run. `--no-recorder` runs the same programs with
MLFLOW_NNAUDIT_DISABLE=true: curves only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NAME_TAG = "programs.name"
TRUTH_TAG = "programs.truth"
TIMEOUT_S = 600  # a loaded machine can make a 20 s program take minutes


@dataclass
class Program:
    name: str
    path: Path
    first: str  # a cause id, or "healthy"
    acceptable: list[str] = field(default_factory=list)
    symptoms: list[str] = field(default_factory=list)
    report: str = ""

    @property
    def healthy(self) -> bool:
        return self.first == "healthy"


def _field(doc: str, label: str) -> str:
    m = re.search(rf"^{re.escape(label)}:\s*(.*)$", doc, re.MULTILINE)
    return m.group(1).strip() if m else ""


def _ids(text: str) -> list[str]:
    return [t for t in re.split(r"[,\s]+", re.sub(r"\(.*?\)", "", text)) if re.fullmatch(r"[a-z_0-9]+", t)]


def discover() -> list[Program]:
    """Every `f*.py` (faulty) and `h*.py` (healthy) program in this folder, with its header parsed."""
    import ast

    out = []
    for path in sorted(HERE.glob("[fh][0-9]*_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = _field(doc, "Expected first")
        if not first:
            raise SystemExit(f"{path.name}: no 'Expected first:' line in its header")
        out.append(
            Program(
                path.stem,
                path,
                first.split()[0],
                _ids(_field(doc, "Acceptable in top 3")),
                _ids(_field(doc, "Symptom")),
                _field(doc, "Report"),
            )
        )
    return out


@dataclass
class Outcome:
    program: Program
    run_id: str
    rc: int
    seconds: float
    status: str = "(not audited)"
    causes: list[str] = field(default_factory=list)
    stderr_tail: str = ""

    @property
    def top1(self) -> bool:
        return bool(self.causes) and self.causes[0] == self.program.first

    @property
    def top3(self) -> bool:
        want = {self.program.first, *self.program.acceptable}
        return any(c in want for c in self.causes[:3])

    @property
    def symptom_top3(self) -> bool:
        return any(c in self.program.symptoms for c in self.causes[:3])


def run_one(prog: Program, client, experiment_id: str, tracking_uri: str, no_recorder: bool) -> Outcome:
    from mlflow.entities import RunStatus

    run = client.create_run(experiment_id, run_name=prog.name, tags={NAME_TAG: prog.name, TRUTH_TAG: prog.first})
    run_id = run.info.run_id
    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_RUN_ID=run_id,
        MLFLOW_EXPERIMENT_ID=experiment_id,
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONWARNINGS="ignore",
    )
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    if no_recorder:
        env["MLFLOW_NNAUDIT_DISABLE"] = "true"
    else:
        env.pop("MLFLOW_NNAUDIT_DISABLE", None)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as cwd:  # programs that write files (Lightning, HF) write them here
        try:
            proc = subprocess.run(
                [sys.executable, str(prog.path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
            )
            rc, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = 124, (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    seconds = time.time() - t0
    if client.get_run(run_id).info.status == "RUNNING":  # the program crashed, or never closed its run
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED if rc == 0 else RunStatus.FAILED))
    return Outcome(prog, run_id, rc, seconds, stderr_tail=err[-2000:] if rc else "")


def audit(tracking_uri: str, experiment: str) -> None:
    nnaudit = [str(Path(sys.executable).with_name("nnaudit"))]
    if not Path(nnaudit[0]).exists():
        nnaudit = ["nnaudit"]
    subprocess.run(
        nnaudit + ["audit", "--tracking-uri", tracking_uri, "--experiment", experiment, "--force", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        },
    )


def format_table(rows: list[Outcome], no_recorder: bool) -> str:
    table = [("PROGRAM", "TRUTH", "STATUS", "CAUSES", "TIME", "")]
    for r in rows:
        if r.rc != 0:
            mark = f"CRASH rc={r.rc}"
        elif r.program.healthy:
            mark = "ok" if r.status == "healthy" else "FALSE ALARM"
        elif no_recorder:
            mark = "ok" if r.status in ("failed", "warning") and r.symptom_top3 else "MISS"
        else:
            mark = "top1" if r.top1 else ("top3" if r.top3 else "MISS")
        truth = r.program.first if not no_recorder or r.program.healthy else "~" + "/".join(r.program.symptoms)
        table.append((r.program.name, truth, r.status, ",".join(r.causes) or "-", f"{r.seconds:.0f}s", mark))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in table)


def scores(rows: list[Outcome], no_recorder: bool) -> dict:
    faulty = [r for r in rows if not r.program.healthy]
    healthy = [r for r in rows if r.program.healthy]
    out: dict = {
        "programs": len(rows),
        "crashed": sum(r.rc != 0 for r in rows),
        "faulty": len(faulty),
        "healthy": len(healthy),
    }
    if faulty:
        flagged = [r for r in faulty if r.status in ("failed", "warning")]
        out["faulty_flagged"] = len(flagged)
        if no_recorder:
            out["faulty_flagged_with_symptom_top3"] = sum(r.symptom_top3 for r in flagged)
        else:
            out["faulty_top1"] = sum(r.top1 for r in faulty)
            out["faulty_top3"] = sum(r.top3 for r in faulty)
    if healthy:
        out["healthy_healthy"] = sum(r.status == "healthy" for r in healthy)
        out["healthy_warning"] = sum(r.status == "warning" for r in healthy)
        out["healthy_failed"] = sum(r.status == "failed" for r in healthy)
    return out


def format_scores(s: dict, no_recorder: bool) -> str:
    def pct(a, b):
        return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "-"

    lines = [f"{s['programs']} programs ({s['faulty']} faulty, {s['healthy']} healthy), {s['crashed']} crashed"]
    if s["faulty"]:
        lines.append(f"faulty flagged failed/warning: {pct(s['faulty_flagged'], s['faulty'])}")
        if no_recorder:
            lines.append(
                "faulty flagged with the right symptom in the top 3: "
                f"{pct(s['faulty_flagged_with_symptom_top3'], s['faulty'])}   (must show: 100%)"
            )
        else:
            lines.append(f"faulty, right cause first: {pct(s['faulty_top1'], s['faulty'])}   (must show: >= 70%)")
            lines.append(f"faulty, right cause in top 3: {pct(s['faulty_top3'], s['faulty'])}   (must show: >= 85%)")
    if s["healthy"]:
        lines.append(
            f"healthy called healthy: {pct(s['healthy_healthy'], s['healthy'])}   (must show: >= 90%); "
            f"warning {s['healthy_warning']}, failed {s['healthy_failed']} (must show: 0 failed)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.programs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracking-uri", help="MLflow store (default: a new sqlite store in a temp folder)")
    ap.add_argument("--experiment", help="experiment name (default: nnaudit-programs, or nnaudit-programs-curves)")
    ap.add_argument("--only", action="append", default=[], help="run only this program (name or prefix; repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="programs run in parallel (default 1)")
    ap.add_argument("--no-recorder", action="store_true", help="curves only: MLFLOW_NNAUDIT_DISABLE=true")
    ap.add_argument("--json", metavar="FILE", help="also write the rows and scores as JSON to FILE")
    ap.add_argument(
        "--report",
        action="store_true",
        help="train nothing: audit the programs' runs already in the store and print the table",
    )
    args = ap.parse_args(argv)

    import logging

    import mlflow
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    tracking_uri = args.tracking_uri or f"sqlite:///{tempfile.mkdtemp(prefix='nnaudit-programs-')}/mlflow.db"
    experiment = args.experiment or ("nnaudit-programs-curves" if args.no_recorder else "nnaudit-programs")
    progs = discover()
    if args.only:
        progs = [p for p in progs if any(p.name == o or p.name.startswith(o) for o in args.only)]
        if not progs:
            raise SystemExit(f"no program matches {args.only}")
    client = MlflowClient(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if args.report:
        if exp is None:
            raise SystemExit(f"no experiment {experiment!r} in {tracking_uri}")
        by_name = {p.name: p for p in progs}
        rows = []
        for run in client.search_runs([exp.experiment_id], max_results=10000, order_by=["attributes.start_time ASC"]):
            p = by_name.get(run.data.tags.get(NAME_TAG, ""))
            if p is not None:
                seconds = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000
                rows.append(Outcome(p, run.info.run_id, 0 if run.info.status == "FINISHED" else 1, seconds))
        rows.sort(key=lambda r: r.program.name)
        return _finish(rows, client, tracking_uri, experiment, args)
    experiment_id = exp.experiment_id if exp else client.create_experiment(experiment, _artifacts_beside(tracking_uri))
    for old in client.search_runs([experiment_id], max_results=10000):  # a rerun replaces earlier runs
        if old.data.tags.get(NAME_TAG) in {p.name for p in progs}:
            client.delete_run(old.info.run_id)
    print(
        f"running {len(progs)} programs into {tracking_uri} (experiment {experiment!r})"
        + (", curves only" if args.no_recorder else ""),
        flush=True,
    )
    t0 = time.time()

    def job(p: Program) -> Outcome:
        o = run_one(p, client, experiment_id, tracking_uri, args.no_recorder)
        print(f"  {p.name:<36} rc={o.rc} {o.seconds:5.1f}s", flush=True)
        return o

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        rows = list(pool.map(job, progs))
    print(f"trained in {time.time() - t0:.0f}s; auditing ...", flush=True)
    return _finish(rows, client, tracking_uri, experiment, args)


def _artifacts_beside(tracking_uri: str) -> str | None:
    """A sqlite store's artifacts in a folder beside its file (`DIR/NAME-artifacts`), not MLflow's default
    `./mlruns` under wherever the command ran (the repository: a `rm -rf mlruns` there lost every program's
    recorded evidence once). None (MLflow's default) for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///") :]).resolve()
    return (db.parent / f"{db.stem}-artifacts").as_uri()


def _finish(rows: list[Outcome], client, tracking_uri: str, experiment: str, args) -> int:
    audit(tracking_uri, experiment)
    for r in rows:
        tags = client.get_run(r.run_id).data.tags
        r.status = tags.get("nnaudit.status", "(not audited)")
        r.causes = [c for c in tags.get("nnaudit.causes", "").split(",") if c]
    print()
    print(format_table(rows, args.no_recorder))
    for r in rows:
        if r.rc != 0:
            print(f"\n--- {r.program.name} exited {r.rc}:\n{r.stderr_tail}")
    s = scores(rows, args.no_recorder)
    print()
    print(format_scores(s, args.no_recorder))
    print(f"\nstore: {tracking_uri}  (nnaudit explain RUN_ID --tracking-uri ... for one run)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "tracking_uri": tracking_uri,
                    "no_recorder": args.no_recorder,
                    "scores": s,
                    "rows": [
                        {
                            "program": r.program.name,
                            "truth": r.program.first,
                            "acceptable": r.program.acceptable,
                            "symptoms": r.program.symptoms,
                            "run_id": r.run_id,
                            "rc": r.rc,
                            "seconds": round(r.seconds, 1),
                            "status": r.status,
                            "causes": r.causes,
                        }
                        for r in rows
                    ],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
