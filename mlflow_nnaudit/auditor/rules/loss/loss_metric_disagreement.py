"""`loss_metric_disagreement`: the loss improves while the task metric does not."""

from __future__ import annotations

import math

from mlflow_nnaudit.auditor.curves import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import CHANCE_LEVELS, Evidence, Finding, Rule, RunView, fmt_num


class LossMetricDisagreement(Rule):
    """The loss improves significantly while the task metric does not: accuracy (validation, else training)
    shows no significant upward trend (autocorrelation-corrected Mann-Kendall) and changes by less than 1
    percentage point, while the matching loss falls by at least 10%. Not read on an accuracy that started within
    that 1 point of its ceiling (100%), or a tenth of the way from chance to it, beside a loss that had already left
    chance (under 80% of ln C; the class count known or guessed from where the curves start): it has no room to
    rise, and a loss still falling under a near-perfect accuracy is the margin growing (GraphSAGE at 0.96 after
    its first epoch, 6 classes). An accuracy at 100% beside a loss that starts at chance is a
    broken metric (`(pred == pred).mean()`). A misclassified sample costs a cross-entropy of ln 2 or more, so
    a mean loss L allows no accuracy under 1 - L / ln 2: a validation accuracy that ends 5 points or more under
    that floor (its loss having fallen 10%), whatever its trend, is computed wrongly (predictions and labels in
    different orders), a definite bug at high confidence that no skewed label histogram explains. Per-epoch
    curves of 4 to 7 points (too short for the trend test) are read the same way where the accuracy is exactly
    the same at every evaluation, under 100%, beside a loss lower at every one and that floor is broken
    (`torch.max(z, 1)` over a single logit is always class 0). The bound holds for one label per sample under
    an unweighted cross-entropy, so the floor needs the recorder to have seen one (`loss.input_shape`: class
    scores per sample, or a single logit or probability): an exact-match accuracy over 60 tags stays at 0
    under a per-tag BCE that falls (found by review)."""

    cause = "loss_metric_disagreement"
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("loss_input_mismatch", "class_imbalance", "labels_unrelated")

    #: the loss must fall by at least this share of its start to count as improving
    MIN_LOSS_GAIN = 0.1
    #: an accuracy that changed by this much (as a fraction) or less did not improve
    MAX_METRIC_CHANGE = 0.01
    #: accuracies above this are logged in percent, not as a fraction
    PERCENT_ABOVE = 1.5

    #: on short curves: the accuracy must sit this far under the least the loss allows (1 - loss / ln 2)
    BOUND_MARGIN = 0.05
    #: a loss starting under this share of ln C had already learned when the accuracy was first read
    LEFT_CHANCE = CHANCE_LEVELS[-1][0]

    def _no_room(self, view: RunView, acc_role: str, acc_start: float, loss_start: float) -> bool:
        """Within MAX_METRIC_CHANGE of 100% at the start, or (C known, the loss off chance) a tenth of the way or less
        left from chance (1/C; the recorder's majority share where the accuracy is the same at every evaluation:
        0.98 frozen names no fraud, while a model at 0.98 on 94% majority labels that moves is one that learned
        and has no room, found by review) to 100%."""
        k, room, c = helpers.class_count(view), 1.0 - acc_start, view.fact("loss", "label_counts")
        if k is None or k < 2:
            return room <= self.MAX_METRIC_CHANGE
        a = view.finite_curve(acc_role)
        frozen = a is not None and a.values.min() == a.values.max() and isinstance(c, list) and sum(c) > 0
        base = max(1 / k, max(c) / sum(c) if frozen else 0.0)
        return room <= max(self.MAX_METRIC_CHANGE, 0.1 * (1 - base)) and loss_start < self.LEFT_CHANCE * math.log(k)

    def evaluate(self, view: RunView) -> Finding | None:
        for acc_role, loss_role in ((VAL_ACC, VAL_LOSS), (TRAIN_ACC, TRAIN_LOSS)):
            acc, loss = view.levels(acc_role), view.levels(loss_role)
            acc_trend = view.trend(acc_role)
            if acc is None or loss is None or acc_trend is None or loss.start <= 0:
                short = self._short_frozen_metric(view, acc_role, loss_role)
                if short is not None:
                    return short
                continue
            loss_gain = (loss.start - loss.end) / loss.start
            scale = 100.0 if max(acc.start, acc.end) > self.PERCENT_ABOVE else 1.0  # percent or fraction
            acc_change = (acc.end - acc.start) / scale
            # validation only: a training loss backpropagated over K accumulation steps is 1/K of it (review)
            floor = self._floor_broken(view, loss.end, acc.end / scale) if acc_role == VAL_ACC else None
            floor = floor if loss_gain >= self.MIN_LOSS_GAIN else None
            if floor is not None:
                return self._finding(view, acc_role, loss_gain, acc.start, acc.end, floor)
            if self._no_room(view, acc_role, acc.start / scale, loss.start):
                continue  # at its ceiling from the start: no room to improve, nothing to disagree with
            if loss_gain < self.MIN_LOSS_GAIN or acc_trend.direction > 0 or acc_change > self.MAX_METRIC_CHANGE:
                return None
            return self._finding(view, acc_role, loss_gain, acc.start, acc.end)
        return None

    def _short_frozen_metric(self, view: RunView, acc_role: str, loss_role: str) -> Finding | None:
        """The reading of 4 to 7 evaluations (see the class docstring)."""
        acc, loss = view.finite_curve(acc_role, min_points=4), view.finite_curve(loss_role, min_points=4)
        if acc is None or loss is None or len(acc) >= 8 or len(loss) >= 8 or loss.values[0] <= 0:
            return None
        a, v = acc.values, loss.values
        if not view.one_label_per_sample() or a[0] <= 0 or v[-1] <= 0:
            return None
        gain = float((v[0] - v[-1]) / v[0])
        ceiling = helpers.accuracy_scale(view, acc_role)
        if a.min() != a.max() or a[0] >= ceiling or not (v[1:] < v[:-1]).all() or gain < self.MIN_LOSS_GAIN:
            return None
        # each misclassified sample costs a cross-entropy of ln 2 or more: the loss bounds the accuracy from below
        if a[0] / ceiling > 1 - v[-1] / math.log(2) - self.BOUND_MARGIN:
            return None  # a small validation set's accuracy, steady while the margins grow, is no disagreement
        return self._finding(view, acc_role, gain, float(a[0]), float(a[-1]))

    def _floor_broken(self, view: RunView, loss_end: float, acc_end: float) -> float | None:
        """The least accuracy the loss allows (1 - loss / ln 2), where the accuracy ended BOUND_MARGIN or more under
        it; None otherwise, or where the bound does not hold (no cross-entropy over one label per sample seen by
        the recorder, or a class-weighted one: a weighted mean can hide many cheap mistakes)."""
        if not view.one_label_per_sample() or view.fact("loss", "class_weighted") or loss_end <= 0:
            return None
        floor = 1 - loss_end / math.log(2)
        return floor if acc_end < floor - self.BOUND_MARGIN else None

    def _finding(
        self, view: RunView, acc_role: str, loss_gain: float, start: float, end: float, floor: float | None = None
    ) -> Finding:
        key = view.curve(acc_role).key
        said = f"the loss fell {loss_gain:.0%} while {key} did not improve ({fmt_num(start)} -> {fmt_num(end)})"
        fix = (
            "The loss improves but the accuracy does not: check that the metric is computed on the same outputs and "
            "labels as the loss (argmax over the right dimension, same label mapping), and that the loss measures "
            "what you care about (class weights, label smoothing, thresholds)."
        )
        if floor is not None:  # the accuracy contradicts its loss: a metric computed wrongly, whatever the labels
            said = (
                f"{key} ended at {fmt_num(end)}, under the {floor:.1%} its loss allows on the same outputs (a "
                "misclassified sample costs a cross-entropy of ln 2 or more)"
            )
            fix = (
                f"The accuracy is computed wrongly: the loss the model ended at allows no less than {floor:.1%} on "
                "the same outputs and labels. Compare predictions and labels in the same order and shape (a "
                "(seq, batch) tensor flattened against a (batch, seq) one, argmax over the wrong dimension, padding "
                "counted) and on the same data as the loss."
            )
        values = {"loss_gain": loss_gain, "metric_start": start, "metric_end": end}
        values |= {"least_accuracy_the_loss_allows": floor} if floor is not None else {}
        return self.finding(
            confidence="medium" if floor is None else "high",
            severity="warning",
            kind=None if floor is None else "bug",
            score=loss_gain,
            summary=said,
            recommendation=fix,
            # no skewed label histogram explains an accuracy under what its loss allows
            rules_out=() if floor is None else ("class_imbalance",),
            evidence=[Evidence("loss_vs_metric", key, values)],
        )
