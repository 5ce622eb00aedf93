"""`targets_not_normalized`: regression targets far from unit scale."""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import N_CLASSES_READS, target_std


class TargetsNotNormalized(Rule):
    """For regression losses (`mse_loss`, `l1_loss`, `smooth_l1_loss`, `huber_loss`) the
    recorder keeps the targets' mean, mean square, min and max. Reported when their standard
    deviation or mean magnitude exceeds 10: the network's outputs start near zero with unit
    scale, so the loss and its gradients start huge.

    Curves only (no recorder): the training loss starts at 100 or more (median of its first
    three points). An untrained network on standardised targets starts near an MSE of 1, and
    a cross-entropy starts near ln C, under 12 even for 100,000 classes; a start 100x above
    the first is what targets in the tens or more give. Low confidence (a badly initialised
    classifier can start high too; then `initial_loss_mismatch` says so)."""

    cause = "targets_not_normalized"
    reads = (("loss", "targets"), *N_CLASSES_READS)

    #: regression targets whose typical magnitude exceeds this are on the wrong scale
    SCALE = 10.0
    #: a first training loss this large is off any sane scale (see the docstring)
    HUGE_INITIAL_LOSS = 100.0

    def evaluate(self, view: RunView) -> Finding | None:
        t = view.fact("loss", "targets")
        if not view.recorded():
            return self._from_curve(view)
        if not isinstance(t, dict):
            return None
        std, mean = target_std(t), abs(t["mean"])
        if not (std > self.SCALE or mean > self.SCALE):  # NaN statistics (NaN targets) say nothing of scale
            return None
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.7,
            summary=f"regression targets have mean {fmt_num(t['mean'])} and std {fmt_num(std)}",
            recommendation=f"The regression targets are far from unit scale (mean {fmt_num(t['mean'])}, std "
            f"{fmt_num(std)}): standardise them with the training set's mean and std (and invert that for "
            "predictions), or scale them into a range near [-1, 1].",
            evidence=[
                Evidence(
                    "target_statistics",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {"mean": t["mean"], "std": std, "min": t["min"], "max": t["max"]},
                )
            ],
        )

    def _from_curve(self, view: RunView) -> Finding | None:
        c = view.finite_curve(TRAIN_LOSS, min_points=3)
        if c is None or view.n_classes() is not None:
            return None  # a classifier's huge start is initial_loss_mismatch's business
        first = float(np.median(c.values[:3]))
        if first < self.HUGE_INITIAL_LOSS:
            return None
        return self.finding(
            confidence="low",
            severity="warning",
            score=min(1.0, math.log10(first) / 6),
            summary=f"the training loss starts at {fmt_num(first)}, far above the ~1 an untrained network gives on "
            "standardised targets",
            recommendation=f"The training loss starts at {fmt_num(first)}: if this is a regression, the targets are "
            "far from unit scale. Standardise them with the training set's mean and std (and invert that for "
            "predictions).",
            evidence=[Evidence("huge_initial_loss", c.key, {"first_loss": first, "threshold": self.HUGE_INITIAL_LOSS})],
        )
