"""`repeated_batch`: the same batch is fed again and again."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import EPOCH_LENGTH_READS, stuck


class RepeatedBatch(Rule):
    """On sampled training steps the recorder fingerprints the model's input batch (its shape
    and 16 values at evenly spaced positions). Reported when at least 4 batches were sampled
    and one fingerprint makes up at least half of them: the same batch is fed again and
    again. Full-batch training (the training DataLoader has a single batch per epoch) is not
    reported. When the training DataLoader (or params: steps per epoch, a dataset and a batch
    size) says an epoch has more batches than were seen, it is a definite bug (high confidence):
    `next(iter(loader))` is seen as the loader it iterates. Without anything to say so, the same
    input every step is also what full-batch training without a DataLoader looks like
    (`model(X_train)` every epoch, a graph network fed the whole graph): reported at medium
    confidence as a set-up risk, a cause only when the outcome shows harm (a validation loss near
    chance, overfitting) and an advisory on a run that trained well; and not at all where the
    training loss is stuck (a model fed one batch memorises it: the same batch cannot be what held
    the training loss still, as with regression targets in the billions fed whole). The recorder also
    fingerprints the first 16 training batches in a row: when most of them differ from the batch
    just before (fewer than half repeat it), the repeats are a few batches fed in turn, epoch
    after epoch (a training set of a couple of batches, or an unshuffled loader sampled in step
    with its epoch), not one batch fed step after step, and nothing is reported (a tiny training
    set is `dataset_too_small`'s business). Unless the loader (or params) says an epoch holds 4 or
    more times as many batches as that cycle: then every epoch is cut short to the same few batches
    (Lightning's `overfit_batches` left on, a `break` in the loop), a definite bug whatever the share.
    A WeightedRandomSampler with fewer weights than samples draws only indices below that count: a bug
    at 10% of the data or less or one weight per class (failed), else a risk (a split in the first rows)."""

    cause = "repeated_batch"
    reads = (("inputs", "fingerprints"), ("inputs", "fingerprints", "consecutive_repeats"), *EPOCH_LENGTH_READS)
    reads += (*(("data_loader", "train", k) for k in ("sampler_population", "dataset_size")), ("loss", "n_classes"))
    FEW_SAMPLES = 0.1  #: a sampler drawing from this share of the dataset or less feeds almost nothing of it

    #: sampled training batches needed before a repeat means anything
    MIN_BATCHES = 4
    #: the most common fingerprint's share of the sampled batches that makes a repeat (two
    #: different batches of real data agree on 16 spread-out values essentially never, so any
    #: repeat is suspicious; half of all batches is a margin against the loops that legitimately
    #: revisit a batch now and then, e.g. an unshuffled epoch sampled at a multiple of its length)
    SHARE = 0.5
    #: a repeat this common means nothing else was fed: a failed run
    FAILED_SHARE = 0.9
    #: the share of consecutive early batches that repeat the one before, below which the batches
    #: change from step to step (the bug repeats every one; a model called twice per step on each
    #: batch, every other one)
    BACK_TO_BACK = 0.5
    #: a cycle of k batches fed in turn from the first step while the loader's epoch holds this many
    #: times k or more: every epoch is cut short to the same few batches
    CUT_SHORT = 4
    CUT_ADVICE = (
        "every epoch stops after the same few batches. Look for Lightning's `overfit_batches` or "
        "`limit_train_batches` left on from debugging, or a `break` in the batch loop; with `shuffle=False` "
        "the same batches come first each epoch."
    )

    def applies(self, view: RunView) -> bool:
        """Not on full-batch training (one batch per epoch, a batch the size of the dataset, or
        L-BFGS calling the model on the same batch): the same batch every step is the design."""
        return not view.full_batch()

    def _weights_per_class(self, view: RunView) -> Finding | None:  # fewer sampler weights than samples
        train = view.fact("data_loader", "train") or {}
        k, n = train.get("sampler_population"), train.get("dataset_size")
        if not (isinstance(k, int) and isinstance(n, int) and 0 < k < n):
            return None
        # one weight per class: a bug; 80% of the data may be a training split kept in the first rows
        per_class = k <= self.FEW_SAMPLES * n or k == view.fact("loss", "n_classes")
        return self.finding(
            confidence="high" if per_class else "medium",
            severity="failed" if per_class else "warning",
            kind="bug" if per_class else "risk",
            score=1 - k / n,
            summary=f"the training DataLoader's WeightedRandomSampler holds {k} weights for a dataset of {n} samples: "
            f"it never draws an index from {k} on"
            + (f", so every batch is made of those {k} samples" if per_class else ""),
            recommendation="WeightedRandomSampler takes one weight per sample, not per class: give it each sample's "
            "class weight (`weights = class_weight[labels]`, one entry per sample) with `num_samples=len(dataset)`.",
            evidence=[Evidence("sampler_population", schema.DIAGNOSTICS_ARTIFACT, {"weights": k, "dataset_size": n})],
        )

    def evaluate(self, view: RunView) -> Finding | None:
        if (few := self._weights_per_class(view)) is not None:
            return few
        fp = view.fact("inputs", "fingerprints")
        if not isinstance(fp, dict) or fp.get("sampled_batches", 0) < self.MIN_BATCHES:
            return None
        share, distinct = fp["most_common_share"], fp["distinct"]
        # the training DataLoader, else params (steps per epoch, data/batch size); not an `epoch` curve: a
        # loop that logs `epoch` at step = epoch would read as one batch an epoch and silence the rule
        epoch = view.epoch_length(from_curve=False)
        cycle = fp.get("cycle_batches")
        if isinstance(cycle, int) and epoch is not None and epoch[0] >= self.CUT_SHORT * cycle:
            told = (
                f": {cycle} batches fed in turn from the first step, although {epoch[1]} gives {epoch[0]:.0f} per epoch"
            )
            return self._found(view, fp, "high", None, told, self.CUT_ADVICE)
        if share < self.SHARE:
            return None
        back_to_back = fp.get("consecutive_repeats")
        if isinstance(back_to_back, (int, float)) and back_to_back < self.BACK_TO_BACK:
            return None  # consecutive steps got different batches: the repeats come round once per epoch
        if epoch is not None and epoch[0] <= distinct:
            return None  # the epoch has no more batches than were seen: full-batch or tiny data
        if epoch is not None:
            told = f" although {epoch[1]} gives {epoch[0]:.0f} batches per epoch"
            return self._found(view, fp, "high", None, told)
        # Nothing says the run has more than one batch: one input fed every step from the first
        # is also what full-batch training without a DataLoader looks like (`model(X_train)` each
        # epoch, a graph network fed the whole graph). Not a definite bug then but a set-up risk:
        # a cause when the outcome shows harm (a validation loss near chance, overfitting), an
        # advisory on a run that trained well. Not where the training loss is stuck: a model fed one
        # batch memorises it, so the same batch cannot be what held a training loss still.
        sk = stuck(view)
        if sk is not None and sk.stuck:
            return None
        return self._found(view, fp, "medium", "risk", "")

    def _found(
        self, view: RunView, fp: dict, confidence: str, kind: str | None, told: str, advice: str = ""
    ) -> Finding:
        share, distinct, n = fp["most_common_share"], fp["distinct"], fp["sampled_batches"]
        full = "" if told else " (or, with no DataLoader to say otherwise, full-batch training)"
        advice = advice or (
            "iterate the loader (`for x, y in loader:`) instead of calling `next(iter(loader))` every step, and "
            "check that the batch variables (or the slice index) are reassigned inside the loop, not taken once "
            "before it. If you train full-batch on purpose, ignore this."
        )
        return self.finding(
            confidence=confidence,
            # a set-up risk (nothing says the run has more than one batch) is no definite failure
            severity="failed" if share >= self.FAILED_SHARE and kind != "risk" else "warning",
            kind=kind,
            score=share,
            summary=f"{share:.0%} of {n} sampled training batches were the same batch ({distinct} distinct){told}{full}",
            recommendation=f"The model was fed the same batch on {share:.0%} of the {n} sampled steps{told}: {advice}",
            evidence=[
                Evidence(
                    "batch_fingerprints",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {**fp, "loader_batches_per_epoch": view.fact("data_loader", "train", "batches_per_epoch")},
                )
            ],
        )
