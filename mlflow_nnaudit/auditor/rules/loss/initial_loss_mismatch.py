"""`initial_loss_mismatch`: the first loss is far from what an untrained classifier gives."""

from __future__ import annotations

import math

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import INIT_READS, first_loss_from_curve, init_reading, scaled_output


class InitialLossMismatch(Rule):
    """An untrained classifier with C balanced classes should start near ln C (Karpathy's
    check): a uniform guess. The recorder notes the loss function, the class count (the width
    of the logits) and the first training loss. A first loss more than one nat above ln C
    means the untrained model is confidently wrong (on average it gives the true class less
    than e^-1, about 37%, of a uniform guess's probability: logits spread far from zero, so the
    output layer's initial scale or the loss setup is off); a first loss below a third of ln C
    means the model knows the answer before training (leaked labels, a loss scaled down). The
    excess is measured in nats, not as a multiple of ln C: the extra loss of spread logits does
    not grow with ln C, so a multiple would demand a far larger spread of a 1000-class model
    than of a 4-class one. One nat is about what the broadest usual init of the output layer
    gives (He's, over unit-variance features: 0.6 nats above ln 4, 0.8 above ln 10, 1.0 above
    ln 1000; PyTorch's default and LeCun's less): below it the start is a convention, not a
    mistake, and Karpathy's check catches starts off by a lot, not by a He-sized spread. Below a
    nat, two independent readings together still name it: a first loss more than 0.25 nats above
    ln C (twice what a PyTorch-default head over unit-variance features adds to ln 4, 0.12; on
    `tune` healthy runs start within 0.05 of ln C; the corpus labeller's "the fault showed") and
    an output layer that the recorder saw start at 4x LeCun's 1/sqrt(fan_in) std or more, a scale
    no standard init gives a head (PyTorch's default 0.58x, He's 1.41x, Xavier's no more; 4x is
    2.8x He's, 7x the default: `helpers.OUTPUT_SCALE_HIGH`). Listed after `bad_weight_init` only when the recorder saw bad
    initial weights beyond the output layer (hidden layers whose scale, constant or copied
    rows shape the logits from upstream); a bad scale of the output layer alone is this cause.

    Curves only (no recorder): the class count from a param (`n_classes`, `num_classes`,
    `num_labels`, ...) and the median of the first three points of the training loss curve,
    same tests, low confidence (the curve's first point may be logged after some steps, and
    the loss need not be cross-entropy)."""

    cause = "initial_loss_mismatch"
    explained_by = ("loss_input_mismatch",)
    #: upstream causes it follows from, when found too (listed after them); `bad_weight_init` is a
    #: run-specific link (`Finding.follows`, see the docstring)
    #: (strong dropout: surviving units scaled by 1/(1-p) in training mode spread the first logits)
    consequence_of = (
        "loss_input_mismatch",
        "targets_not_normalized",
        "inputs_not_normalized",
        "too_much_regularization",
    )
    reads = (("loss", "first_loss"), ("loss", "chance_loss"), *INIT_READS)

    #: a first loss this many nats above ln C is confidently wrong (true class at < e^-1 of a uniform guess)
    EXCESS_NATS = 1.0
    #: a first loss below ln C divided by this knows the labels before training
    BELOW_FACTOR = 3.0
    #: with an output layer the recorder saw scaled up (`scaled_output`), a first loss this many nats above
    #: ln C shows its effect: twice a default head's 0.12 over unit features (the corpus labeller's "showed")
    EXCESS_WITH_HEAD = 0.25

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
        excess, factor = first - chance, first / chance
        head = scaled_output(view) if source == schema.DIAGNOSTICS_ARTIFACT and excess > self.EXCESS_WITH_HEAD else None
        if excess <= self.EXCESS_NATS and factor >= 1 / self.BELOW_FACTOR and head is None:
            return None
        n = view.fact("loss", "n_classes") if source == schema.DIAGNOSTICS_ARTIFACT else view.n_classes()[0]
        above = excess > 0
        init = init_reading(view)
        upstream = init is not None and bool(init.constant or init.symmetric or init.scaled) and not init.output_only
        return self.finding(
            confidence=confidence,
            severity="warning",
            score=min(1.0, abs(math.log(factor)) / 3),
            follows=("bad_weight_init",) if upstream else (),
            summary=f"the first training loss was {fmt_num(first)}, "
            + (f"{excess:.2g} nats above" if above else f"{factor:.2g}x")
            + f" the {fmt_num(chance)} (ln {n}) an untrained {n}-class model should give"
            + (f", with the output layer {head[0]} at {head[1]:.2g}x LeCun's initial std" if head else ""),
            recommendation=(
                f"The output layer {head[0]} started at {head[1]:.2g}x LeCun's 1/sqrt(fan_in) std, a scale no "
                "standard init gives it (PyTorch's default 0.58x, He's 1.41x), and the first loss "
                f"({fmt_num(first)}) shows it, {excess:.2g} nats above ln {n}: keep PyTorch's default init of that "
                "layer (or `nn.init.xavier_uniform_`) so its logits start near zero, or find what scales it up."
                if head
                else f"The first loss ({fmt_num(first)}) is far {'above' if above else 'below'} ln {n} = "
                f"{fmt_num(chance)}: check the initialisation scale of the last layer (its logits should start near "
                "zero; e.g. scale its weights down or initialise them with `nn.init.xavier_uniform_`), and that the "
                "loss and the class count match the labels."
            ),
            evidence=[
                Evidence(
                    "first_loss_vs_chance",
                    source,
                    {
                        "first_loss": first,
                        "chance_loss": chance,
                        "excess_nats": excess,
                        "factor": factor,
                        "n_classes": n,
                    },
                ),
                *(
                    [Evidence("output_layer_init", source, {"param": head[0], "scale_vs_lecun": head[1]})]
                    if head
                    else []
                ),
            ],
        )
