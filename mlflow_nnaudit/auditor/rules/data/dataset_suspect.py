"""`dataset_suspect`: the validation loss improves while the training loss does not."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class DatasetSuspect(Rule):
    """The validation loss falls significantly (at least 20%) while the training loss stays
    flat (within 5% of its start, no significant downward trend): the two splits do not come
    from the same data, or the curves were logged under swapped names."""

    cause = "dataset_suspect"

    #: the training loss within this share of its start is flat
    FLAT_TRAIN = 0.05
    #: the validation loss must fall at least this share of its start
    MIN_VAL_GAIN = 0.2

    def evaluate(self, view: RunView) -> Finding | None:
        tr, va = view.levels(TRAIN_LOSS), view.levels(VAL_LOSS)
        trend = view.trend(TRAIN_LOSS)
        if tr is None or va is None or tr.start <= 0 or va.start <= 0 or trend is None:
            return None
        train_gain = (tr.start - tr.end) / tr.start
        val_gain = (va.start - va.end) / va.start
        if abs(train_gain) > self.FLAT_TRAIN or trend.direction < 0 or val_gain < self.MIN_VAL_GAIN:
            return None
        return self.finding(
            confidence="medium",
            severity="failed",
            score=val_gain,
            summary=f"the validation loss fell {val_gain:.0%} while the training loss stayed flat",
            recommendation="The validation loss improves while the training loss does not: check that the curves are "
            "not logged under swapped names, that the training data is not corrupted (labels, augmentation), and "
            "that training and validation come from the same source.",
            evidence=[
                Evidence(
                    "train_vs_val_progress", view.curve(VAL_LOSS).key, {"train_gain": train_gain, "val_gain": val_gain}
                )
            ],
        )
