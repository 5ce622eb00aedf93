"""`loss_input_mismatch`: the loss function gets the wrong kind of input."""

from __future__ import annotations

import re

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import (
    BELOW_ZERO,
    MEAN_READS,
    N_CLASSES_READS,
    fell_below_floor,
    learned_nothing,
)


class LossInputMismatch(Rule):
    """The recorder checks the input of the loss function on the first training calls and on
    sampled steps: rows of probabilities (each in [0, 1], summing to 1) fed to
    `cross_entropy` / `nn.CrossEntropyLoss` (softmax applied twice), input that is not
    log-probabilities fed to `nll_loss` (logits without `log_softmax`), or input entirely in
    [0, 1] fed to `binary_cross_entropy_with_logits` (sigmoid applied twice), or predictions and
    targets of an element-wise regression loss (`mse_loss`, `l1_loss`, `smooth_l1_loss`, `huber_loss`)
    whose shapes broadcast to more elements than either (`(N,)` against `(N, 1)`: every prediction
    meets every target, the loss is least at their mean; torch only warns). Failed when the input
    cannot work at all or the run learned nothing (`helpers.learned_nothing`). Also read from
    the curve: a loss function that goes below zero only on the wrong input (the recorder names it:
    cross-entropy, NLL, BCE, KL, CTC) whose training loss did (raw logits into `nll_loss` make it fall
    without bound) was fed the wrong input, whatever the probe saw on its sampled calls. Not for an
    element-wise regression loss: it is never negative on any input, so a negative training loss
    beside it comes from other terms added to it (an actor-critic's policy term)."""

    cause = "loss_input_mismatch"
    reads = (("loss", "input_mismatch"), *N_CLASSES_READS, *MEAN_READS)
    NEGATIVE = BELOW_ZERO  #: a loss below this (a float32 rounding's worth under zero) is negative
    #: words of a metric name that make it a term of a loss (`train_ce`, `kl_loss`, `val_mse`), and words
    #: that only say which split or summary it is (`test_loss` is a whole loss, not a term)
    TERMS = frozenset(("ce", "nll", "mse", "mae", "l1", "l2", "kl", "kld", "bce", "recon", "reg", "cls", "aux"))
    SPLITS = frozenset(
        ("train", "training", "val", "valid", "validation", "test", "eval", "epoch", "step", "batch", "mean", "avg")
        + ("running", "smooth", "ema", "total", "sum", "final", "best")
    )

    #: what to do about each problem the recorder names
    FIXES = {
        "probabilities": "remove the softmax/sigmoid at the end of the model and feed raw logits to the loss "
        "(apply softmax only when you need probabilities, e.g. at inference)",
        "constant_input": "make the model's single output a logit: `torch.sigmoid(out)` into `nn.BCELoss`, or better "
        "the raw output into `nn.BCEWithLogitsLoss` (softmax and log_softmax need at least two "
        "classes along their dimension)",
        "broadcast": "make the shapes equal, e.g. `out.squeeze(-1)` with `target.squeeze(-1)` or `out.view_as(target)`",
        "not_log_probabilities": "apply `torch.log_softmax` over the classes before the loss (`dim=1` for "
        "`nll_loss`, the last dimension of `ctc_loss`'s (T, N, C) input), or for a classifier use "
        "`nn.CrossEntropyLoss` on the raw logits",
    }

    def evaluate(self, view: RunView) -> Finding | None:
        mismatch = view.fact("loss", "input_mismatch")
        if not mismatch:
            mismatch = self._negative_loss(view)
        if not mismatch:
            return None
        fix = self.FIXES.get(
            "not_log_probabilities" if mismatch.get("inferred_from") else mismatch.get("problem"),
            "feed the loss the kind of input its documentation asks for",
        )
        return self.finding(
            confidence="medium" if mismatch.get("inferred_from") else "high",
            severity="failed"
            if (
                mismatch.get("problem") in ("not_log_probabilities", "negative_loss", "constant_input")
                or learned_nothing(view)
            )
            else "warning",
            score=0.9,
            summary=f"{'the ' if mismatch.get('inferred_from') else ''}{mismatch['loss']} was fed the wrong kind of input: {mismatch['detail']}",
            recommendation=f"{'The' if mismatch.get('inferred_from') else 'The loss function'} {mismatch['loss']} "
            f"gets the wrong input: {mismatch['detail']}. "
            f"Fix: {fix}.",
            evidence=[
                Evidence(
                    "loss_input_check",
                    mismatch.get("curve") or schema.DIAGNOSTICS_ARTIFACT,
                    {k: v for k, v in mismatch.items() if k != "curve"},
                )
            ],
        )

    def _loss_term(self, key: str) -> bool:
        words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w and w not in self.SPLITS]
        return bool(self.TERMS.intersection(words)) or ("loss" in words and len(words) > 1)

    @staticmethod
    def _classifier(view: RunView) -> bool:
        """The run logs an accuracy (training or validation) with at least 3 finite points."""
        return any(view.finite_curve(role, min_points=3) is not None for role in (TRAIN_ACC, VAL_ACC))

    def _negative_loss(self, view: RunView) -> dict | None:
        """A mismatch read from the curve: a non-negative loss function whose loss went negative.
        Without the recorder the loss function is not known, but a run that logs an accuracy is a
        classifier, and every classification loss (cross-entropy, NLL on log-probabilities, BCE,
        hinge, focal) is non-negative: its training or validation loss below zero is read the same
        way, one step less sure (the loss function is inferred). Not where the run also logs terms of
        its loss (`train_ce`, `val_mse`, `kl`, ...): the loss logged is then a total of several, and a
        total may go negative on valid input (learned uncertainty weights, a likelihood term)."""
        fn = view.fact("loss", "loss_function")
        if not (fn is None and not view.recorded() and self._classifier(view)):
            return self._below_floor(view, fn)
        if any(self._loss_term(k) for k in view.metric_keys - {c.key for c in view.curves.values()}):
            return None
        lows = [
            (float(np.min(c.values[c.finite])), c.key)
            for c in map(view.curve, (TRAIN_LOSS, VAL_LOSS))
            if c is not None and c.finite.any()
        ]
        low, key = min(lows, default=(0.0, None))
        if low < self.NEGATIVE:
            return {
                "loss": "classifier's loss",
                "problem": "negative_loss",
                "detail": f"the loss went down to {fmt_num(low)}, below zero, on a run that logs an accuracy; no "
                "classification loss does that on valid input (raw logits fed to `nll_loss` without "
                "`log_softmax` make it fall without bound)",
                "lowest_loss": low,
                "inferred_from": "an accuracy curve",
                "curve": key,
            }
        return None

    @staticmethod
    def _below_floor(view: RunView, fn: str | None) -> dict | None:
        """The recorder's loss function, negative only on the wrong input, below zero (`helpers.fell_below_floor`)."""
        low = fell_below_floor(view, min_points=1)
        if low is None:
            return None
        problem = "not_log_probabilities" if fn == "nll_loss" else "negative_loss"
        detail = f"the training loss went down to {fmt_num(low)}, below zero, which {fn} never does on valid input" + (
            ": raw logits were fed to nll_loss without log_softmax"
            if fn == "nll_loss"
            else f" ({fn}, or a term added to it by hand, such as a Dice loss fed logits, gets the wrong input)"
        )
        return {"loss": fn, "problem": problem, "detail": detail, "lowest_loss": low}
