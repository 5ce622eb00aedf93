"""`labels_unrelated`: the model memorises the training set and learns nothing that carries over."""

from __future__ import annotations

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import BLOWUP_READS, start_level, trend_evidence


class LabelsUnrelated(Rule):
    """The training loss falls a long way (at least 50% of its start) while the validation loss
    never gets meaningfully better than where it started (its best is within 2% of its first
    value): the model memorises the training set and learns nothing that carries over, as
    happens with shuffled, noisy or mispaired labels. Both falls are measured from where each
    loss stood before an early blow-up (`stats.detect_blowup`), not from the explosion's peak:
    a loss that exploded and came back to chance "fell 98%" from the peak but learned nothing.
    A short run memorises slowly: there, the validation loss rising from the start (a
    significant upward trend, never meaningfully below chance, ln C, or else where the training
    loss started) while the training loss falls (a significant downward trend) and the gap between them opens by
    more than 2% of that start is the same finding: what the model learns does not carry over
    at all, and makes validation worse from the first epoch (a model learning anything real
    improves validation first, however slowly)."""

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
    #: the opposite-trends reading: the train/validation gap must open by this share of the
    #: training loss's start (the same "meaningful" scale as MAX_VAL_GAIN)
    MIN_GAP_OPENED = 0.02

    def evaluate(self, view: RunView) -> Finding | None:
        tr, va = view.levels(TRAIN_LOSS), view.levels(VAL_LOSS)
        if tr is None or va is None or tr.start <= 0 or va.start <= 0:
            return self._against_training(view)
        tr_start, va_start = start_level(view, TRAIN_LOSS) or tr.start, start_level(view, VAL_LOSS) or va.start
        if tr_start <= 0 or va_start <= 0:
            return None
        train_gain = (tr_start - tr.end) / tr_start
        val_gain = (va_start - va.best) / va_start
        if train_gain < self.MIN_TRAIN_GAIN or val_gain > self.MAX_VAL_GAIN:
            return self._against_training(view)
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

    def _against_training(self, view: RunView) -> Finding | None:
        """The short-run reading: validation rises from the start while training falls."""
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
        if val_trend.direction <= 0 or train_trend is None or train_trend.direction >= 0:
            return None
        opened = (float(v[-1]) - lv.end) - (float(v[0]) - tr_start)
        if opened < self.MIN_GAP_OPENED * tr_start:
            return None
        train_gain = (tr_start - lv.end) / tr_start
        return self.finding(
            p_value=val_trend.p_value,
            confidence="medium",
            severity="failed",
            score=min(1.0, opened / tr_start),
            summary=f"the validation loss rose from its first evaluation ({v[0]:.3g} to {v[-1]:.3g}, never "
            f"meaningfully below chance or the training loss's start) while the training loss fell {train_gain:.0%}",
            recommendation="Whatever the model learns from the training labels makes validation worse from the first "
            "epoch: check that labels match their inputs (shuffle inputs and labels together, check the join/pairing "
            "code), look at a few labelled samples by hand, and check that validation uses the same label mapping.",
            evidence=[
                Evidence(
                    "validation_against_training",
                    va.key,
                    {
                        "train_gain": train_gain,
                        "val_first": float(v[0]),
                        "val_last": float(v[-1]),
                        "gap_opened": opened,
                    },
                ),
                trend_evidence("mann_kendall_val_whole", va.key, val_trend),
                trend_evidence("mann_kendall_train_whole", tr.key, train_trend),
            ],
        )
