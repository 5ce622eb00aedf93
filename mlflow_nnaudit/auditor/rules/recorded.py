"""Rules that need the recorder: facts seen inside the running program, which no loss curve
shows. Each reads `nnaudit/diagnostics.json` (through `RunView.fact`) or one of the
recorder's per-batch curves; without the recorder they stay silent."""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num

#: an untrained classifier's first loss is ~ln C; this far off (as a factor) is a mismatch
INITIAL_LOSS_FACTOR = 3.0
#: the most common class outnumbers the rarest present class this many times
IMBALANCE_RATIO = 10.0
DIAGNOSTICS = "nnaudit/diagnostics.json"


class LossInputMismatch(Rule):
    """The recorder checks the input of the loss function on the first training calls and on
    sampled steps: rows of probabilities (each in [0, 1], summing to 1) fed to
    `cross_entropy` / `nn.CrossEntropyLoss` (softmax applied twice), input that is not
    log-probabilities fed to `nll_loss` (logits without `log_softmax`), or input entirely in
    [0, 1] fed to `binary_cross_entropy_with_logits` (sigmoid applied twice)."""

    cause = "loss_input_mismatch"

    def evaluate(self, view: RunView) -> Finding | None:
        mismatch = view.fact("loss", "input_mismatch")
        if not mismatch:
            return None
        fix = {
            "probabilities": "remove the softmax/sigmoid at the end of the model and feed raw logits to the loss "
                             "(apply softmax only when you need probabilities, e.g. at inference)",
            "not_log_probabilities": "apply `torch.log_softmax(logits, dim=1)` before `nll_loss`, or use "
                                     "`nn.CrossEntropyLoss` on the raw logits",
        }.get(mismatch.get("problem"), "feed the loss the kind of input its documentation asks for")
        return self.finding(
            confidence="high",
            severity="failed" if mismatch.get("problem") == "not_log_probabilities" else "warning",
            score=0.9,
            summary=f"{mismatch['loss']} was fed the wrong kind of input: {mismatch['detail']}",
            recommendation=f"The loss function {mismatch['loss']} gets the wrong input: {mismatch['detail']}. "
            f"Fix: {fix}.",
            evidence=[Evidence("loss_input_check", DIAGNOSTICS, dict(mismatch))],
        )


class InitialLossMismatch(Rule):
    """An untrained classifier with C balanced classes should start near ln C (Karpathy's
    check). The recorder notes the loss function, the class count (the width of the
    logits) and the first training loss; a first loss more than 3x above (or below) ln C
    means the output layer's initial scale or the loss setup is off."""

    cause = "initial_loss_mismatch"

    def evaluate(self, view: RunView) -> Finding | None:
        first, chance = view.fact("loss", "first_loss"), view.fact("loss", "chance_loss")
        if not isinstance(first, (int, float)) or not isinstance(chance, (int, float)) or chance <= 0:
            return None
        if not math.isfinite(first) or first <= 0:
            return None
        factor = first / chance
        if 1 / INITIAL_LOSS_FACTOR <= factor <= INITIAL_LOSS_FACTOR:
            return None
        n = view.fact("loss", "n_classes")
        direction = "above" if factor > 1 else "below"
        return self.finding(
            confidence="medium",
            severity="warning",
            score=min(1.0, abs(math.log(factor)) / 3),
            summary=f"the first training loss was {fmt_num(first)}, {factor:.1f}x the {fmt_num(chance)} (ln {n}) an "
            f"untrained {n}-class model should give",
            recommendation=f"The first loss ({fmt_num(first)}) is far {direction} ln {n} = {fmt_num(chance)}: check "
            "the initialisation scale of the last layer (its logits should start near zero; e.g. scale its weights "
            "down or initialise them with `nn.init.xavier_uniform_`), and that the loss and the class count match "
            "the labels.",
            evidence=[Evidence("first_loss_vs_chance", DIAGNOSTICS, {"first_loss": first, "chance_loss": chance,
                                                                       "factor": factor, "n_classes": n})],
        )


class ClassImbalance(Rule):
    """The recorder counts the class labels fed to the classification loss on sampled
    batches. Reported when the most common class outnumbers the rarest class that occurs at
    least 10 to 1 (classes that never occur are not counted). Not decided when the batches arrive sorted by label (see `data_not_shuffled`):
    batches sampled at regular steps from a sorted stream give a biased histogram."""

    cause = "class_imbalance"

    def evaluate(self, view: RunView) -> Finding | None:
        counts = view.fact("loss", "label_counts")
        if not isinstance(counts, list) or len(counts) < 2 or sum(counts) < 50:
            return None
        if DataNotShuffled().evaluate(view) is not None:
            return None
        c = np.asarray(counts, dtype=float)
        present = c[c > 0]
        share = c.max() / c.sum()
        ratio = c.max() / present.min() if len(present) else math.inf
        if ratio < IMBALANCE_RATIO:
            return None
        top = int(np.argmax(c))
        return self.finding(
            confidence="high",
            severity="warning",
            score=min(1.0, share),
            summary=f"class {top} makes up {share:.0%} of the sampled labels ({ratio:.0f}x the rarest class)",
            recommendation=f"Class {top} makes up {share:.0%} of the training labels: weight the loss "
            "(`nn.CrossEntropyLoss(weight=...)` with inverse class frequencies) or resample "
            "(`torch.utils.data.WeightedRandomSampler`), and judge the model by per-class recall or F1, not accuracy.",
            evidence=[Evidence("label_histogram", DIAGNOSTICS, {"label_counts": counts, "max_share": share,
                                                                  "max_to_min_ratio": ratio})],
        )


class DataNotShuffled(Rule):
    """The recorder counts the distinct labels in each sampled classification batch
    (`nnaudit/labels_per_batch`). When the median batch holds a single class although the
    run has several, the data arrives sorted by label: each stretch of training pulls the
    model towards one class."""

    cause = "data_not_shuffled"

    def evaluate(self, view: RunView) -> Finding | None:
        curve = view.extra_curves.get("nnaudit/labels_per_batch")
        counts = view.fact("loss", "label_counts")
        if curve is None or len(curve) < 5 or not isinstance(counts, list):
            return None
        n_classes_seen = sum(1 for c in counts if c > 0)
        med = float(np.median(curve.values[np.isfinite(curve.values)]))
        if n_classes_seen < 2 or med > 1:
            return None
        return self.finding(
            confidence="high",
            severity="failed",
            score=0.9,
            summary=f"the median training batch holds {med:.0f} class although {n_classes_seen} classes occur",
            recommendation=f"Training batches hold one class each (median over {len(curve)} sampled batches) although "
            f"{n_classes_seen} classes occur: the data arrives sorted. Shuffle it every epoch "
            "(`DataLoader(dataset, shuffle=True)`), and shuffle inputs and labels together.",
            evidence=[Evidence("labels_per_batch", curve.key, {"median": med, "batches": len(curve),
                                                                "classes_seen": n_classes_seen})],
        )


class EvalModeNotSet(Rule):
    """The recorder sees a loss computed with autograd off (an evaluation) while the model
    is still in training mode, and the model has layers that behave differently in the two
    modes (dropout, batch normalisation): the validation numbers are computed with dropout
    on and batch statistics of the validation batches."""

    cause = "eval_mode_not_set"

    def evaluate(self, view: RunView) -> Finding | None:
        seen = view.fact("eval_in_train_mode")
        if not isinstance(seen, dict) or not seen.get("mode_dependent_layers"):
            return None
        layers = ", ".join(seen["mode_dependent_layers"])
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.8,
            summary=f"evaluation ran with the model in training mode ({layers} active)",
            recommendation=f"Evaluation ran with the model in training mode, so {layers} behaved as in training: call "
            "`model.eval()` before evaluating (and `model.train()` after), inside `torch.no_grad()`.",
            evidence=[Evidence("eval_in_train_mode", DIAGNOSTICS, dict(seen))],
        )


class FrozenParameters(Rule):
    """The recorder compares the model's parameters with the optimizer's parameter groups:
    parameters that require gradients but were never handed to any optimizer group can never
    change (typically the optimizer was built before layers were added or replaced, or from
    a sub-module's parameters only). Deliberately frozen parameters (`requires_grad=False`)
    are not reported."""

    cause = "frozen_parameters"

    def evaluate(self, view: RunView) -> Finding | None:
        missing = view.fact("model", "trainable_not_in_optimizer")
        if not missing:
            return None
        names = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.7,
            summary=f"{len(missing)} trainable parameter tensors are in no optimizer group: {names}",
            recommendation=f"These parameters require gradients but no optimizer updates them: {names}. Build the "
            "optimizer after the model is complete, from `model.parameters()` (or list every sub-module you train).",
            evidence=[Evidence("parameters_vs_optimizer", DIAGNOSTICS, {"not_in_optimizer": missing})],
        )
