"""`loss_metric_disagreement`: the loss improves while the task metric does not."""

from __future__ import annotations

import math

from mlflow_nnaudit.auditor.curves import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import CHANCE_LEVELS, Evidence, Finding, Rule, RunView, fmt_num


class LossMetricDisagreement(Rule):
    """The loss improves significantly while the task metric does not: accuracy (validation,
    else training) shows no significant upward trend (autocorrelation-corrected Mann-Kendall)
    and changes by less than 1 percentage point, while the matching loss falls by at least
    10%. Not read on an accuracy that started within that 1 point of its ceiling (100%) beside a loss
    that had already left chance (under 80% of ln C, the outcome's "little better than chance"; the
    class count known or guessed from where the curves start): it has no room to rise, and a loss still
    falling under a perfect accuracy is the margin growing (a task solved in the first epoch). An
    accuracy at 100% beside a loss that starts at chance is a broken metric (`(pred == pred).mean()`)."""

    cause = "loss_metric_disagreement"
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("loss_input_mismatch", "class_imbalance", "labels_unrelated")

    #: the loss must fall by at least this share of its start to count as improving
    MIN_LOSS_GAIN = 0.1
    #: an accuracy that changed by this much (as a fraction) or less did not improve
    MAX_METRIC_CHANGE = 0.01
    #: accuracies above this are logged in percent, not as a fraction
    PERCENT_ABOVE = 1.5

    #: a loss starting under this share of ln C had already learned when the accuracy was first read
    LEFT_CHANCE = CHANCE_LEVELS[-1][0]

    def _solved_early(self, view: RunView, loss_start: float) -> bool:
        """The loss had left chance by its first reading (unknown class count: taken as solved)."""
        k = helpers.class_count(view)
        return k is None or k < 2 or loss_start < self.LEFT_CHANCE * math.log(k)

    def evaluate(self, view: RunView) -> Finding | None:
        for acc_role, loss_role in ((VAL_ACC, VAL_LOSS), (TRAIN_ACC, TRAIN_LOSS)):
            acc, loss = view.levels(acc_role), view.levels(loss_role)
            acc_trend = view.trend(acc_role)
            if acc is None or loss is None or acc_trend is None or loss.start <= 0:
                continue
            loss_gain = (loss.start - loss.end) / loss.start
            scale = 100.0 if max(acc.start, acc.end) > self.PERCENT_ABOVE else 1.0  # percent or fraction
            acc_change = (acc.end - acc.start) / scale
            if 1.0 - acc.start / scale <= self.MAX_METRIC_CHANGE and self._solved_early(view, loss.start):
                continue  # at its ceiling from the start: no room to improve, nothing to disagree with
            if loss_gain < self.MIN_LOSS_GAIN or acc_trend.direction > 0 or acc_change > self.MAX_METRIC_CHANGE:
                return None
            return self.finding(
                confidence="medium",
                severity="warning",
                score=loss_gain,
                summary=f"the loss fell {loss_gain:.0%} while {view.curve(acc_role).key} did not improve "
                f"({fmt_num(acc.start)} -> {fmt_num(acc.end)})",
                recommendation="The loss improves but the accuracy does not: check that the metric is computed on "
                "the same outputs and labels as the loss (argmax over the right dimension, same label mapping), "
                "and that the loss measures what you care about (class weights, label smoothing, thresholds).",
                evidence=[
                    Evidence(
                        "loss_vs_metric",
                        view.curve(acc_role).key,
                        {"loss_gain": loss_gain, "metric_start": acc.start, "metric_end": acc.end},
                    )
                ],
            )
        return None
