"""`train_val_preprocessing_mismatch`: evaluation inputs are preprocessed differently from training inputs."""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView


class TrainValPreprocessingMismatch(Rule):
    """The recorder keeps input statistics separately for training batches and for
    evaluation batches (forward passes without autograd or in eval mode). Reported when the
    evaluation inputs sit far from the training inputs: the median over features of
    |mean_eval - mean_train| / std_train above 1, or the median ratio of their standard
    deviations beyond 3x either way, as when only one split was normalised; or both at once in part,
    outside the ellipse through those two limits ((shift / 1)^2 + (ln ratio / ln 3)^2 > 1): an
    evaluation split both shifted and rescaled (x*3 + 1 sits on both limits) is further from the
    training inputs than either change alone. On the tune corpus every run without this fault sits
    below 0.2 of that distance, every run with it at 1.4 or more.

    Half that distance (Cohen's "medium" effect: means half a training std apart, as when the
    validation images are read BGR and two of three channels move) is reported at medium confidence
    where it has a failure to explain: the training loss ended under half of the untrained level (ln C,
    or a regression's targets' variance) while the validation loss never got below 95% of it, the
    outcome's "no better than chance". Time series validated on a later window shift as much and
    generalise (two healthy forecasters sit at 0.36 and 0.52)."""

    cause = "train_val_preprocessing_mismatch"
    reads = (("inputs", "train"), ("inputs", "eval"))

    #: standardised difference of feature means (median over features) between train and eval inputs
    SHIFT = 1.0
    #: ... or ratio of their scales
    SCALE = 3.0
    #: the share of that distance read where training fit and validation stayed at chance
    MEDIUM = 0.5
    #: "training fit": its loss ended under this share of the untrained level
    TRAIN_FIT = 0.5

    def evaluate(self, view: RunView) -> Finding | None:
        tr, ev = view.fact("inputs", "train"), view.fact("inputs", "eval")
        if not isinstance(tr, dict) or not isinstance(ev, dict):
            return None
        mt, st = np.asarray(tr["feature_mean"]), np.asarray(tr["feature_std"])
        me, se = np.asarray(ev["feature_mean"]), np.asarray(ev["feature_std"])
        if len(mt) != len(me) or len(mt) == 0:
            return None
        ok = st > 1e-12
        if not ok.any():
            return None
        shift = float(np.median(np.abs(me[ok] - mt[ok]) / st[ok]))
        scale = float(np.median(np.maximum(se[ok], 1e-12) / st[ok]))
        distance = math.hypot(shift / self.SHIFT, math.log(max(scale, 1e-12)) / math.log(self.SCALE))
        if distance <= self.MEDIUM or (distance <= 1 and not self._fit_train_only(view)):
            return None  # inside the ellipse through the two single limits (or half of it, with nothing to explain)
        return self.finding(
            confidence="high" if distance > 1 else "medium",
            severity="warning",
            score=min(1.0, shift / 5 + abs(math.log(max(scale, 1e-12))) / 5),
            summary=f"evaluation inputs differ from training inputs: feature means shifted by {shift:.1f} training "
            f"std, scales {scale:.2g}x",
            recommendation=f"Evaluation inputs are preprocessed differently from training inputs (means shifted by "
            f"{shift:.1f} std, scale {scale:.2g}x): compute normalisation statistics on the training split once and "
            "apply the same transform (and, for images, the same channel order: RGB or BGR) to every split.",
            evidence=[
                Evidence(
                    "train_vs_eval_inputs",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {"median_mean_shift_in_train_std": shift, "median_std_ratio": scale},
                )
            ],
        )

    def _fit_train_only(self, view: RunView) -> bool:
        """The training loss ended under TRAIN_FIT of the untrained level, the validation loss stayed at it."""
        harm, lv = view.outcome_harm(), view.levels(TRAIN_LOSS)
        level = view.chance_loss() or view.targets_variance()
        fit = lv is not None and level is not None and lv.end < self.TRAIN_FIT * level
        return fit and harm is not None and harm.severity == "failed" and view.curve(VAL_LOSS) is not None
