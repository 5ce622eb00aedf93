"""`batch_size_too_large`: batches so large that an epoch gives only a few updates."""

from __future__ import annotations

import math

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import (
    BATCH_SIZE_READS,
    DATASET_SIZE_READS,
    PLATEAU_MAX_IMPROVEMENT,
    TAIL_START,
    trend_evidence,
)


class BatchSizeTooLarge(Rule):
    """The training batch holds at least 10% of the training set (at most 10 updates per
    epoch) and the run shows what that costs: the training loss is still falling
    significantly at the end (it ran out of updates) or made less than 30% progress. Batch and
    dataset sizes come from the recorder's training DataLoader (medium confidence) or from
    params such as `batch_size` and `n_train` (low). Full-batch training on purpose looks the
    same; the recommendation says so. A batch accumulated over k backward passes per update (the
    HF Trainer's `gradient_accumulation_steps`, Lightning's `accumulate_grad_batches`, read from the
    params) is k times the loader's batch: 16 x 16 of 2,000 samples is 8 updates an epoch. Not on a
    training set of 32 samples or fewer (the smallest batch the advice names): no smaller batch helps
    there, and a batch size over the data means the whole data in each batch."""

    cause = "batch_size_too_large"
    #: a batch that is a large share of a training set the model runs out of (`dataset_too_small`)
    #: is the small data's doing: more data is the fix, not a smaller batch
    explained_by = ("repeated_batch", "dataset_too_small")
    reads = (*DATASET_SIZE_READS, *BATCH_SIZE_READS)

    #: a batch holding this share of the training set leaves <= 10 updates per epoch (Keskar et al.
    #: 2017 studied "large batch" as 10% of the training set; the usual 32-512 is well under 1-2%)
    LARGE_BATCH_SHARE = 0.1
    #: less progress than this is "made little progress" (shared with plateau)
    MAX_IMPROVEMENT = PLATEAU_MAX_IMPROVEMENT
    #: the tail window for "still falling at the end" (shared)
    TAIL_START = TAIL_START

    #: the smallest batch the advice names: a training set no larger gains nothing from smaller batches
    SMALLEST_ADVISED = 32
    #: params that say how many batches are accumulated into one update
    ACCUMULATION_PARAMS = ("gradient_accumulation_steps", "accumulate_grad_batches", "grad_accum_steps")

    def evaluate(self, view: RunView) -> Finding | None:
        n, bs = view.dataset_size(), view.batch_size()
        acc = view.param_float(*self.ACCUMULATION_PARAMS)
        k = int(acc[1]) if acc is not None and 1 < acc[1] < 1e6 else 1
        bs = (bs[0] * k, f"{bs[1]} x {acc[0]}={k}" if k > 1 else bs[1]) if bs is not None else None
        if n is None or bs is None or bs[0] < self.LARGE_BATCH_SHARE * n[0]:
            return None
        if n[0] <= self.SMALLEST_ADVISED:
            return None  # no smaller batch gives more updates: the data is too few, not the batch too large
        bs = (min(bs[0], n[0]), bs[1])  # a batch size over the data is the whole data in each batch
        tail = view.trend(TRAIN_LOSS, self.TAIL_START, 1.0)
        uf = view.underfit()
        still_falling = tail is not None and tail.direction < 0
        little = uf is not None and uf.improvement < self.MAX_IMPROVEMENT
        if not (still_falling or little):
            return None
        per_epoch = math.ceil(n[0] / bs[0])
        curve = view.curve(TRAIN_LOSS)
        # the recorder's loss has a point per step (or per window of steps) up to the end
        updates = len(curve) if curve is not None and curve.key.startswith(schema.METRIC_PREFIX) else None
        from_loader = n[1].startswith("the training") and bs[1].startswith("the training")
        what = (
            f"batches of {bs[0] / k:,.0f} accumulated {k} times ({bs[0]:,.0f}"
            if k > 1
            else f"batches of {bs[0]:,.0f} ("
        )
        seen = (
            "the training loss was still falling when it stopped"
            if still_falling
            else (
                f"the training loss fell only {uf.improvement:.0%}"
                if uf.improvement > 0
                else "the training loss did not fall"
            )
        )
        upd = f", {updates:,} in the whole run" if updates else ""
        return self.finding(
            confidence="medium" if from_loader else "low",
            severity="warning",
            score=min(1.0, bs[0] / n[0]),
            summary=f"{what} out of {n[0]:,.0f} samples, {bs[0] / n[0]:.0%}): {per_epoch} updates per epoch{upd}; {seen}",
            recommendation=f"Each batch holds {bs[0] / n[0]:.0%} of the data ({bs[0]:,.0f} of {n[0]:,.0f}), so an epoch "
            f"gives only {per_epoch} updates{upd} and {seen}. "
            + ("Accumulate fewer batches per update (or none), or use" if k > 1 else "Use")
            + " batches of 32-256 (a few percent of the data at most) for the same epochs; or, to keep the large "
            "batch, raise the learning rate with it (linear scaling with a warm-up) and train for more steps.",
            evidence=[
                Evidence(
                    "batch_vs_dataset",
                    None,
                    {
                        "batch_size": bs[0],
                        "batch_source": bs[1],
                        "dataset_size": n[0],
                        "dataset_source": n[1],
                        "updates_per_epoch": per_epoch,
                        "updates": updates,
                    },
                ),
                *([trend_evidence("mann_kendall_tail", curve.key, tail)] if still_falling else []),
            ],
        )
