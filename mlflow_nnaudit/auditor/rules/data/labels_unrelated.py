"""`labels_unrelated`: the model memorises the training set and learns nothing that carries over."""

from __future__ import annotations

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import BLOWUP_READS, start_level


class LabelsUnrelated(Rule):
    """The training loss falls a long way (at least 50% of its start) while the validation loss
    never gets meaningfully better than where it started (its best is within 2% of its first
    value): the model memorises the training set and learns nothing that carries over, as
    happens with shuffled, noisy or mispaired labels. Both falls are measured from where each
    loss stood before an early blow-up (`stats.detect_blowup`), not from the explosion's peak:
    a loss that exploded and came back to chance "fell 98%" from the peak but learned nothing."""

    cause = "labels_unrelated"
    explained_by = ("class_imbalance", "train_val_preprocessing_mismatch")
    contradicted_by = ("learning_rate_too_high",)
    reads = BLOWUP_READS
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("repeated_batch", "nonfinite_inputs")

    #: the training loss must fall at least this share of its start ("a long way")
    MIN_TRAIN_GAIN = 0.5
    #: a validation loss whose best is within this share of its start never learned anything
    MAX_VAL_GAIN = 0.02

    def evaluate(self, view: RunView) -> Finding | None:
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
        return self.finding(
            confidence="medium",
            severity="failed",
            score=min(1.0, train_gain),
            summary=f"the training loss fell {train_gain:.0%} while the validation loss never improved on its start "
            f"(best {val_gain:.0%} below it)",
            recommendation="The model memorises the training set but learns nothing that generalises: check that "
            "labels match their inputs (shuffle inputs and labels together, check the join/pairing code), look at a "
            "few labelled samples by hand, and check that validation uses the same label mapping.",
            evidence=[
                Evidence(
                    "train_vs_val_progress",
                    view.curve(VAL_LOSS).key,
                    {"train_gain": train_gain, "val_best_gain": val_gain},
                )
            ],
        )
