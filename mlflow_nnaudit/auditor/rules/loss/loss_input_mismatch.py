"""`loss_input_mismatch`: the loss function gets the wrong kind of input."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import N_CLASSES_READS, stuck


class LossInputMismatch(Rule):
    """The recorder checks the input of the loss function on the first training calls and on
    sampled steps: rows of probabilities (each in [0, 1], summing to 1) fed to
    `cross_entropy` / `nn.CrossEntropyLoss` (softmax applied twice), input that is not
    log-probabilities fed to `nll_loss` (logits without `log_softmax`), or input entirely in
    [0, 1] fed to `binary_cross_entropy_with_logits` (sigmoid applied twice). Also read from
    the curve: a loss function that cannot go below zero (the recorder names it: cross-entropy,
    NLL, BCE, MSE, ...) whose training loss did (raw logits into `nll_loss` make it fall without
    bound) was fed the wrong input, whatever the probe saw on its sampled calls."""

    cause = "loss_input_mismatch"
    reads = (("loss", "input_mismatch"), ("loss", "loss_function"), *N_CLASSES_READS)
    #: losses that are never negative on valid input: every loss the recorder watches, by the name it logs
    NON_NEGATIVE = schema.LOSS_FUNCTIONS
    #: a loss below this (a float32 rounding's worth under zero) is negative
    NEGATIVE = -1e-4

    #: what to do about each problem the recorder names
    FIXES = {
        "probabilities": "remove the softmax/sigmoid at the end of the model and feed raw logits to the loss "
        "(apply softmax only when you need probabilities, e.g. at inference)",
        "constant_input": "make the model's single output a logit: `torch.sigmoid(out)` into `nn.BCELoss`, or better "
        "the raw output into `nn.BCEWithLogitsLoss` (softmax and log_softmax need at least two "
        "classes along their dimension)",
        "not_log_probabilities": "apply `torch.log_softmax(logits, dim=1)` before `nll_loss`, or use "
        "`nn.CrossEntropyLoss` on the raw logits",
    }

    def evaluate(self, view: RunView) -> Finding | None:
        mismatch = view.fact("loss", "input_mismatch")
        if not mismatch:
            mismatch = self._negative_loss(view)
        if not mismatch:
            return None
        fix = self.FIXES.get(mismatch.get("problem"), "feed the loss the kind of input its documentation asks for")
        return self.finding(
            confidence="high",
            severity="failed"
            if (
                mismatch.get("problem") in ("not_log_probabilities", "negative_loss", "constant_input")
                or self._stuck(view)
            )
            else "warning",
            score=0.9,
            summary=f"{mismatch['loss']} was fed the wrong kind of input: {mismatch['detail']}",
            recommendation=f"The loss function {mismatch['loss']} gets the wrong input: {mismatch['detail']}. "
            f"Fix: {fix}.",
            evidence=[Evidence("loss_input_check", schema.DIAGNOSTICS_ARTIFACT, dict(mismatch))],
        )

    @staticmethod
    def _stuck(view: RunView) -> bool:
        """The loss learned nothing at all (stuck exactly, or at ln C): the mismatch failed the run."""
        sk = stuck(view)
        return sk is not None and sk.stuck

    def _negative_loss(self, view: RunView) -> dict | None:
        """A mismatch read from the curve: a non-negative loss function whose loss went negative."""
        fn = view.fact("loss", "loss_function")
        c = view.curve(TRAIN_LOSS)
        if fn not in self.NON_NEGATIVE or c is None or not c.finite.any():
            return None
        low = float(np.min(c.values[c.finite]))
        if low >= self.NEGATIVE:
            return None
        problem = "not_log_probabilities" if fn == "nll_loss" else "negative_loss"
        detail = f"the training loss went down to {fmt_num(low)}, below zero, which {fn} never does on valid input" + (
            ": raw logits were fed to nll_loss without log_softmax" if fn == "nll_loss" else ""
        )
        return {"loss": fn, "problem": problem, "detail": detail, "lowest_loss": low}
