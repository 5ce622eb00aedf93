"""`dataset_too_small`: the model runs out of data early."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_step
from mlflow_nnaudit.auditor.rules.helpers import (
    BATCH_SIZE_READS,
    DATASET_SIZE_READS,
    LEARNING_RATE_READS,
    OVERFIT_GL,
    PLATEAU_MAX_IMPROVEMENT,
    UPDATE_RATIO_READS,
    early_overfit,
    large_steps,
)


class DatasetTooSmall(Rule):
    """The model overfits early: the validation loss is best within the first 30% of the run (the first
    half on a training set known to be small, anywhere on one known to hold under 100 samples) and ends at least 10% above that best (Prechelt's generalisation loss), rising after it
    (an upward trend, or 3 consecutive rising evaluations, as `overfitting` asks), while the
    training loss keeps falling. A validation loss that only wanders above one low point (a
    noisy curve's lucky dip, or a loss near zero whose tiny absolute changes are large in %)
    is no sign of data running out. With the training set's size known (the recorder's
    DataLoader, or a param such as `n_train`) and small (under 1,000 samples, or at least 100 model
    parameters per sample) the confidence is medium; from the curves alone it is low. A batch is
    a lower bound of the set's size: one that is not small by these measures (full-batch L-BFGS on
    1,024 samples) says the set is not small either. Under steps 10x their usual size
    (`helpers.large_steps`: an adaptive optimiser at 1e-2 or more, SGD moving 1% of each weight a
    step) on a set not known to be small, it is listed after `learning_rate_too_high`: such steps
    race through any data, and the rate is the first thing to try. Without an overfit: a training
    DataLoader whose dataset holds fewer samples than one of its batches, while the validation loss
    fell less than 30%, trained on a handful of samples every step (a Dataset's `__len__` that
    counts the wrong thing, a split that kept a few rows): the loader's own figures say so, where it was
    iterated for training every time, twice or more."""

    cause = "dataset_too_small"
    explained_by = ("labels_unrelated", "train_val_preprocessing_mismatch", "repeated_batch")
    reads = (*DATASET_SIZE_READS, ("model", "parameters"), schema.PARAM_MODEL_PARAMETERS, *UPDATE_RATIO_READS)
    reads += (*BATCH_SIZE_READS, *LEARNING_RATE_READS)
    LOADER = ("dataset_size", "batch_size", "training_iterations", "iterations")  #: read by the under-one-batch reading
    reads += tuple(("data_loader", "train", k) for k in LOADER)

    #: Prechelt's generalisation loss (%) that counts as overfitting (shared with overfitting)
    GL = OVERFIT_GL
    #: validation loss best in this early share of the run, then overfitting: the data ran out early
    EARLY_OVERFIT_SHARE = 0.3
    #: fewer training samples than this, or more than this many parameters per sample, is small data
    #: for a neural network (starting points: the classical 10-samples-per-parameter rule is far
    #: stricter; these flag only the clearly small cases)
    SMALL_DATASET = 1000
    PARAMS_PER_SAMPLE = 100.0
    #: ... or in this share, on a training set known to be small (the recorder's DataLoader, a param)
    KNOWN_SMALL_SHARE = 0.5
    #: a training set known to hold fewer samples than this is tiny: an overfit starting anywhere in the run
    #: is the data running out (10x under SMALL_DATASET: no network of any size has enough samples there)
    TINY_DATASET = 100
    #: consecutive rising evaluations that count as a rise without a significant trend (Prechelt's UP_3)
    UP_EVALS = 3

    #: a validation loss that fell less than this share learned little (shared with the plateau reading)
    LEARNED_LITTLE = PLATEAU_MAX_IMPROVEMENT

    def _under_one_batch(self, view: RunView) -> Finding | None:
        """The training DataLoader's dataset is smaller than one of its batches and the validation loss
        learned little: every step saw the same handful of samples."""
        n, b, t, it = (view.fact("data_loader", "train", k) for k in self.LOADER)
        lv = view.levels(VAL_LOSS)
        if not (isinstance(n, int) and isinstance(b, int) and 0 < n < b) or lv is None or lv.start <= 0:
            return None
        if not (isinstance(t, int) and 2 <= t == it):  # not a validation loader run with gradients on (review)
            return None
        gain = (lv.start - lv.best) / lv.start
        if gain >= self.LEARNED_LITTLE:
            return None
        # with drop_last the loader drops its only batch: no step trained at all
        fed = (
            "No step trained (`drop_last=True` drops the only, incomplete batch)"
            if view.fact("data_loader", "train", "batches_per_epoch") == 0
            else f"Every step trained on the same {n} samples"
        )
        return self.finding(
            confidence="high",
            severity="warning",
            score=1 - n / b,
            summary=f"the training DataLoader holds {n} samples, fewer than one batch of {b}, and the validation "
            f"loss fell only {max(gain, 0):.0%}",
            recommendation=f"{fed}: the training Dataset says it holds {n} "
            f"though the DataLoader asks for batches of {b}. Check the Dataset's `__len__` (it must count samples, "
            "not lists or columns) and the train/validation split.",
            evidence=[
                Evidence("dataset_size", schema.DIAGNOSTICS_ARTIFACT, {"samples": n, "batch_size": b}),
                Evidence("validation_gain", view.curve(VAL_LOSS).key, {"start": lv.start, "best": lv.best}),
            ],
        )

    def evaluate(self, view: RunView) -> Finding | None:
        if (tiny := self._under_one_batch(view)) is not None:
            return tiny
        n = view.dataset_size()
        params = view.fact("model", "parameters")
        if not isinstance(params, int):
            p = view.param_float(schema.PARAM_MODEL_PARAMETERS, "parameters", "n_parameters", "num_parameters")
            params = int(p[1]) if p else None

        def too_few(count: float) -> bool:
            return count < self.SMALL_DATASET or (params is not None and params / count >= self.PARAMS_PER_SAMPLE)

        small = n is not None and too_few(n[0])
        # a set known to be small explains an overfit that starts by mid-run too; from the curves, only an early one
        tiny = n is not None and n[0] < self.TINY_DATASET
        share = 1.0 if tiny else self.KNOWN_SMALL_SHARE if small else self.EARLY_OVERFIT_SHARE
        eo = early_overfit(view, share, self.UP_EVALS)
        if eo is None:
            return None  # no overfit, a late one, or above its best without rising: a dip or noise
        # a training set holds at least one batch: a batch that is not small says the set is not either
        bs = view.batch_size() if n is None else None
        if (n is not None and not small) or (bs is not None and not too_few(bs[0])):
            return None  # plenty of data: the overfitting rules say what to do
        best_step, best_share, gl = eo.best_step, eo.best_share, eo.gl
        size_text = ""
        if n is not None:
            size_text = f" with only {n[0]:,.0f} training samples" + (
                f" for {params:,} parameters ({params / n[0]:,.0f} per sample)" if params else ""
            )
        return self.finding(
            confidence="medium" if small else "low",
            severity="warning",
            score=min(1.0, gl / 100.0),
            summary=f"the validation loss was best {best_share:.0%} into the run (step {fmt_step(best_step)}) and "
            f"ended {gl:.0f}% above it{size_text}",
            recommendation=f"The model runs out of data{' early' if best_share <= self.KNOWN_SMALL_SHARE else ''}: validation loss best at step {fmt_step(best_step)} "
            f"({best_share:.0%} into the run), {gl:.0f}% worse by the end{size_text}. Get more data or augment "
            "it, use a smaller model or a pre-trained one, add weight decay/dropout, and stop at the best "
            "validation point.",
            # steps 10x the usual size race through the data: the rate is the first suspect, unless the
            # set is known to be small
            follows=("learning_rate_too_high",) if not small and large_steps(view) else (),
            evidence=[
                Evidence("early_overfitting", eo.key, {"best_share_of_run": best_share, "GL_percent": gl}),
                Evidence(
                    "dataset_size",
                    schema.DIAGNOSTICS_ARTIFACT if n and n[1].startswith(("the training", "the recorder")) else None,
                    {"samples": n[0] if n else None, "source": n[1] if n else None, "parameters": params},
                ),
            ],
        )
