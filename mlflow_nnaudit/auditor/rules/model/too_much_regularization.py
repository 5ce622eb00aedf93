"""`too_much_regularization`: training underfits under strong regularisation."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import CHANCE_LEVELS, Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import (
    MEANINGFUL_GAIN,
    PENALTY_READS,
    PLATEAU_MAX_IMPROVEMENT,
    penalty_reading,
)


class TooMuchRegularization(Rule):
    """The training loss stalls well above a good loss (a training loss that ends above 60% of
    where it started, or a classifier's that ends at 80% of chance, ln C, or more: strong dropout
    inflates the first loss, so the fall from it says little) while the recorder saw strong
    regularisation: dropout of 0.5 or more, or weight decay of 0.01 or more with a non-decoupled
    optimizer. The gradients that vanish under weights decayed towards zero, and the plateau,
    are listed as its consequences. A penalty added to the loss by hand is regularisation the optimizer's
    settings do not show: the loss function at most half the loss backpropagated (`helpers.penalty_share`)
    on a run that learned nothing is named with high confidence (a rate read from its steps follows it).

    Curves only (no recorder): the underfitting shape (training loss less than 30% below its
    start and flat from the first half on, validation no more than 10% above it) with
    either params that say the regularisation is strong (`dropout` >= 0.5, `weight_decay`
    >= 0.01), or a validation loss that ends below the training loss by 2% of it or more, the mark of
    regularisation that is active only in training (dropout; 2% is `labels_unrelated`'s line of a
    meaningful gap: two flat curves a hair apart, 1.428 and 1.427, say nothing, and dropout 0.5 lifts
    the training loss far more). Low confidence."""

    cause = "too_much_regularization"
    reads = (
        ("model", "dropout"),
        ("optimizer", schema.PARAM_OPTIMIZER_WEIGHT_DECAY),
        ("optimizer", schema.PARAM_OPTIMIZER),
        *PENALTY_READS,
    )

    #: dropout rate / weight decay that count as strong regularisation
    STRONG_DROPOUT = 0.5
    STRONG_WEIGHT_DECAY = 0.01
    #: weight decay is decoupled from the gradient in this optimizer (a large one is normal there)
    DECOUPLED = "AdamW"
    #: a training loss ending above this share of its start has stalled well above a good loss
    STALLED_AT = 0.6
    #: a classifier's training loss ending at this share of chance or more barely learned (the
    #: outcome's "little better than chance", shared with `RunView.outcome_harm`)
    NEAR_CHANCE = CHANCE_LEVELS[-1][0]
    #: curves only: the validation loss must end this share of the training loss below it (see docstring)
    VAL_BELOW = MEANINGFUL_GAIN
    #: the underfitting shape of the curve-only reading (shared with plateau)
    MAX_IMPROVEMENT = PLATEAU_MAX_IMPROVEMENT

    def evaluate(self, view: RunView) -> Finding | None:
        if not view.recorded():
            return self._from_curve(view)
        if (penalty := penalty_reading(view)) is not None:
            summary, advice, ev = penalty
            return self.finding(
                confidence="high", severity="failed", score=0.9, summary=summary, recommendation=advice, evidence=[ev]
            )
        dropout = view.fact("model", "dropout") or []
        wd = view.fact("optimizer", schema.PARAM_OPTIMIZER_WEIGHT_DECAY) or 0
        opt = view.fact("optimizer", schema.PARAM_OPTIMIZER) or ""
        strong_wd = wd >= self.STRONG_WEIGHT_DECAY and opt != self.DECOUPLED
        strong_dropout = any(p >= self.STRONG_DROPOUT for p in dropout)
        if not (strong_wd or strong_dropout):
            return None
        lv, chance = view.levels(), view.chance_loss()
        if lv is None or lv.start <= 0:
            return None
        near_chance = chance is not None and lv.end >= self.NEAR_CHANCE * chance
        if lv.end < self.STALLED_AT * lv.start and not near_chance:
            return None
        what = ", ".join(
            filter(
                None, [f"dropout {max(dropout)}" if strong_dropout else "", f"weight decay {wd}" if strong_wd else ""]
            )
        )
        return self.finding(
            confidence="medium",
            severity="warning",
            score=0.5,
            summary=(
                f"the training loss ends at {fmt_num(lv.end)}, {lv.end / chance:.0%} of chance (ln C = "
                f"{fmt_num(chance)})"
                if near_chance
                else f"the training loss stays at {lv.end / lv.start:.0%} of its start"
            )
            + f" under strong regularisation ({what})",
            recommendation=f"Training underfits under strong regularisation ({what}): reduce it (dropout 0.1-0.3, "
            "weight decay 1e-4..1e-2 with AdamW) until the training loss falls, then add it back as needed.",
            evidence=[
                Evidence(
                    "regularisation",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {
                        "dropout": dropout,
                        "weight_decay": wd,
                        "train_end_vs_start": lv.end / lv.start,
                        **({"train_end_vs_chance": lv.end / chance} if chance else {}),
                    },
                )
            ],
        )

    def _from_curve(self, view: RunView) -> Finding | None:
        uf = view.underfit()
        if uf is None or not uf.signature(self.MAX_IMPROVEMENT):
            return None
        dropout = view.param_float("dropout", "dropout_rate", "drop_rate", "hidden_dropout_prob", "p_dropout")
        wd = view.param_float("weight_decay", "wd", "l2", "weight-decay")
        strong = [
            f"{name} {fmt_num(v)}"
            for (name, v), limit in (
                (dropout or ("", -1.0), self.STRONG_DROPOUT),
                (wd or ("", -1.0), self.STRONG_WEIGHT_DECAY),
            )
            if v >= limit
        ]
        val_below = uf.val_end is not None and uf.val_end <= (1 - self.VAL_BELOW) * uf.train_end
        if not (strong or val_below):
            return None
        what = (
            ", ".join(strong)
            if strong
            else (f"validation loss {fmt_num(uf.val_end)} below the training loss {fmt_num(uf.train_end)}")
        )
        return self.finding(
            confidence="low",
            severity="warning",
            score=0.4,
            # validation below training alone fits too small a model just as well: list both then
            explains=bool(strong),
            summary=f"the training loss stalled {uf.improvement:.0%} below its start with {what}",
            recommendation=f"Training underfits (the loss stalled only {uf.improvement:.0%} below its start) and "
            f"{what}: the regularisation may be too strong. Reduce dropout to 0.1-0.3 and weight decay to "
            "1e-4..1e-2 and check that the training loss then falls.",
            evidence=[
                Evidence(
                    "underfit_with_regularisation",
                    view.curve(TRAIN_LOSS).key,
                    {"improvement": uf.improvement, "train_end": uf.train_end, "val_end": uf.val_end, "params": strong},
                )
            ],
        )
