"""`labels_unrelated`: the model memorises the training set and learns nothing that carries over."""

from __future__ import annotations

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import BLOWUP_READS, CHECK_LABELS, NOT_LEARNING, start_level, trend_evidence


class LabelsUnrelated(Rule):
    """Five readings of a model that learns nothing from its labels that carries over, as with shuffled, noisy or
    mispaired labels. (1) The training loss falls a long way (50% of its start or more; counted from where it
    stood at the first evaluation when that evaluation is already 2% below its start: a model evaluated after
    one epoch had learned, `helpers.train_level_when_first_validated`) while the validation loss, first
    evaluated above where the training loss ended (110% of it), never gets meaningfully better than its start
    (best within 2% of its first value, and of ln C where
    known: a first evaluation already below chance learned something in the first epoch); both falls measured
    from before an early blow-up (`stats.detect_blowup`). (2) A short run memorises slowly: the training loss
    falls (a significant downward trend, autocorrelation-corrected Mann-Kendall) while the validation loss rises
    (a significant upward trend; with ln C known, merely does not fall) and never gets meaningfully (2%) below
    ln C (else where training started), and the gap between them opens by more than 2% of that start: a model
    learning anything real improves validation first, however slowly. (3) With ln C known, training labels
    noisier than the validation ones: the training loss ends little better than chance (80% of ln C or more, the
    outcome's level) while the validation loss at its best is 20% or more below it. A model fits its own
    training data better than held-out data unless most training labels are noise; not read on a model with
    dropout (active only in training, it holds the training loss up by itself). (4) With the recorder:
    validation (5+ evaluations) and training losses no better than chance (95% of `RunView.no_signal_loss`) while every layer's
    update/weight ratio is in the usual 1e-5..1e-1, their median ~1e-3 or more: the optimiser works and finds no
    signal (low confidence, by elimination; `helpers.usual_steps_at_chance_finding`). (5) A regression's (2): the
    validation MSE never clearly under its targets' variance while the training loss falls under its own
    (`helpers.fit_not_carried_over_finding`). Readings 1 and 2 rest on
    memorisation, which leaves held-out accuracy at chance (Zhang et al. 2017): neither is read when a logged
    validation accuracy ends clearly above chance (`helpers.accuracy_above_chance`: a one-sided binomial test at
    1%, against 1/C (1/2 with no class count), with the evaluation set's size, else a cautious 100). On a plain
    `nn.RNN` listed after `vanishing_gradients` (through time) when that is found."""

    cause = "labels_unrelated"
    explained_by = ("class_imbalance", "train_val_preprocessing_mismatch", "too_much_regularization", *NOT_LEARNING)
    contradicted_by = ("learning_rate_too_high",)
    reads = (
        *BLOWUP_READS,
        ("loss", "chance_loss"),
        ("model", "dropout"),
        *helpers.UPDATE_RATIO_READS,
        *helpers.MEAN_READS,
    )
    reads += (*helpers.ABOVE_CHANCE_READS, *helpers.PLAIN_RNN_READS, *helpers.PRIOR_READS, *helpers.LINEAR_STACK_READS)
    consequence_of = ("repeated_batch", "nonfinite_inputs")  # listed after these when they are found too

    #: the training loss must fall at least this share of its start ("a long way")
    MIN_TRAIN_GAIN = 0.5
    #: a validation loss whose best is within this share of its start never learned anything
    MAX_VAL_GAIN = 0.02
    #: the opposite-trends reading: the train/validation gap must open by this share of the
    #: training loss's start (the same "meaningful" scale as MAX_VAL_GAIN)
    MIN_GAP_OPENED = 0.02
    #: the noisy-training-labels reading: a training loss ending at this share of ln C or more is
    #: little better than chance (the outcome's "warning" level, `base.CHANCE_LEVELS`) ...
    NEAR_CHANCE = 0.8
    VAL_BELOW_TRAIN = 0.8  # ... while the validation loss at its best is this share of that training loss or less
    CHANCE_EVALS = 5  # reading 4: validation evaluations no better than chance needed (plateau's `val_at_chance`)

    def evaluate(self, view: RunView) -> Finding | None:
        memorised = () if helpers.accuracy_above_chance(view) else (self._memorising, self._against_training)
        readings = (*memorised, lambda v: helpers.noisy_training_labels_finding(self, v))
        found = next((f for read in readings if (f := read(view)) is not None), None)
        found = (
            found
            or helpers.usual_steps_at_chance_finding(self, view)
            or helpers.fit_not_carried_over_finding(self, view)
        )
        if found and helpers.plain_rnn(view):
            found.follows = (*found.follows, "vanishing_gradients")  # a plain RNN at chance: through time first
        return found

    def _memorising(self, view: RunView) -> Finding | None:
        """The main reading: training falls a long way, validation never improves on its start."""
        tr, va = view.levels(TRAIN_LOSS), view.levels(VAL_LOSS)
        if tr is None or va is None or tr.start <= 0 or va.start <= 0:
            return None
        tr_start, va_start = start_level(view, TRAIN_LOSS) or tr.start, start_level(view, VAL_LOSS) or va.start
        if tr_start <= 0 or va_start <= 0:
            return None
        if va_start < (1 - self.MAX_VAL_GAIN) * tr_start:  # first evaluated after learning: count training's fall
            tr_start = min(tr_start, helpers.train_level_when_first_validated(view) or tr_start)  # from there too
        train_gain, val_gain = (tr_start - tr.end) / tr_start, (va_start - va.best) / va_start
        # a first evaluation already at where training ended scored a model that had learned, or another
        # predictor (a bicubic upscaling's MSE computed as a baseline before training)
        if train_gain < self.MIN_TRAIN_GAIN or val_gain > self.MAX_VAL_GAIN or va_start <= 1.1 * tr.end:
            return None
        chance = view.chance_loss()
        if chance and (chance - va.best) / chance > self.MAX_VAL_GAIN:
            return None  # first evaluated below chance: it learned something in the first epoch, then overfitted
        va_key = view.curve(VAL_LOSS).key
        return self.finding(
            confidence="medium",
            severity="failed",
            score=min(1.0, train_gain),
            summary=f"the training loss fell {train_gain:.0%} while the validation loss never improved on its start "
            f"(best {val_gain:.0%} below it)",
            recommendation="The model memorises the training set but learns nothing that generalises: " + CHECK_LABELS,
            evidence=[Evidence("train_vs_val_progress", va_key, {"train_gain": train_gain, "val_best_gain": val_gain})],
        )

    def _against_training(self, view: RunView) -> Finding | None:
        """The short-run reading: validation does not fall from the start while training does."""
        tr, va = view.finite_curve(TRAIN_LOSS), view.finite_curve(VAL_LOSS, min_points=4)
        lv = view.levels(TRAIN_LOSS)
        if tr is None or va is None or lv is None:
            return None
        # where a model that knows nothing stands: the chance loss ln C, else the first training loss
        # (not a block median, which a fast first fall has already pulled down)
        tr_start = view.chance_loss() or float(tr.values[0])
        if tr_start <= 0:
            return None
        v = va.values
        if (tr_start - float(v.min())) / tr_start > self.MAX_VAL_GAIN:
            return None  # validation got better than where training started: something carried over
        val_trend = stats.mann_kendall(va.steps, v)
        train_trend = view.trend(TRAIN_LOSS)
        # a validation loss that merely did not fall says as much only when it sat at a known ln C
        if val_trend.direction < (0 if view.chance_loss() else 1) or train_trend is None or train_trend.direction >= 0:
            return None
        opened = (float(v[-1]) - lv.end) - (float(v[0]) - tr_start)
        if opened < self.MIN_GAP_OPENED * tr_start:
            return None
        train_gain = (tr_start - lv.end) / tr_start
        rose = val_trend.direction > 0
        return self.finding(
            p_value=val_trend.p_value if rose else train_trend.p_value,
            confidence="medium",
            severity="failed",
            score=min(1.0, opened / tr_start),
            summary=f"the validation loss {'rose from its first evaluation' if rose else 'did not fall'} ({v[0]:.3g} "
            f"to {v[-1]:.3g}, never meaningfully below chance or the training loss's start) while the training loss "
            f"fell {train_gain:.0%}",
            recommendation="Whatever the model learns from the training labels "
            + ("makes validation worse from the first epoch: " if rose else "does not carry over to validation: ")
            + CHECK_LABELS,
            evidence=[
                Evidence("validation_against_training", va.key, {"train_gain": train_gain, "gap_opened": opened}),
                trend_evidence("mann_kendall_val_whole", va.key, val_trend),
                trend_evidence("mann_kendall_train_whole", tr.key, train_trend),
            ],
        )
