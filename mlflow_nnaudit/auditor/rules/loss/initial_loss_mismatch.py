"""`initial_loss_mismatch`: the first loss is far from what an untrained classifier gives."""

from __future__ import annotations

import math

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import N_CLASSES_READS, first_loss_from_curve


class InitialLossMismatch(Rule):
    """An untrained classifier with C balanced classes should start near ln C (Karpathy's
    check). The recorder notes the loss function, the class count (the width of the
    logits) and the first training loss; a first loss more than 3x above (or below) ln C
    means the output layer's initial scale or the loss setup is off.

    Curves only (no recorder): the class count from a param (`n_classes`, `num_classes`,
    `num_labels`, ...) and the median of the first three points of the training loss curve,
    same 3x test, low confidence (the curve's first point may be logged after some steps, and
    the loss need not be cross-entropy)."""

    cause = "initial_loss_mismatch"
    explained_by = ("loss_input_mismatch",)
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("loss_input_mismatch", "bad_weight_init", "targets_not_normalized", "inputs_not_normalized")
    reads = (("loss", "first_loss"), ("loss", "chance_loss"), *N_CLASSES_READS)

    #: an untrained classifier's first loss is ~ln C; this far off (as a factor) is a mismatch
    FACTOR = 3.0

    def evaluate(self, view: RunView) -> Finding | None:
        first, chance = view.fact("loss", "first_loss"), view.fact("loss", "chance_loss")
        confidence, source = "medium", schema.DIAGNOSTICS_ARTIFACT
        if not view.recorded():
            first, chance, source = first_loss_from_curve(view)
            confidence = "low"
        if not isinstance(first, (int, float)) or not isinstance(chance, (int, float)) or chance <= 0:
            return None
        if not math.isfinite(first) or first <= 0:
            return None
        factor = first / chance
        if 1 / self.FACTOR <= factor <= self.FACTOR:
            return None
        n = view.fact("loss", "n_classes") if source == schema.DIAGNOSTICS_ARTIFACT else view.n_classes()[0]
        direction = "above" if factor > 1 else "below"
        return self.finding(
            confidence=confidence,
            severity="warning",
            score=min(1.0, abs(math.log(factor)) / 3),
            summary=f"the first training loss was {fmt_num(first)}, {factor:.1f}x the {fmt_num(chance)} (ln {n}) an "
            f"untrained {n}-class model should give",
            recommendation=f"The first loss ({fmt_num(first)}) is far {direction} ln {n} = {fmt_num(chance)}: check "
            "the initialisation scale of the last layer (its logits should start near zero; e.g. scale its weights "
            "down or initialise them with `nn.init.xavier_uniform_`), and that the loss and the class count match "
            "the labels.",
            evidence=[
                Evidence(
                    "first_loss_vs_chance",
                    source,
                    {"first_loss": first, "chance_loss": chance, "factor": factor, "n_classes": n},
                )
            ],
        )
