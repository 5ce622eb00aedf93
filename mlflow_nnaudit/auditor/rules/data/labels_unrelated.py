"""`labels_unrelated`: the model memorises the training set and learns nothing that carries over."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import CHANCE_LEVELS, Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import (
    BLOWUP_READS,
    UPDATE_RATIO_HIGH,
    UPDATE_RATIO_READS,
    start_level,
    trend_evidence,
)

CHECK_LABELS = (
    "check that labels match their inputs (shuffle inputs and labels together, check the join/pairing code), look "
    "at a few labelled samples by hand, and check that validation uses the same label mapping."
)


class LabelsUnrelated(Rule):
    """Three readings of a model that learns nothing from its labels that carries over, as with
    shuffled, noisy or mispaired labels. (1) The training loss falls a long way (50% of its start
    or more) while the validation loss never gets meaningfully better than its start (best within
    2% of its first value, and of ln C where known: a first evaluation already below chance
    learned something in the first epoch); both falls measured from before an early blow-up
    (`stats.detect_blowup`), not from an explosion's peak. (2) A short run memorises slowly: the
    training loss falls (a significant downward trend, autocorrelation-corrected Mann-Kendall)
    while the validation loss rises (a significant upward trend; with ln C known, merely does not
    fall) and never gets meaningfully (2%) below ln C (else where training started), and the gap
    between them opens by more than 2% of that start: a model learning anything real improves validation
    first, however slowly. (3) With ln C known, training labels noisier than the validation
    ones: the training loss ends little better than chance (80% of ln C or more, the outcome's
    level) while the validation loss at its best is 20% or more below it. A model fits its own
    training data better than held-out data unless most training labels are noise; not read on a
    model with dropout (active only in training, it holds the training loss up by itself). (4) With
    the recorder, nothing learned while the optimiser visibly works: the validation loss at its best
    over 5+ evaluations and the training loss at its end both no better than chance (95% of ln C or
    more, the outcome's "failed" level), while every layer's weights moved at a usual
    rate (median update/weight ratio over the second half within 1e-4..1e-1 in each layer and 1e-3,
    Karpathy's healthy level, across layers: no frozen, dead or starved layer, no rate too small).
    A model whose every layer takes steps of the usual size and still gains nothing over a uniform
    guess finds no signal in its labels: they are shuffled or paired with the wrong inputs (the
    spec's "loss at chance level"). Low confidence: a reading by elimination; left out when a
    finding of a mechanical cause of no learning explains it (`explained_by`)."""

    cause = "labels_unrelated"
    explained_by = (
        "class_imbalance",
        "train_val_preprocessing_mismatch",
        "too_much_regularization",
        # a model that cannot learn for a mechanical reason also stays at chance (reading 4)
        "loss_input_mismatch",
        "gradients_not_zeroed",
        "learning_rate_too_low",
        "lr_decay_too_fast",
    )
    contradicted_by = ("learning_rate_too_high",)
    reads = (*BLOWUP_READS, ("loss", "chance_loss"), ("model", "dropout"), *UPDATE_RATIO_READS)
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("repeated_batch", "nonfinite_inputs")

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
    #: ... while the validation loss at its best is this share of that training loss or less
    VAL_BELOW_TRAIN = 0.8
    #: the at-chance reading: evaluations of the validation loss needed (the plateau's, `val_at_chance`) ...
    CHANCE_EVALS = 5
    #: ... its best and the training loss's end at this share of ln C or more: no better than chance (the
    #: outcome's "failed" level, `base.CHANCE_LEVELS`)
    NO_BETTER = CHANCE_LEVELS[0][0]
    #: ... every layer's median update/weight ratio at least this (a tenth of the healthy ~1e-3) ...
    LAYER_RATIO_MIN = 1e-4
    #: ... and at most the usual band's top (shared with update_ratio_abnormal) ...
    LAYER_RATIO_MAX = UPDATE_RATIO_HIGH
    #: ... and their median at least Karpathy's healthy ~1e-3
    RATIO_HEALTHY = 1e-3

    def evaluate(self, view: RunView) -> Finding | None:
        return (
            self._memorising(view)
            or self._against_training(view)
            or self._noisy_training_labels(view)
            or self._at_chance_while_learning(view)
        )

    def _memorising(self, view: RunView) -> Finding | None:
        """The main reading: training falls a long way, validation never improves on its start."""
        tr, va = view.levels(TRAIN_LOSS), view.levels(VAL_LOSS)
        if tr is None or va is None or tr.start <= 0 or va.start <= 0:
            return None
        tr_start, va_start = start_level(view, TRAIN_LOSS) or tr.start, start_level(view, VAL_LOSS) or va.start
        if tr_start <= 0 or va_start <= 0:
            return None
        train_gain = (tr_start - tr.end) / tr_start
        val_gain = (va_start - va.best) / va_start
        if train_gain < self.MIN_TRAIN_GAIN or val_gain > self.MAX_VAL_GAIN:
            return None
        chance = view.chance_loss()
        if chance and (chance - va.best) / chance > self.MAX_VAL_GAIN:
            return None  # first evaluated below chance: it learned something in the first epoch, then overfitted
        return self.finding(
            confidence="medium",
            severity="failed",
            score=min(1.0, train_gain),
            summary=f"the training loss fell {train_gain:.0%} while the validation loss never improved on its start "
            f"(best {val_gain:.0%} below it)",
            recommendation="The model memorises the training set but learns nothing that generalises: " + CHECK_LABELS,
            evidence=[
                Evidence(
                    "train_vs_val_progress",
                    view.curve(VAL_LOSS).key,
                    {"train_gain": train_gain, "val_best_gain": val_gain},
                )
            ],
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

    def _noisy_training_labels(self, view: RunView) -> Finding | None:
        """Training ends near chance while validation does far better: noisy training labels."""
        chance, tr, va = view.chance_loss(), view.levels(TRAIN_LOSS), view.finite_curve(VAL_LOSS, min_points=3)
        if chance is None or tr is None or va is None or view.fact("model", "dropout"):
            return None
        best = float(va.values.min())
        if tr.end < self.NEAR_CHANCE * chance or best > self.VAL_BELOW_TRAIN * tr.end:
            return None
        return self.finding(
            confidence="medium",
            severity="warning",
            score=min(1.0, 1 - best / tr.end),
            summary=f"the training loss ended at {tr.end:.3g}, little better than chance (ln C = {chance:.3g}), while "
            f"the validation loss reached {best:.3g}: the model does better on held-out data than on its own "
            "training labels",
            recommendation="The model cannot fit its training labels yet predicts the validation labels far better: "
            "most training labels look like noise (shuffled, mislabelled, or paired with the wrong inputs), unlike the "
            "validation ones. " + CHECK_LABELS[0].upper() + CHECK_LABELS[1:],
            evidence=[Evidence("train_vs_val_level", va.key, {"train_end": tr.end, "val_best": best})],
        )

    def _at_chance_while_learning(self, view: RunView) -> Finding | None:
        """Nothing learned although every layer took steps of the usual size (reading 4)."""
        if not view.recorded() or view.chance_loss() is None:
            return None
        ratios = view.update_ratios()
        if not ratios or min(ratios.values()) < self.LAYER_RATIO_MIN or max(ratios.values()) > self.LAYER_RATIO_MAX:
            return None
        med = float(np.median(list(ratios.values())))
        if med < self.RATIO_HEALTHY:
            return None
        chance, va, tr = view.chance_loss(), view.finite_curve(VAL_LOSS, self.CHANCE_EVALS), view.levels(TRAIN_LOSS)
        if va is None or tr is None:
            return None
        best = float(va.values.min())
        if min(best, tr.end) < self.NO_BETTER * chance:
            return None  # something was learned (or memorised: the other readings)
        return self.finding(
            confidence="low",
            severity="failed",
            kind="outcome",
            score=min(1.0, med / self.RATIO_HEALTHY / 10),
            summary=f"the validation loss never got clearly below chance (best {best:.3g}, ln C = {chance:.3g}) nor "
            f"the training loss (ended at {tr.end:.3g}) while every layer's weights moved at a usual rate (median "
            f"update/weight ratio {med:.1e}, the smallest layer's {min(ratios.values()):.1e})",
            recommendation="The model learned nothing although the optimiser moved every layer at a usual rate: "
            "nothing in the inputs predicts the labels. " + CHECK_LABELS[0].upper() + CHECK_LABELS[1:],
            evidence=[
                Evidence(
                    "at_chance_while_learning",
                    view.curve(VAL_LOSS).key,
                    {"val_best": best, "train_end": tr.end, "chance": chance, "median_update_ratio": med}
                    | {"per_layer": ratios},
                )
            ],
        )
