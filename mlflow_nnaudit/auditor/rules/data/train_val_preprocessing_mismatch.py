"""`train_val_preprocessing_mismatch`: evaluation inputs are preprocessed differently from training inputs."""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import REGRESSION_LOSSES, targets_rms


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
    generalise (two healthy forecasters sit at 0.36 and 0.52).

    The same test on a regression loss's targets (`_targets_apart`): evaluation targets outside the ellipse
    around the training targets, and the validation loss at what predicting 0 scores on them (a forecaster's
    standardised predictions compared with targets in their own units)."""

    cause = "train_val_preprocessing_mismatch"
    reads = (
        ("inputs", "train"),
        ("inputs", "eval"),
        ("loss", "loss_function"),
        ("loss", "targets"),
        ("loss", "eval_targets"),
    )

    #: standardised difference of feature means (median over features) between train and eval inputs
    SHIFT = 1.0
    #: ... or ratio of their scales
    SCALE = 3.0
    #: the share of that distance read where training fit and validation stayed at chance
    MEDIUM = 0.5
    #: "training fit": its loss ended under this share of the untrained level
    TRAIN_FIT = 0.5

    #: the targets' reading: the evaluation targets' mean this many of their own stds from 0 (predicting 0 then
    #: scores their scale: |mean| for an L1-type loss, mean^2 + var for MSE) ...
    FAR_FROM_ZERO = 2.0
    #: ... and a validation loss at its best this share of that score or more: predictions ~0 against those targets
    AT_ZERO = 0.8

    def evaluate(self, view: RunView) -> Finding | None:
        tr, ev = view.fact("inputs", "train"), view.fact("inputs", "eval")
        if not isinstance(tr, dict) or not isinstance(ev, dict):
            return self._targets_apart(view)
        mt, st = np.asarray(tr["feature_mean"]), np.asarray(tr["feature_std"])
        me, se = np.asarray(ev["feature_mean"]), np.asarray(ev["feature_std"])
        ok = st > 1e-12
        if len(mt) != len(me) or not ok.any():
            return self._targets_apart(view)
        shift = float(np.median(np.abs(me[ok] - mt[ok]) / st[ok]))
        scale = float(np.median(np.maximum(se[ok], 1e-12) / st[ok]))
        distance = self._distance(shift, scale)
        if distance <= self.MEDIUM or (distance <= 1 and not self._fit_train_only(view)):
            # inside the ellipse through the two single limits (or half of it, with nothing to explain)
            return self._targets_apart(view)
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

    def _distance(self, shift: float, scale: float) -> float:
        return math.hypot(shift / self.SHIFT, math.log(max(scale, 1e-12)) / math.log(self.SCALE))

    def _targets_apart(self, view: RunView) -> Finding | None:
        """A regression loss's evaluation targets far from its training targets (the inputs' ellipse, over the
        targets' mean and std), FAR_FROM_ZERO of their std from 0, with the validation loss at its best AT_ZERO of
        what predicting 0 scores on them: the predictions stay on the training targets' scale (standardised
        targets, or a forecaster's scaled outputs compared with targets in their units) while the validation
        targets are not on it. Training went well (its loss ended under TRAIN_FIT of what predicting 0 scores on the
        training targets); the validation loss (and early stopping on it) is meaningless."""
        fn, va = view.fact("loss", "loss_function"), view.finite_curve(VAL_LOSS, min_points=1)
        tr, ev = view.fact("loss", "targets"), view.fact("loss", "eval_targets")
        if fn not in REGRESSION_LOSSES or va is None or not isinstance(tr, dict) or not isinstance(ev, dict):
            return None
        (mt, vt), (me, ve) = ((t.get("mean"), t.get("var")) for t in (tr, ev))
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (mt, vt, me, ve)) or min(vt, ve) <= 0:
            return None
        st, se = math.sqrt(vt), math.sqrt(ve)
        zero, best = (me * me + ve if fn == "mse_loss" else abs(me)), float(va.values.min())
        shift, scale = abs(me - mt) / st, se / st
        if abs(me) < self.FAR_FROM_ZERO * se or self._distance(shift, scale) <= 1 or best < self.AT_ZERO * zero:
            return None
        # training went well: its loss ended under TRAIN_FIT of what predicting 0 scores on the training targets (a
        # model whose output is dead at 0 scores that on both sets, found by review)
        lv, rms = view.levels(TRAIN_LOSS), targets_rms(view)
        if lv is None or rms is None or lv.end >= self.TRAIN_FIT * (rms * rms if fn == "mse_loss" else rms):
            return None
        return self.finding(
            confidence="high",
            severity="warning",
            score=min(1.0, best / zero),
            summary=f"the validation loss's targets (mean {fmt_num(me)}, std {fmt_num(se)}) are not on the training "
            f"loss's scale (mean {fmt_num(mt)}, std {fmt_num(st)}), and the validation loss (best {fmt_num(best)}) is "
            f"what predicting 0 scores on them ({fmt_num(zero)})",
            recommendation="The validation loss compares predictions on the training targets' scale with targets in "
            "another: transform the validation targets as the training ones, or map the predictions back (the inverse "
            "of the target scaling) before the validation loss. Early stopping and model selection on it are meaningless.",
            evidence=[
                Evidence(
                    "train_vs_eval_targets",
                    va.key,
                    {"train_mean": mt, "train_std": st, "eval_mean": me, "eval_std": se, "val_best": best}
                    | {"zero_prediction_loss": zero},
                )
            ],
        )

    def _fit_train_only(self, view: RunView) -> bool:
        """The training loss ended under TRAIN_FIT of the untrained level, the validation loss stayed at it."""
        harm, lv = view.outcome_harm(), view.levels(TRAIN_LOSS)
        level = view.chance_loss() or view.targets_variance()
        fit = lv is not None and level is not None and lv.end < self.TRAIN_FIT * level
        return fit and harm is not None and harm.severity == "failed" and view.curve(VAL_LOSS) is not None
