"""`overfitting`: the validation loss rises after its best while the training loss keeps falling."""

from __future__ import annotations

import math

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_step
from mlflow_nnaudit.auditor.rules.helpers import OVERFIT_GL, trend_evidence


class Overfitting(Rule):
    """The validation loss rises after its best evaluation while the training loss keeps
    falling. Decided with Prechelt's criteria: the generalization loss GL (validation loss
    now vs its best, in %) must exceed 10%, the validation loss must trend upward after its
    best point (autocorrelation-corrected Mann-Kendall) or rise at 3 consecutive evaluations
    (UP_3) or stay 50% above the best at every one of 3 or more evaluations after it (a jump that
    never came back: no trend in a flat 13 after a best of 1.4), and the train/validation gap must grow.
    The jump must also rise by a tenth of the untrained level (ln C, the targets' variance, else the first
    training loss): 0.0013 -> 0.03 on a task at ln 4 is a GL of 2,000% that no one would act on. Best at
    its first evaluation at 80% of the untrained level or more, the advice is that nothing learned
    carries over (check how the validation set is prepared); a fine-tune best at its first evaluation,
    after an epoch of learning, has the usual advice (a step of 0 is no proof of "before training": a
    loop logs its first epoch's evaluation at step 0). A rise of only a few evaluations at the
    end, small in size, is what early stopping produces and is not reported. Under 10%, a rise at 5
    evaluations in a row an order of magnitude above the training loss counts (`helpers.memorised`).
    Either way, on a classifier, the rise (final minus best validation loss) must reach 1% of ln C
    (`helpers.OVERFIT_MIN_RISE`): GL is relative to the best, and on a task solved to near-zero
    loss a rise of 0.0005 nats is a GL of 60%, noise no one would act on. A regression's first loss
    has no task scale (the targets' units): no floor there. An overfit whose best came early (within the
    first 30% of evaluations, `helpers.early_overfit`; not at the first, never better than untrained)
    follows a learning rate found too high: steps too large race past the best (listed after it)."""

    cause = "overfitting"
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = (
        "labels_unrelated",
        "repeated_batch",
        "train_val_preprocessing_mismatch",
        "eval_mode_not_set",
        "gradients_not_zeroed",
        "dataset_too_small",
        "no_regularization",
    )

    #: Prechelt's generalization loss (%) that makes overfitting worth reporting (shared with dataset_too_small)
    GL = OVERFIT_GL
    #: validation rises shorter than this many evaluations look like early stopping at work
    EARLY_STOP_EVALS = 3
    #: consecutive rising evaluations that count as a rise (Prechelt's UP_3)
    UP_EVALS = 3
    #: GL (%) from which the finding is high confidence
    HIGH_GL = 50
    #: a best validation loss at this share of the untrained level (ln C, the targets' variance) or more,
    #: on its first evaluation, is a model that never learned anything the validation set shares
    UNTRAINED = 0.8
    #: a jump read without a trend rises by this share of the untrained level at least
    JUMP = 0.1

    @staticmethod
    def _untrained_level(view: RunView) -> float | None:
        """An untrained model's loss: ln C, the targets' variance, else the first training loss."""
        lv = view.levels(TRAIN_LOSS)
        return view.chance_loss() or view.targets_variance() or (lv.start if lv is not None and lv.start > 0 else None)

    def evaluate(self, view: RunView) -> Finding | None:
        of = view.overfit()
        if of is None or (of.gl < self.GL and not helpers.memorised(view, of)):
            return None
        rise = helpers.overfit_rise(view, of)
        if rise is not None and rise.negligible:
            return None  # a large GL over a best near zero: a tiny rise on the loss's own scale
        val = view.curve(VAL_LOSS)
        vals = val.values[val.finite]
        untrained = self._untrained_level(view)
        # a jump that never came back (every later evaluation HIGH_GL% above the best, and a tenth of the untrained
        # level: 0.001 -> 0.03 is no jump on a task at ln 4) needs no trend: 1.4 -> 13 held
        after, best = vals[of.best_index + 1 :], float(vals[of.best_index])
        floor = max((1 + self.HIGH_GL / 100) * best, best + self.JUMP * (untrained or math.inf))
        held = len(after) >= self.UP_EVALS and best > 0 and bool((after >= floor).all())
        rising = of.val_trend_after_best.direction > 0 or of.up >= self.UP_EVALS or held
        gap_growing = of.gap_trend.direction > 0 or of.gap_trend.change > 0
        train_falling = of.train_trend_after_best.direction <= 0
        if not (rising and gap_growing and train_falling):
            return None
        if of.evals_after_best <= self.EARLY_STOP_EVALS and of.gl < 2 * self.GL:
            return None  # a small rise over the last few evaluations: early stopping's business
        vx = val.x()[val.finite]
        best_step = float(vx[of.best_index])
        # never better than untrained (a fine-tune's first evaluation, after an epoch of learning, is)
        first = of.best_index == 0 and untrained is not None and best >= self.UNTRAINED * untrained
        ev = [
            Evidence(
                "prechelt",
                val.key,
                {"GL_percent": of.gl, "PQ": of.pq, "UP": of.up, "evals_after_best": of.evals_after_best}
                | ({"rise": rise.rise, "least_rise": rise.floor} if rise is not None else {}),
                (best_step, float(vx[-1])),
            ),
            trend_evidence("mann_kendall_val_after_best", val.key, of.val_trend_after_best),
            trend_evidence("mann_kendall_gap_after_best", val.key, of.gap_trend),
        ]
        return self.finding(
            p_value=of.val_trend_after_best.p_value if of.val_trend_after_best.direction > 0 else None,
            confidence="high" if of.gl >= self.HIGH_GL else "medium",
            severity="warning",
            score=min(1.0, of.gl / 100.0),
            summary=f"validation loss was best at step {fmt_step(best_step)} and ended {of.gl:.0f}% above it while "
            "the training loss kept falling" + ("; it never improved on its first evaluation" if first else ""),
            recommendation=f"The model overfits from step {fmt_step(best_step)} on (validation loss ends {of.gl:.0f}% "
            "above its best): keep the best checkpoint or stop early there, and add regularisation (weight decay, "
            "dropout, data augmentation) or more data."
            if not first
            else f"Nothing the model learned carries to the validation set: its loss never improved on its first "
            f"evaluation and ended {of.gl:.0f}% above it while the training loss kept falling. Check that validation "
            "inputs and labels are prepared exactly as the training ones (normalisation, channel order, vocabulary, "
            "label encoding), then regularise or add data.",
            evidence=ev,
            # best early, then worse: what large steps do (the learning rate's raced reading), where that is found
            follows=("learning_rate_too_high",) if helpers.early_overfit(view) is not None and not first else (),
        )
