"""Generate the corpus: train every `RunSpec` in worker processes, merge their stores into one,
then label the sweeps by outcome and split tune/held-out.

Parallel writers and sqlite do not mix (one writer lock), so each worker process trains into a
sqlite file of its own (`<dir>/shards/`), with artifacts written straight into the shared
`<dir>/artifacts/`; at the end the shards' rows are copied into the one store in a single SQL
pass (same MLflow, same schema, run ids are unique) and the shards are deleted.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import sqlite3
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.corpus.specs import RunSpec, enumerate_specs, key_hash

EXPERIMENT = "corpus"
CHANCE = math.log(4)
#: a sweep run "exploded" when a training loss went non-finite or above this multiple of chance
EXPLODED_FACTOR = 3.0
#: share of the best run's improvement over chance a sweep run must reach to be `healthy` ...
HEALTHY_PROGRESS = 0.6
#: ... and below which it "barely moved" (too low below the best learning rate, too high above it)
STALLED_PROGRESS = 0.3
#: a sweep whose best run improved on chance by less than this has no stable range: all borderline
MIN_SWEEP_GAIN = 0.1
#: a run "overfit" when its final validation loss ended this many times above its best (Prechelt's
#: generalization loss GL >= 50%, his scale's top end), ...
OVERFIT_RATIO = 1.5
#: ... by at least this much in absolute terms (a tenth of the chance loss: 0.001 -> 0.004 is no harm), ...
OVERFIT_MIN_RISE = 0.1 * CHANCE
#: ... its best was a healthy result (progress >= HEALTHY_PROGRESS) and its training loss ended below that best
#: (see `overfit`)

#: an imperfect run that barely moved is `learning_rate_too_low` when its rate is this many times under the best
#: rate of the sweep with its family, optimiser and seed (else it stays `healthy`: a short budget is no fault)
IMPERFECT_LOW_LR_FACTOR = 3.0
#: an injected `initial_loss_mismatch` whose first training loss is within this of ln 4 did not show (BERT's
#: classifier head starts at std 0.02: x10 leaves its logits near 0): `borderline`. 0.25 nat is what logits of
#: std ~0.7 add to ln C; a correctly initialised model's first-batch loss scatters ~0.1 nat around ln 4.
MISMATCH_SHOWN_NATS = 0.25
#: an injected too-fast decay whose run still got within this of its sweep's best validation loss did not
#: show either: the catalog's `lr_decay_too_fast` is a schedule that takes the rate away "before the model has
#: learned", and a model this close to the best its family, optimiser and seed reach had learned (the same
#: tenth of the chance loss that an overfit must rise by, OVERFIT_MIN_RISE): `borderline`
DECAY_SHOWN_NATS = 0.1 * CHANCE

TAG = "corpus."


def store_dir(tracking_uri: str) -> Path:
    if not tracking_uri.startswith("sqlite:///"):
        raise SystemExit("the corpus is written into a sqlite store: --tracking-uri sqlite:///DIR/mlflow.db")
    return Path(tracking_uri[len("sqlite:///") :]).resolve().parent


# --- the worker process -------------------------------------------------------------------------
_W: dict = {}


def _init_worker(shard_dir: str, artifact_root: str) -> None:
    import logging
    import warnings

    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "lightning", "lightning.pytorch", "transformers", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    uri = f"sqlite:///{shard_dir}/w{os.getpid()}.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri  # the HF Trainer's MLflow callback reads it
    work = tempfile.mkdtemp(prefix="work-", dir=shard_dir)  # removed with the shards
    os.chdir(work)  # the Trainer's output_dir, Lightning's lightning_logs
    import lightning.pytorch  # noqa: F401 - imported before autolog(), so that it is patched
    import mlflow
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    mlflow.set_tracking_uri(uri)
    exp_id = mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_root)
    mlflow.autolog(log_models=False, log_datasets=False, silent=True)  # the recorder comes on with it
    # Lightning runs still saved their model (a pickle and a pip-requirements subprocess, ~30 s each on
    # a busy machine) with mlflow.autolog(log_models=False) alone: say it to the PyTorch flavor too, and
    # switch off its best-checkpoint saving (checkpoint=True by default, a model pickle per improving epoch)
    mlflow.pytorch.autolog(log_models=False, log_datasets=False, silent=True, checkpoint=False)
    _W.update(exp_id=exp_id, work=work)


def _train_one(spec_json: str) -> dict:
    import mlflow

    from benchmarks.corpus.train import train_spec

    spec = RunSpec(**json.loads(spec_json))
    t0 = time.time()
    error = ""
    with mlflow.start_run(experiment_id=_W["exp_id"], run_name=spec.key) as run:
        mlflow.set_tags(
            {
                TAG + "key": spec.key,
                TAG + "kind": spec.kind,
                TAG + "group": spec.group,
                TAG + "fault": spec.fault,
                TAG + "severity": str(spec.severity),
                TAG + "injected": spec.truth,
                TAG + "spec": spec_json,
            }
        )
        mlflow.log_params({"family": spec.family, "style": spec.style, "seed": spec.seed})
        try:
            out = train_spec(spec)
        except Exception as exc:  # noqa: BLE001 - a run that crashes is recorded as such, the corpus goes on
            out = {"losses": [], "val": []}
            error = f"{type(exc).__name__}: {exc}"[:500]
        losses, vals = out["losses"], out["val"]
        finite = [v for v in losses if math.isfinite(v)]
        finite_vals = [v for v in vals if math.isfinite(v)]
        tail = finite[-max(1, len(finite) // 10) :]
        facts = {
            "first_loss": losses[0] if losses else float("nan"),
            "max_loss": max(finite) if finite else float("nan"),
            "final_val": vals[-1] if vals else float("nan"),
            "best_val": min(finite_vals) if finite_vals else float("nan"),
            "final_train": sum(tail) / len(tail) if tail else float("nan"),
            "nonfinite": int(len(finite) < len(losses) or any(not math.isfinite(v) for v in vals)),
            "steps": len(losses),
        }
        mlflow.set_tags(
            {TAG + "outcome." + k: f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in facts.items()}
        )
        if error:
            mlflow.set_tag(TAG + "error", error)
    return {"key": spec.key, "run_id": run.info.run_id, "seconds": time.time() - t0, "error": error}


# --- the parent ---------------------------------------------------------------------------------
def generate(
    tracking_uri: str,
    jobs: int,
    size: str,
    echo=print,
    only: tuple[str, ...] = (),
    seeds: tuple[int, ...] | None = None,
    force_split: str | None = None,
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    root = store_dir(tracking_uri)
    root.mkdir(parents=True, exist_ok=True)
    db = (
        root / "mlflow.db" if tracking_uri.endswith("/mlflow.db") else Path(tracking_uri[len("sqlite:///") :]).resolve()
    )
    if db.exists():
        raise SystemExit(f"{db} exists: generate into a fresh folder")
    artifacts = root / "artifacts"
    shards = root / "shards"
    shutil.rmtree(shards, ignore_errors=True)
    shards.mkdir()
    specs = [s for s in enumerate_specs(size, seeds) if not only or any(o in s.key for o in only)]
    echo(f"{len(specs)} runs ({size}) with {jobs} worker(s) into {tracking_uri}")
    t0 = time.time()
    ctx = multiprocessing.get_context("spawn")
    done = []
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(str(shards), str(artifacts))) as pool:
        for i, res in enumerate(pool.imap_unordered(_train_one, [s.to_json() for s in specs]), 1):
            done.append(res)
            if i % 10 == 0 or i == len(specs) or res["error"]:
                echo(
                    f"[{i}/{len(specs)}] {time.time() - t0:5.0f}s  {res['key']} ({res['seconds']:.1f}s)"
                    + (f"  ERROR {res['error']}" if res["error"] else "")
                )
    echo(f"trained {len(done)} runs in {time.time() - t0:.0f}s; merging the shards")
    client = MlflowClient(tracking_uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=str(artifacts))
    merge_shards(db, sorted(shards.glob("*.db")), exp_id)
    shutil.rmtree(shards)
    echo("labelling the sweeps and splitting " + (f"(every run in {force_split!r})" if force_split else "tune/heldout"))
    summary = label_and_split(tracking_uri, force_split)
    for line in summary:
        echo(line)
    echo(f"done in {time.time() - t0:.0f}s: {tracking_uri} (artifacts in {artifacts})")
    del mlflow


def merge_shards(db: Path, shard_files: list[Path], exp_id: str) -> None:
    """Copy every run row of the shard stores into the store (experiment rows excepted; the
    shards' experiment id is rewritten to the store's)."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        skip = {"alembic_version", "experiments", "experiment_tags", "sqlite_sequence", "workspaces"}
        for i, shard in enumerate(shard_files):
            con.execute(f"ATTACH DATABASE ? AS s{i}", (str(shard),))
            shard_exp = con.execute(
                f"SELECT experiment_id FROM s{i}.experiments WHERE name=?", (EXPERIMENT,)
            ).fetchone()[0]
            for table in tables:
                if table in skip:
                    continue
                cols = [r[1] for r in con.execute(f"PRAGMA s{i}.table_info({table})")]
                if not cols or not con.execute(f"SELECT 1 FROM s{i}.{table} LIMIT 1").fetchone():
                    continue
                sel = ", ".join(
                    f"CASE WHEN {c} = {shard_exp} THEN {exp_id} ELSE {c} END" if c == "experiment_id" else c
                    for c in cols
                )
                con.execute(f"INSERT INTO main.{table} ({', '.join(cols)}) SELECT {sel} FROM s{i}.{table}")
            con.commit()
            con.execute(f"DETACH DATABASE s{i}")
    finally:
        con.close()


def _f(tags: dict, key: str) -> float:
    try:
        return float(tags.get(TAG + "outcome." + key, "nan"))
    except ValueError:
        return float("nan")


def overfit(tags: dict, best: float) -> str:
    """Why the run counts as overfit ('' when it does not): its own best validation loss was a healthy
    result against `best` (its sweep's or family's best final loss), then it ended OVERFIT_RATIO times
    above that best while its training loss ended below it."""
    final, own_best, train = _f(tags, "final_val"), _f(tags, "best_val"), _f(tags, "final_train")
    gain = CHANCE - best
    if not all(math.isfinite(v) for v in (final, own_best, train, best)) or gain < MIN_SWEEP_GAIN or own_best <= 0:
        return ""
    if (CHANCE - own_best) / gain < HEALTHY_PROGRESS or train >= own_best:
        return ""
    if final < OVERFIT_RATIO * own_best or final - own_best < OVERFIT_MIN_RISE:
        return ""
    return f"overfit: validation loss {own_best:.3g} at its best, {final:.3g} at the end, training loss {train:.3g}"


def sweep_label(lr: float, tags: dict, best: float, best_lr: float) -> tuple[str, str, str]:
    """(truth, why, also) of one sweep run, from its outcome against its sweep's best run (its fix).
    `also`: another answer accepted as right (a run that overfit at a rate above the best one is
    `overfitting`, and `learning_rate_too_high` explains why so soon)."""
    final, peak = _f(tags, "final_val"), _f(tags, "max_loss")
    gain = CHANCE - best
    if not math.isfinite(best) or gain < MIN_SWEEP_GAIN:
        return "borderline", "no run of its sweep learned: no stable range", ""
    exploded = tags.get(TAG + "outcome.nonfinite") == "1" or not math.isfinite(final) or peak > EXPLODED_FACTOR * CHANCE
    progress = (CHANCE - final) / gain if math.isfinite(final) else float("-inf")
    if not exploded and (why := overfit(tags, best)):
        return "overfitting", why, "learning_rate_too_high" if lr > best_lr else ""
    if exploded:
        if progress < HEALTHY_PROGRESS:
            return "learning_rate_too_high", f"exploded (peak loss {peak:.3g}), progress {progress:.2f}", ""
        return "borderline", f"spiked (peak loss {peak:.3g}) but trained, progress {progress:.2f}", ""
    if progress >= HEALTHY_PROGRESS:
        return "healthy", f"progress {progress:.2f}", ""
    if progress < STALLED_PROGRESS:
        cause = "learning_rate_too_high" if lr > best_lr else "learning_rate_too_low"
        return cause, f"barely moved (progress {progress:.2f}) at lr {lr:g}, best lr {best_lr:g}", ""
    return "borderline", f"progress {progress:.2f}, between stalled and healthy", ""


def imperfect_label(spec: dict, tags: dict, sweeps: dict) -> tuple[str, str, str]:
    """(truth, why, also) of an imperfect run: `healthy` as built, unless its outcome says otherwise
    against the sweep of its family, optimiser and seed (plain loop), or, lacking one, the best
    sweep run of its family and seed: it overfit (see `overfit`), or it barely moved at a rate
    IMPERFECT_LOW_LR_FACTOR times under that sweep's best rate."""
    fam, seed = spec["family"], spec["seed"]
    own = sweeps.get(f"{fam}/plain/{spec['optimizer']}/s{seed}")
    pool = [b for g, b in sweeps.items() if g.startswith(f"{fam}/") and g.endswith(f"/s{seed}")]
    best, best_lr = own or (min(pool) if pool else (float("nan"), float("nan")))
    if why := overfit(tags, best):
        # as in a sweep: above its sweep's best rate, the rate explains why it overfit so soon
        return "overfitting", why, "learning_rate_too_high" if own and spec["lr"] > best_lr else ""
    final = _f(tags, "final_val")
    gain = CHANCE - best
    if own and math.isfinite(final) and gain >= MIN_SWEEP_GAIN:
        progress = (CHANCE - final) / gain
        if progress < STALLED_PROGRESS and spec["lr"] * IMPERFECT_LOW_LR_FACTOR <= best_lr:
            return (
                "learning_rate_too_low",
                f"barely moved (progress {progress:.2f}) at lr {spec['lr']:g}, its sweep's best lr {best_lr:g}",
                "",
            )
    return "healthy", "imperfect healthy", ""


def fault_label(spec: dict, tags: dict, sweeps: dict | None = None) -> tuple[str, str, str]:
    """(truth, why, also) of a fault run: the injected cause, unless the fault plainly did not show in the
    quantity it is defined by: an initial loss mismatch whose first loss is ln 4, or a too-fast decay on
    a run that still reached its sweep's best validation loss (`sweeps`: group -> (best val, best lr))."""
    first = _f(tags, "first_loss")
    if spec["truth"] == "initial_loss_mismatch" and abs(first - CHANCE) < MISMATCH_SHOWN_NATS:
        return (
            "borderline",
            f"injected, but the first loss {first:.3g} is ln 4 within {MISMATCH_SHOWN_NATS}: not shown",
            "",
        )
    own = (sweeps or {}).get(f"{spec.get('family')}/plain/{spec.get('optimizer')}/s{spec.get('seed')}")
    reached = _f(tags, "best_val")
    if spec["truth"] == "lr_decay_too_fast" and own and reached - own[0] <= DECAY_SHOWN_NATS:
        return (
            "borderline",
            f"injected, but the run reached validation loss {reached:.3g}, within {DECAY_SHOWN_NATS:.3g} of its "
            f"sweep's best {own[0]:.3g}: the rate went after the model had learned",
            "",
        )
    return spec["truth"], "injected", ""


def _facts_from_curves(client, run) -> dict:
    """best_val and final_train of a run generated before they were recorded as outcome tags, from
    the curves it logged itself (plain and Lightning: val_loss/train_loss; HF Trainer: eval_loss/loss)."""
    keys = run.data.metrics
    out = {}
    for fact, names, pick in (
        ("best_val", ("val_loss", "eval_loss"), min),
        ("final_train", ("train_loss", "train_loss_epoch", "loss"), lambda v: v[-1]),
    ):
        name = next((k for k in names if k in keys), None)
        if TAG + "outcome." + fact in run.data.tags or name is None:
            continue
        hist = [m.value for m in sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)]
        hist = [v for v in hist if math.isfinite(v)]
        if hist:
            out[TAG + "outcome." + fact] = f"{pick(hist):.6g}"
    return out


def label_and_split(tracking_uri: str, force_split: str | None = None) -> list[str]:
    """Label every run (sweeps against their sweep's best run, faults by what was injected, imperfect runs
    by outcome) and split them tune/heldout (or all into `force_split`). A run that already has a split
    keeps it: relabelling after a labeller change never moves a run between the splits."""
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=50000)
    tags_of = {run.info.run_id: {**run.data.tags, **_facts_from_curves(client, run)} for run in runs}
    truth: dict[str, tuple[str, str, str]] = {}
    sweeps = defaultdict(list)
    imperfect, faults = [], []
    for run in runs:
        tags = tags_of[run.info.run_id]
        spec = json.loads(tags[TAG + "spec"])
        if tags.get(TAG + "error"):
            truth[run.info.run_id] = ("borderline", "the run crashed: " + tags[TAG + "error"], "")
        elif spec["kind"] == "sweep":
            sweeps[tags[TAG + "group"]].append((spec["lr"], run))
        elif spec["kind"] == "imperfect":
            imperfect.append((spec, run))
        else:
            faults.append((spec, run))
    ranges = []
    bests = {}
    for group, members in sorted(sweeps.items()):
        finals = [
            (_f(tags_of[r.info.run_id], "final_val"), lr)
            for lr, r in members
            if math.isfinite(_f(r.data.tags, "final_val")) and r.data.tags.get(TAG + "outcome.nonfinite") != "1"
        ]
        best, best_lr = min(finals) if finals else (float("nan"), float("nan"))
        if finals and CHANCE - best >= MIN_SWEEP_GAIN:
            bests[group] = (best, best_lr)
        labels = {}
        for lr, run in sorted(members, key=lambda m: m[0]):
            labels[lr] = sweep_label(lr, tags_of[run.info.run_id], best, best_lr)
            truth[run.info.run_id] = labels[lr]
        healthy = [lr for lr, (t, _, _) in labels.items() if t == "healthy"]
        ranges.append(
            f"  {group:<28} best lr {best_lr:g} (val {best:.3f}); healthy "
            + (f"{min(healthy):g}..{max(healthy):g}" if healthy else "none")
            + "; "
            + " ".join(f"{lr:g}:{_short(labels[lr][0])}" for lr in sorted(labels))
        )
    for spec, run in imperfect:
        truth[run.info.run_id] = imperfect_label(spec, tags_of[run.info.run_id], bests)
    for spec, run in faults:
        truth[run.info.run_id] = fault_label(spec, tags_of[run.info.run_id], bests)
    splits = assign_splits({run.data.tags[TAG + "key"]: truth[run.info.run_id][0] for run in runs})
    counts = defaultdict(lambda: [0, 0])
    for run in runs:
        t, why, also = truth[run.info.run_id]
        split = run.data.tags.get(TAG + "split") or force_split or splits[run.data.tags[TAG + "key"]]
        counts[t][split != "tune"] += 1
        extra = {k: v for k, v in tags_of[run.info.run_id].items() if k not in run.data.tags}
        client.log_batch(
            run.info.run_id,
            tags=[
                RunTag(TAG + "truth", t),
                RunTag(TAG + "split", split),
                RunTag(TAG + "why", why[:500]),
                RunTag(TAG + "also", also),
                *(RunTag(k, v) for k, v in extra.items()),
            ],
        )
    lines = [
        "sweeps (lr:label, H healthy, hi too high, lo too low, O overfitting, ? borderline):",
        *ranges,
        "truth: " + ", ".join(f"{t} {a}+{b}" for t, (a, b) in sorted(counts.items())) + " (tune+other)",
    ]
    return lines


def assign_splits(truth_by_key: dict[str, str]) -> dict[str, str]:
    """key -> 'tune' | 'heldout'. Stratified by truth and deterministic: within each truth, runs in
    the order of their key's hash, alternately tune and heldout, starting on the side a hash of the
    truth picks (so that the truths with an odd count do not all give their extra run to tune)."""
    by_truth = defaultdict(list)
    for key, t in truth_by_key.items():
        by_truth[t].append(key)
    out = {}
    for t, keys in by_truth.items():
        offset = key_hash(t) % 2
        for i, key in enumerate(sorted(keys, key=key_hash)):
            out[key] = "tune" if (i + offset) % 2 == 0 else "heldout"
    return out


def _short(t: str) -> str:
    return {"healthy": "H", "learning_rate_too_high": "hi", "learning_rate_too_low": "lo", "overfitting": "O"}.get(
        t, "?"
    )
