"""`exploding_gradients`: the gradient norm grows by orders of magnitude."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import GRAD_NORM, TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_factor, fmt_num


class ExplodingGradients(Rule):
    """The gradient-norm curve (the recorder's `nnaudit/grad_norm_total`, or `grad_norm` as the HF
    Trainer logs it) grows by orders of magnitude: its level at the end is at least 100x its
    level at the start with a significant upward trend (autocorrelation-corrected
    Mann-Kendall), or it becomes NaN/Inf. Grown, but finite, beside a training loss that fell throughout
    (a significant downward trend, no early blow-up, ending 30% or more under its start), it did no harm
    seen: a warning at medium confidence (a network escaping a flat start, outputs growing towards targets
    in the hundred thousands, sees its gradient grow 200x). A gradient norm that turns non-finite without having
    grown (10x, `helpers.grad_blew_up_before`), no earlier than the training loss did, is the non-finite loss's gradient (log(0) in a
    hand-written loss makes both NaN at once): listed after `nonfinite_loss`, medium confidence."""

    cause = "exploding_gradients"
    reads = helpers.BLOWUP_READS
    explained_by = ("nonfinite_inputs",)
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("nonfinite_inputs", "gradients_not_zeroed", "learning_rate_too_high")

    #: gradient norm growth (late vs early level) that counts as exploding (AutoTrainer uses 70x)
    GROWTH = helpers.GRAD_NORM_GROWTH

    def evaluate(self, view: RunView) -> Finding | None:
        curve = view.curve(GRAD_NORM)
        if curve is None:
            return None
        nf = view.nonfinite(GRAD_NORM)
        lv = view.levels(GRAD_NORM)
        growth = helpers.grad_norm_grew(view)
        grew = growth is not None
        nonfinite = nf is not None and nf.first_index is not None
        if not (grew or nonfinite):
            return None
        seen = (
            f"the gradient norm grew {fmt_factor(growth)} ({fmt_num(lv.start)} -> {fmt_num(lv.end)})"
            if grew
            else f"the gradient norm became {nf.kind.upper() if nf.kind == 'nan' else 'Inf'}"
        )
        at = float(curve.x()[nf.first_index]) if nonfinite else 0.0
        # no growth by either reading (`nonfinite_loss`'s too) and the loss NaN no later: the loss's gradient
        follows_loss = nonfinite and not helpers.grad_blew_up_before(view, at) and self._loss_first(view, at)
        harmless = not nonfinite and self._loss_fell(view)
        seen += "; the training loss still fell throughout" if harmless else ""
        return self.finding(
            confidence="medium" if follows_loss or harmless else "high",
            follows=("nonfinite_loss",) if follows_loss else (),
            severity="warning" if harmless else "failed",
            score=0.9,
            summary=seen,
            recommendation=f"Gradients explode ({seen}): clip them (`torch.nn.utils.clip_grad_norm_(model.parameters(), "
            "1.0)`), lower the learning rate, and check the initialisation and normalisation of deep stacks.",
            evidence=[Evidence("grad_norm_growth", curve.key, {"growth": growth, "nonfinite": nonfinite})],
        )

    @staticmethod
    def _loss_fell(view: RunView) -> bool:
        """The training loss fell throughout: a downward trend, no early blow-up, ending 30% or more under its start,
        every point finite and, after its first 2%, none over BLOWUP_GROWTH times the curve's median (no late spike;
        the first loss, before any update, and a small batch's noise are no spike); a validation loss, where logged,
        not ending 50% or more above where it started (found by review)."""
        lv, trend, b = view.levels(TRAIN_LOSS), view.trend(TRAIN_LOSS), helpers.blowup(view)
        if lv is None or trend is None or trend.direction >= 0 or (b is not None and b.detected) or lv.start <= 0:
            return False
        y, va = view.curve(TRAIN_LOSS).values, view.levels(VAL_LOSS)
        if not np.isfinite(y).all() or (va is not None and va.end >= 1.5 * va.start):
            return False
        late = y[max(1, len(y) // 50) :]
        if len(late) and late.max() > stats.BLOWUP_GROWTH * float(np.median(y)):
            return False
        return lv.end <= (1 - helpers.PLATEAU_MAX_IMPROVEMENT) * lv.start

    @staticmethod
    def _loss_first(view: RunView, grad_step: float) -> bool:
        """The training loss was non-finite at or before `grad_step`."""
        nf, curve = view.nonfinite(TRAIN_LOSS), view.curve(TRAIN_LOSS)
        return nf is not None and nf.first_index is not None and float(curve.x()[nf.first_index]) <= grad_step
