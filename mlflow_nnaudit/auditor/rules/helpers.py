"""What several rules share: the thresholds more than one rule decides by, the evidence of a
trend test, the reading of a per-layer share, a loss's growth before it turned non-finite.

A threshold used by one rule only is a class attribute of that rule, next to its reason; the
ones here are shared, so that two rules that mean the same thing by "did not learn" or "the
tail of the run" agree on the number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import GRAD_NORM, LEARNING_RATE, TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS, Curve
from mlflow_nnaudit.auditor.rules.base import (
    CHANCE_LEVELS,
    LR_PARAMS,
    Evidence,
    Finding,
    OutcomeHarm,
    Rule,
    RunView,
    _shared_axis,
    fmt_factor,
    fmt_num,
    fmt_step,
)

#: a run that lost less than this share of its starting loss did not learn
NO_LEARNING = 0.05
#: ... and less than this, with an early stall, is stuck on a plateau
PLATEAU_MAX_IMPROVEMENT = 0.30
#: tail window for "still improving": the last 30% of the curve
TAIL_START = 0.7
#: the fewest points a tail's Mann-Kendall test is read on: with 4 it can never reach p < 0.05 (its
#: smallest two-sided p is 2/4! = 0.083; 2/5! = 0.017 with 5), and the last 30% of 12 evaluations is 4
MIN_TAIL_POINTS = 5
#: a tail (the last 30%) that still brings this share of the run's progress is "still improving"
#: (`not_converged`; an unfinished warm-up's harm)
TAIL_SHARE_IMPROVING = 0.10
#: Prechelt's generalization loss (%) that makes overfitting worth reporting
OVERFIT_GL = 10.0
#: update/weight ratios per step well above/below ~1e-3 (Karpathy's rule of thumb; DeepDiagnosis
#: flags lr*|dW|/|W| outside [1e-5, 1e-1]); starting points, not laws
UPDATE_RATIO_HIGH = 1e-1
UPDATE_RATIO_LOW = 1e-5
#: ... and Karpathy's healthy level itself
UPDATE_RATIO_HEALTHY = 1e-3
#: a loss that rose this many times above its lowest value before turning NaN/Inf blew up
#: (rather than meeting one bad batch or operation)
GROWTH_BEFORE_NONFINITE = 3
#: a learning rate at this share of its peak or less has been decayed away ...
LR_DECAYED = 0.1
#: ... early when that happens within this share of the run (a cosine or step schedule over the
#: whole run gets there in its last third)
LR_DECAY_EARLY = 0.5

#: what `RunView.learning_rate()` reads from the recorder (besides params users log)
LEARNING_RATE_READS = (schema.PARAM_OPTIMIZER_LR,)
#: what `RunView.update_ratios()` reads
UPDATE_RATIO_READS = (schema.layer_prefix(schema.LAYER_UPDATE_RATIO),)
#: what `RunView.n_classes()` reads from the recorder
N_CLASSES_READS = (("loss", "n_classes"), ("loss", "loss_function"), ("loss", "input_shape"))
N_CLASSES_READS += (("loss", "binary_targets"),)
#: what `RunView.epoch_length()` reads from the recorder
#: what `RunView.dataset_size()` reads from the recorder
DATASET_SIZE_READS = (
    ("data_loader", "train", "dataset_size"),
    ("inputs", "fingerprints", "cycle_samples"),
    ("inputs", "fingerprints", "cycle_batches"),
)
#: what `RunView.batch_size()` reads from the recorder
BATCH_SIZE_READS = (("data_loader", "train", "batch_size"), ("inputs", "train", "median_batch_size"))
#: what `RunView.epoch_length()` reads from the recorder (a dataset size over a batch size among them)
EPOCH_LENGTH_READS = (("data_loader", "train", "batches_per_epoch"), *DATASET_SIZE_READS, *BATCH_SIZE_READS)

#: what `input_rms` reads from the recorder (its statistics of the first sampled training batches)
INPUT_SCALE_READS = (("inputs", "train", "median_std"), ("inputs", "train", "median_abs_mean"))
#: training inputs whose typical feature has a root mean square of at least this are 10x unit
#: scale: a first layer's gradient and its effect on the pre-activations both grow with x, so one
#: step moves them 10x (Adam: steps of about the learning rate) to 100x (SGD) more than with
#: standardised inputs; raw 0..255 pixels are ~100 (the rule of inputs_not_normalized: std > 10)
INPUT_RMS_HIGH = 10.0


def input_rms(view: RunView) -> float | None:
    """The typical training-input feature's root mean square, sqrt(mean^2 + std^2), from the
    recorder's input statistics (median |mean| and median std over the features, so an
    approximation for features of mixed scales); None when the recorder saw no inputs."""
    std, mean = view.fact("inputs", "train", "median_std"), view.fact("inputs", "train", "median_abs_mean")
    if not isinstance(std, (int, float)) or not isinstance(mean, (int, float)):
        return None
    return math.hypot(float(std), float(mean))


#: the gradient norm's end level vs its start level that counts as exploding (AutoTrainer uses 70x)
GRAD_NORM_GROWTH = 100.0
#: the gradient norm's last value before a NaN loss vs its early median: this much growth is a blow-up
GRAD_GROWTH_BEFORE_NAN = 10.0


def grad_norm_grew(view: RunView) -> float | None:
    """`exploding_gradients`' growth test: the gradient norm's end level GRAD_NORM_GROWTH times its
    start level or more, with a significant upward trend. The growth factor, or None."""
    lv, trend = view.levels(GRAD_NORM), view.trend(GRAD_NORM)
    growth = lv.end / lv.start if lv is not None and lv.start > 0 else None
    grew = growth is not None and growth >= GRAD_NORM_GROWTH and trend is not None and trend.direction > 0
    return growth if grew else None


def grad_growth_before(view: RunView, step: float) -> float | None:
    """The gradient norm's last finite value up to `step` over the median of the first half of
    those values, when that is GRAD_GROWTH_BEFORE_NAN or more (the norm blew up before the step);
    None otherwise (fewer than 3 values, or no such growth)."""
    gn = view.curve(GRAD_NORM)
    if gn is None:
        return None
    pre = gn.values[(gn.x() <= step) & np.isfinite(gn.values)]
    if len(pre) < 3:
        return None
    early = float(np.median(pre[: max(1, len(pre) // 2)]))
    ratio = float(pre[-1] / early) if early > 0 else 0.0
    return ratio if ratio >= GRAD_GROWTH_BEFORE_NAN else None


def grad_levels_grew(view: RunView) -> bool:
    """The gradient norm's end level is GRAD_GROWTH_BEFORE_NAN times its start level or more (a
    norm that blew up early and stayed high, or grew linearly)."""
    lv = view.levels(GRAD_NORM)
    return lv is not None and lv.start > 0 and lv.end / lv.start >= GRAD_GROWTH_BEFORE_NAN


def grad_blew_up_before(view: RunView, step: float) -> bool:
    """The gradient norm grew GRAD_GROWTH_BEFORE_NAN times or more by either reading: its levels
    over the whole curve (`grad_levels_grew`) or its last value before the step vs its early
    median (`grad_growth_before`)."""
    return grad_levels_grew(view) or grad_growth_before(view, step) is not None


def largest_feature_rms(view: RunView) -> float | None:
    """The largest training-input feature's root mean square, sqrt(mean^2 + std^2), over the features
    the recorder lists (the first 64), else the typical one (`input_rms`); None without inputs."""
    means, stds = view.fact("inputs", "train", "feature_mean"), view.fact("inputs", "train", "feature_std")
    if isinstance(means, list) and isinstance(stds, list) and means and len(means) == len(stds):
        try:
            rms = [math.hypot(float(m), float(s)) for m, s in zip(means, stds)]
        except (TypeError, ValueError):
            rms = []
        rms = [r for r in rms if not math.isnan(r)]  # (inf is large and counts)
        if rms:
            return max(rms)
    return input_rms(view)


#: what `nan_columns` reads
NAN_COLUMN_READS = (
    ("inputs", "train", "nonfinite_share"),
    ("inputs", "train", "nonfinite_features"),
    ("inputs", "train", "features"),
    ("inputs", "train", "constant_features"),
    *INPUT_SCALE_READS,
)
#: the typical finite feature's median |mean| at most, and median std within, these: standardised
STANDARDISED_MEAN, STANDARDISED_STD = 0.5, (0.5, 2.0)


def nan_columns(view: RunView) -> int | None:
    """How many training-input features are NaN/Inf in every value the recorder saw
    (`nonfinite_features`), when those hold all the NaN/Inf it counted (the share is then exactly
    k / F), are among the features it saw never vary (a NaN column has no finite minimum or
    maximum), and the other features look standardised (median |mean| <= 0.5, median std 0.5-2) or
    scaled into a unit range (`_unit_scaled`): the mark of a constant column standardised by its zero
    std, or divided by its zero maximum, 0 / 0 in every row. None when the
    NaN/Inf are elsewhere too, there are none, or the inputs are not standardised (a column that
    failed to parse among raw features, found by review), or the recorder predates the count."""
    st = view.fact("inputs", "train")
    if not isinstance(st, dict):
        return None
    share, n, k, cols = (
        st.get(key) for key in ("nonfinite_share", "features", "constant_features", "nonfinite_features")
    )
    mean, std = st.get("median_abs_mean"), st.get("median_std")
    if not all(isinstance(v, (int, float)) for v in (share, n, k, cols, mean, std)) or not 1 <= cols <= min(k, n):
        return None
    if (mean > STANDARDISED_MEAN or not STANDARDISED_STD[0] <= std <= STANDARDISED_STD[1]) and not _unit_scaled(st):
        return None
    return int(cols) if abs(share * n - cols) <= 1e-6 * cols else None


def _unit_scaled(st: dict) -> bool:
    """Every feature that varies has its mean within +/-1 and its std at most 1: the inputs were
    scaled into a unit range (divided by each column's maximum, min-max scaled), where a constant
    zero column gives 0 / 0 as well."""
    means, stds = st.get("feature_mean"), st.get("feature_std")
    if not isinstance(means, list) or not isinstance(stds, list) or len(means) != len(stds):
        return False
    varying = [
        (m, s) for m, s in zip(means, stds) if isinstance(m, (int, float)) and isinstance(s, (int, float)) and s > 0
    ]
    return bool(varying) and all(abs(m) <= 1 and s <= 1 for m, s in varying)


def trend_evidence(name: str, curve_key: str, t, steps=None) -> Evidence:
    """The evidence of a Mann-Kendall trend test (`stats.Trend`) on a curve."""
    return Evidence(
        name,
        curve_key,
        {
            "tau": t.tau,
            "z": t.z,
            "p_value": t.p_value,
            "change": t.change,
            "change_ci90": [t.change_low, t.change_high],
            "variance_inflation": t.variance_inflation,
            "n_blocks": t.n,
        },
        steps,
    )


def worst_layer(shares: dict[str, float], threshold: float) -> tuple[dict[str, float], str | None]:
    """The layers whose share reaches the threshold, and the worst of them (None: no layer)."""
    bad = {k: v for k, v in shares.items() if v >= threshold}
    return bad, (max(bad, key=bad.get) if bad else None)


def lr_text(view: RunView) -> str:
    """ " (it is 0.1)" when the run's learning rate is known, for a recommendation."""
    lr = view.learning_rate()
    return f" (it is {fmt_num(lr[1])})" if lr else ""


def finite_before(curve: Curve, first_nonfinite: int) -> np.ndarray:
    """The finite values of a curve before its first non-finite point."""
    before = curve.values[:first_nonfinite]
    return before[np.isfinite(before)]


def growth_before_nonfinite(before: np.ndarray) -> tuple[float, float] | None:
    """(lowest, last) of the finite values before a NaN/Inf when the last is at least
    GROWTH_BEFORE_NONFINITE times the lowest (a blow-up), else None (too few points to tell: 3)."""
    if len(before) < 3:
        return None
    low, last = float(np.min(before)), float(before[-1])
    if low > 0 and last / low >= GROWTH_BEFORE_NONFINITE:
        return low, last
    return None


def first_loss_from_curve(view: RunView) -> tuple[float | None, float | None, str | None]:
    """(median of the first 3 finite training-loss points, ln C from the class-count param, curve key)."""
    c = view.finite_curve(TRAIN_LOSS, min_points=3)
    n = view.n_classes()
    if c is None or n is None:
        return None, None, None
    return float(np.median(c.values[:3])), math.log(n[0]), c.key


class LayerShareRule(Rule):
    """A rule on one of the recorder's per-layer shares (`<kind>/<layer>`, a share of a layer's
    units in some bad state): reported when the median share over the second half of the run
    reaches THRESHOLD in some layer; the worst layer is named. Subclasses set `KIND`,
    `THRESHOLD` and `describe`."""

    KIND: ClassVar[str]  # the per-layer metric kind (schema.LAYER_*)
    THRESHOLD: ClassVar[float]  # the share of a layer's units that makes the finding
    EVIDENCE_TEST: ClassVar[str]  # the evidence's test name

    def evaluate(self, view: RunView) -> Finding | None:
        prefix = schema.layer_prefix(self.KIND)
        shares = {k: v for k, v in view.layer_medians(prefix).items() if self.considered(k, view)}
        bad, worst = worst_layer(shares, self.THRESHOLD)
        if worst is None:
            return None
        return self.describe(bad, worst, [Evidence(self.EVIDENCE_TEST, prefix, {"per_layer": shares})])

    def considered(self, layer: str, view: RunView) -> bool:
        """Whether a layer's share counts (all do, unless a subclass knows a layer is so by design)."""
        return True

    def describe(self, bad: dict[str, float], worst: str, evidence: list[Evidence]) -> Finding:
        """The finding, given the layers at or over the threshold and the worst one."""
        raise NotImplementedError  # pragma: no cover - interface


def expected_first_loss(view: RunView) -> float | None:
    """Where the training loss stood before the first update: the recorder's loss of the first
    training call, else ln C for a known class count (a classifier's loss at init), else None."""
    first = view.fact("loss", "first_loss")
    if isinstance(first, (int, float)) and math.isfinite(first) and first > 0:
        return float(first)
    n = view.n_classes()
    return math.log(n[0]) if n else None


#: what `blowup` and `stuck` read from the recorder
BLOWUP_READS = (("loss", "first_loss"), *N_CLASSES_READS, *BATCH_SIZE_READS)


#: training batches under this many samples make the recorder's per-step loss that of a sample or two: a
#: point over the blow-up line counts there only with most of the 4 after it (one bag in a multiple-instance
#: learner's stream of positives cost 17x the mean loss at step 140 and was called an explosion)
FEW_SAMPLE_BATCH = 4


def blowup(view: RunView, role: str = TRAIN_LOSS) -> stats.BlowUp | None:
    """The early blow-up reading of a loss curve (`stats.detect_blowup`), computed once per view. On the
    recorder's per-step training loss of batches under FEW_SAMPLE_BATCH samples, a point over the line with most
    of the points after it back under it is one or two samples' losses, not an explosion (`isolated_ok`); a
    user's curve may be per-epoch means, and the recorder's validation loss is a mean over the evaluation set,
    where one point high is the explosion: read as they are. The start is the raw first loss."""
    c = view.curve(role)
    if c is None or len(c.values) < 3:
        return None

    def compute() -> stats.BlowUp:
        bs = view.batch_size() if role == TRAIN_LOSS and c.key.startswith(schema.METRIC_PREFIX) else None
        return stats.detect_blowup(
            c.x(),
            c.values,
            expected_first_loss(view) if role == TRAIN_LOSS else None,
            classification=view.n_classes() is not None,
            isolated_ok=bs is not None and bs[0] < FEW_SAMPLE_BATCH,
        )

    return view._cached("blowup", role, compute)


def guessed_classes(view: RunView) -> int | None:
    """Without a known class count (no recorder, no class-count param): the k whose ln k a loss
    curve of the run starts at, within `stats.CHANCE_TOLERANCE_GUESS` (k = 2..10). A classifier
    starts at the loss of a uniform guess, ln C (the premise of `initial_loss_mismatch`), so a
    first point there names C; a curve whose first point already averages some learning starts
    below it and names nothing. None on a recorded run (the recorder knows whether the loss is a
    classification loss and its class count) and when the curves name two different k."""
    if view.recorded() or view.n_classes() is not None:
        return None

    def compute():
        ks = set()
        for role in (TRAIN_LOSS, VAL_LOSS):
            c = view.curve(role)
            if c is None or not c.finite.any():
                continue
            first = float(c.values[c.finite][0])
            for k in range(2, stats.CHANCE_MAX_K_GUESS + 1):
                if abs(first - math.log(k)) <= stats.CHANCE_TOLERANCE_GUESS * math.log(k):
                    ks.add(k)
        return ks.pop() if len(ks) == 1 else None

    return view._cached("guessed_classes", "", compute)


def stuck(view: RunView, role: str = TRAIN_LOSS) -> stats.Stuck | None:
    """The stuck-loss reading of a loss curve (`stats.stuck_loss`), computed once per view, against
    the known class count, else the one the curves start at (`guessed_classes`: then
    `known_classes` stays False)."""
    c = view.curve(role)
    if c is None:
        return None
    n = view.n_classes()

    def compute():
        if n:
            return stats.stuck_loss(c.values, n[0])
        k = guessed_classes(view)
        st = stats.stuck_loss(c.values, k)
        return replace(st, known_classes=False) if st is not None and k is not None else st

    return view._cached("stuck", role, compute)


def class_count(view: RunView) -> int | None:
    """The known class count, else the one the curves start at (`guessed_classes`)."""
    n = view.n_classes()
    return n[0] if n else guessed_classes(view)


def still_falling(c: Curve) -> bool:
    """A loss still falling through the last half of its points: a Mann-Kendall downward trend
    there, by NO_LEARNING of its level or more (a model recovering from a bad start, huge initial
    logits, is learning, not stuck)."""
    h = len(c.values) // 2
    t = stats.mann_kendall(c.x()[h:], c.values[h:])
    return t.direction < 0 and -t.change >= NO_LEARNING * abs(float(c.values[h]))


def val_falling_since(view: RunView, from_share: float, scale: float, min_falls: int, effect: float) -> bool:
    """The validation loss still falling from `from_share` of the run on, read evaluation by evaluation
    (a run evaluated once an epoch has too few points for `RunView.stall`): every evaluation from the
    last one before that point on lower than the one before it, at least `min_falls` falls in a row
    (noise alone orders n points so with probability 1/n!: 1/24 for 4), and at their Theil-Sen rate one
    more run as long would lose `effect` of `scale` or more (a p-value is no effect size). The k-th of n
    evaluations sits at k/n of the run (one per epoch), so a run is n evaluations long."""
    c = view.curve(VAL_LOSS)
    if c is None:
        return False
    v = c.values[c.finite]
    n = len(v)
    first = next((k for k in range(n) if (k + 1) / n >= from_share), n) - 1  # the evaluation before the stretch
    w = v[max(first, 0) :]
    if len(w) < min_falls + 1 or not bool((np.diff(w) < 0).all()):
        return False
    i, j = np.triu_indices(len(w), 1)
    slope = float(np.median((w[j] - w[i]) / (j - i)))  # Theil-Sen, per evaluation
    return -slope * n >= effect * abs(scale)


def val_at_chance(view: RunView, min_points: int) -> stats.Stuck | None:
    """The validation loss sat at chance (ln C), or never got clearly below it, over at least
    `min_points` evaluations, while the training loss did not end clearly below ln C either (a
    training loss well below chance next to such a validation loss is overfitting): nothing was
    learned. None otherwise, and None for a validation loss above chance that still fell through
    the last half of its evaluations (a Mann-Kendall downward trend, by NO_LEARNING of its level
    or more): a model recovering from a bad start (huge initial logits) is learning, not stuck."""
    vsk, k = stuck(view, VAL_LOSS), class_count(view)
    if vsk is None or k is None or not (vsk.chance_k is not None or vsk.no_better_than_chance):
        return None
    c = view.finite_curve(VAL_LOSS, min_points=min_points)
    if c is None:
        return None
    if vsk.chance_k is None and still_falling(c):  # above chance and still falling: learning, not stuck
        return None
    lv = view.levels(TRAIN_LOSS)
    k = vsk.chance_k or k
    return None if lv is not None and lv.end < (1 - stats.CHANCE_TOLERANCE) * math.log(k) else vsk


#: what `RunView.targets_variance` (so `val_at_mean`, `learned_nothing`) reads from the recorder
MEAN_READS = (("loss", "loss_function"), ("loss", "reduction"), ("loss", "targets"), ("loss", "eval_targets"))
#: a regression's validation MSE at or above this share of its targets' variance is no better than
#: predicting their mean: the outcome's failed share (`base.MEAN_LEVELS`, under 5% of the variance
#: explained). Wider than CHANCE_TOLERANCE's 2% because the variance is no constant like ln C: it is
#: estimated on the checked training batches (its relative standard error is sqrt(2/n) for n Gaussian
#: targets, 5% at n = 800, a few dozen batches), and the validation set has its own variance, while a
#: model predicting the training mean there pays the shift of the two means on top
MEAN_TOLERANCE = 1 - CHANCE_LEVELS[0][0]


def val_at_mean(view: RunView, min_points: int) -> stats.Stuck | None:
    """A regression's `val_at_chance` (an `mse_loss` with the recorder's target statistics): the
    validation MSE never got clearly below the targets' variance (`RunView.targets_variance`, the
    MSE of predicting their mean; within MEAN_TOLERANCE) through the last half of at least
    `min_points` evaluations, was not still falling (`still_falling`), and the training loss did
    not end clearly below it either (then it is overfitting): nothing was learned beyond the mean,
    even when the per-step training loss is too noisy to show a stall. A reading with
    `no_better_than_chance` and `variance` set; None otherwise."""
    var = view.targets_variance()
    c = view.finite_curve(VAL_LOSS, min_points=min_points) if var else None
    if c is None:
        return None if var else val_r2_at_mean(view, min_points)
    v = c.values[c.finite]
    tail = v[-max(3, int(math.ceil(stats.STUCK_TAIL * len(v)))) :]
    floor = (1 - MEAN_TOLERANCE) * var
    lv = view.levels(TRAIN_LOSS)
    if float(tail.min()) < floor or still_falling(c) or (lv is not None and lv.end < floor):
        return None
    level = float(np.median(tail))
    return stats.Stuck(False, None, False, level, float(np.ptp(tail)) / level, True, var)


def val_r2_at_mean(view: RunView, min_points: int) -> stats.Stuck | None:
    """`val_at_mean` without the recorder's variance, on the validation R² the run logged (`RunView.r2_curve`,
    0 for predicting the validation targets' mean): never above MEAN_TOLERANCE (0.05) through the last half of
    at least `min_points` evaluations, not rising there by NO_LEARNING (0.05) or more (`_r2_rising`), the
    validation loss not still falling (`still_falling`), and the training loss, positive at its start, not
    down by PLATEAU_MAX_IMPROVEMENT of it or more (one that fell that far fitted the training set: overfitting's
    to judge; a loss that starts at or below 0, a Gaussian NLL, has no such share and is not read). A reading
    with `no_better_than_chance`, `r2` (the tail's best) and the validation loss's tail median as `level`."""
    r2, va = view.r2_curve(min_points), view.finite_curve(VAL_LOSS, min_points=min_points)
    lv, start = view.levels(TRAIN_LOSS), start_level(view)
    if r2 is None or va is None or lv is None or start is None or start <= 0:
        return None
    tail = r2.values[-max(3, int(math.ceil(stats.STUCK_TAIL * len(r2.values)))) :]
    fitted = lv.end <= (1 - PLATEAU_MAX_IMPROVEMENT) * start
    if float(tail.max()) > MEAN_TOLERANCE or _r2_rising(r2) or still_falling(va) or fitted:
        return None
    v = va.values[-len(tail) :]
    level = float(np.median(v))
    spread = float(np.ptp(v)) / abs(level) if level else 0.0
    return stats.Stuck(False, None, False, level, spread, True, None, float(tail.max()))


def _r2_rising(r2: Curve) -> bool:
    """An R² still rising through the last half of its points: the Theil-Sen line there gained NO_LEARNING
    (0.05) of R² or more, significant or not (a steady rise over the 3 or 4 points of a short run's half is
    never significant; `still_falling` on a loss measures the fall against the loss's level, and an R² near
    0 has none: its scale is 1)."""
    h = len(r2.values) // 2
    return stats.mann_kendall(r2.x()[h:], r2.values[h:]).change >= NO_LEARNING


#: what `RunView.prior_loss` reads (the label frequencies' entropy, `usual_steps_at_chance_finding`)
PRIOR_READS = (("loss", "label_counts"), ("loss", "class_weighted"), ("loss", "label_smoothing"))


def frozen_outcome(view: RunView) -> OutcomeHarm | None:
    """Harm the outcome's levels cannot read where no yardstick is known (a multi-label BCE has no ln C):
    a validation loss exactly constant over its last evaluations (the tail of `stats.stuck_loss`, 3 or
    more points) at a level less than PLATEAU_MAX_IMPROVEMENT below where the run started (the highest
    of its first evaluation, the training loss's first point, the recorder's first loss and ln C): it stopped moving
    before it had learned much (one frozen after falling 75% learned first)."""
    sk, va, tr = stuck(view, VAL_LOSS), view.finite_curve(VAL_LOSS, min_points=3), view.finite_curve(TRAIN_LOSS)
    if sk is None or not sk.constant or va is None:
        return None
    # where an untrained model stands: the first evaluation, the training loss's start, the recorder's
    # first loss or ln C, whichever is highest (most loops evaluate only after their first epoch)
    first = view.fact("loss", "first_loss")
    starts = [float(va.values[0]), float(tr.values[0]) if tr is not None else 0.0, view.chance_loss() or 0.0]
    start = max([*starts, float(first) if isinstance(first, (int, float)) and math.isfinite(first) else 0.0])
    if start <= 0 or sk.level < (1 - PLATEAU_MAX_IMPROVEMENT) * start:
        return None
    n = max(3, math.ceil(stats.STUCK_TAIL * len(va.values)))
    return OutcomeHarm(
        "failed",
        f"the validation loss stayed exactly at {fmt_num(sk.level)} over its last {n} evaluations, "
        f"{1 - sk.level / start:.0%} below where the run started",
    )


#: a validation loss that moved by this share of its level (or more) moved
VAL_MOVED = 0.01


def learned_before_frozen(view: RunView, val: Curve) -> bool:
    """A validation loss exactly constant over its last evaluations came after learning: it sits
    PLATEAU_MAX_IMPROVEMENT or more below where the run started (`frozen_outcome` finds no harm) and either it
    moved itself before it froze or the training loss fell that much too. A start read from a training loss
    logged on another scale (a per-batch sum beside a mean validation loss) alone says nothing (review)."""
    if frozen_outcome(view) is not None:
        return False
    lv = view.levels(TRAIN_LOSS)
    fell = lv is not None and lv.start > 0 and lv.end <= (1 - PLATEAU_MAX_IMPROVEMENT) * lv.start
    # moved: by 1% of its level, not a float32 step of a shuffled evaluation order (review)
    return bool(np.ptp(val.values) > VAL_MOVED * abs(float(np.median(val.values)))) or fell


def learned_nothing(view: RunView, min_points: int = 5) -> bool:
    """The run learned nothing at all: the training loss stuck (constant, or at ln C), the
    validation loss at chance (`val_at_chance`) or no better than the targets' mean
    (`val_at_mean`), each over `min_points` evaluations, or an outcome no better than chance or
    the mean (`RunView.outcome_harm` failed)."""
    sk, harm = stuck(view), view.outcome_harm()
    return bool(
        (sk is not None and sk.stuck)
        or (harm is not None and harm.severity == "failed")
        or val_at_chance(view, min_points)
        or val_at_mean(view, min_points)
    )


#: what `penalty_share` reads from the recorder
PENALTY_READS = (
    ("loss", "objective_share"),
    ("loss", "objective_share_start"),
    ("loss", "objective_steps"),
    ("loss", "objective_calls"),
)
#: the loss function's output at most this share of the loss backpropagated: the terms added to it by
#: hand (an L1/L2 penalty, an auxiliary term) weigh at least as much as the loss itself in what the
#: optimizer minimises. Healthy runs reach this too once their data loss is near 0 under any penalty
#: (the fixed L1 program ends at 2%): it names a cause only where nothing was learned
PENALTY_DOMINATES = 0.5
#: backward calls the share must rest on
PENALTY_MIN_STEPS = 3


def penalty_share(view: RunView) -> float | None:
    """The loss function's median share of the backpropagated loss over the recorder's sampled
    backward calls, or over its first three of them when lower (`loss.objective_share`,
    `objective_share_start`: a penalty that drove the weights to zero early weighs little once they
    are there), when it is PENALTY_DOMINATES or less on PENALTY_MIN_STEPS calls or more, with one loss
    function call per backward (`objective_calls`: with two or more, a distillation's weighted
    KL plus cross-entropy, a GAN's or a multi-task sum, the share says how the losses were weighted,
    not that a penalty was added), and the training loss never blew up (a penalty pulls weights to
    zero; it does not make the loss rise tenfold or turn NaN, found by review). None otherwise."""
    shares = [view.fact("loss", k) for k in ("objective_share", "objective_share_start")]
    shares = [float(v) for v in shares if isinstance(v, (int, float)) and v >= 0]
    steps, calls = view.fact("loss", "objective_steps"), view.fact("loss", "objective_calls")
    if not shares or not isinstance(steps, int) or steps < PENALTY_MIN_STEPS or calls != 1:
        return None
    if min(shares) > PENALTY_DOMINATES:
        return None
    b, nf = blowup(view), view.nonfinite(TRAIN_LOSS)
    if (b is not None and b.detected) or (nf is not None and nf.first_index is not None):
        return None
    return min(shares)


def penalty_reading(view: RunView) -> tuple[str, str, Evidence] | None:
    """A run that learned nothing (`learned_nothing`) while terms added to the loss by hand made up
    most of what the optimizer minimised (`penalty_share`): the summary, the recommendation and the
    evidence of `too_much_regularization`; None otherwise."""
    share = penalty_share(view)
    if share is None or not learned_nothing(view):
        return None
    fn = view.fact("loss", "loss_function") or "the loss function"
    summary = (
        f"nothing was learned while {fn} made up only {share:.0%} of the loss backpropagated: terms added to it "
        f"by hand (a penalty) were {1 - share:.0%} of what the optimizer minimised"
    )
    recommendation = (
        f"The loss the optimizer minimised was {1 - share:.0%} terms added by hand and only {share:.0%} {fn}, and "
        "the model learned nothing: the penalty pulls every weight to zero faster than the data can move it. Scale "
        "it down (a penalty's coefficient is divided by the training-set size, not the batch size: lambda / n * "
        "sum|w|), or use the optimizer's weight_decay (AdamW), and check that the data loss then falls."
    )
    return summary, recommendation, Evidence("penalty_share", None, {"loss_function_share": share})


def target_std(t: dict) -> float:
    """The standard deviation of the recorder's target statistics: its stable pooled variance `var`,
    else (a run recorded before it kept one) from its running mean and mean square."""
    var = t.get("var")
    if isinstance(var, (int, float)) and not isinstance(var, bool):
        return math.sqrt(max(float(var), 0.0))
    return math.sqrt(max(t["sqmean"] - t["mean"] ** 2, 0.0))


def targets_rms(view: RunView) -> float | None:
    """The root mean square of a regression's targets (the recorder's statistics of an element-wise
    loss's targets): their typical size, mean and spread together. None without them."""
    t = view.fact("loss", "targets")
    if not isinstance(t, dict) or not isinstance(t.get("mean"), (int, float)):
        return None
    value = math.hypot(target_std({"sqmean": 0.0, **t}), float(t["mean"]))
    return value if math.isfinite(value) else None


#: the element-wise regression losses the recorder watches (it keeps their targets' statistics)
REGRESSION_LOSSES = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
#: losses never negative on any input (the regression ones), so a negative training loss beside one
#: comes from other terms added to it (an actor-critic's policy-gradient term), never from its input
ALWAYS_NON_NEGATIVE = REGRESSION_LOSSES
#: a loss below this (a float32 rounding's worth under zero) is negative
BELOW_ZERO = -1e-4


def fell_below_floor(view: RunView, min_points: int = 8) -> float | None:
    """The training loss's lowest point (`min_points` finite points or more) when it went below zero beside a
    loss function the recorder saw that is negative only on the wrong input (any it names but
    `ALWAYS_NON_NEGATIVE`), else None: `loss_input_mismatch`'s reading from the curve. A loss falling without
    bound swings and "blows up" by itself, whatever the rate."""
    fn, c = view.fact("loss", "loss_function"), view.finite_curve(TRAIN_LOSS, min_points)
    if fn not in schema.LOSS_FUNCTIONS or fn in ALWAYS_NON_NEGATIVE or c is None:
        return None
    low = float(np.min(c.values))
    return low if low < BELOW_ZERO else None


def lr_high_follows(view: RunView, rms_high: float, only_rate: bool) -> tuple[str, ...]:
    """What a `learning_rate_too_high` finding follows on this run: `inputs_not_normalized` when the
    largest input feature is at `rms_high` or more (its steps are that feature's doing),
    `targets_not_normalized` when the regression targets are (an MSE's gradient scales with the targets:
    at -2,700 the first step moves the weights by their own size at lr 0.01), the
    bugs that stop learning when the rate is only a suspect (`only_rate`),
    `too_much_regularization` when a penalty added by hand outweighs the loss (`penalty_share`): its
    gradient, not the rate, drives the steps read as too large, and `initial_loss_mismatch` when the
    first loss was already far out of scale before any update (`broken_at_init`), and `loss_input_mismatch`
    when the loss fell below a floor it has on valid input (`fell_below_floor`)."""
    return (
        (("inputs_not_normalized",) if (largest_feature_rms(view) or 0.0) >= rms_high else ())
        + (("loss_input_mismatch",) if fell_below_floor(view) is not None else ())
        + (("targets_not_normalized",) if (targets_rms(view) or 0.0) >= rms_high else ())
        + (STUCK_BUGS if only_rate else ())
        + (("too_much_regularization",) if penalty_share(view) is not None else ())
        + (("initial_loss_mismatch",) if broken_at_init(view) else ())
    )


#: a first loss this many times ln C is the blow-up's own scale (`stats.detect_blowup`'s 10x) reached
#: before any update
BROKEN_AT_INIT = 10.0


def broken_at_init(view: RunView) -> bool:
    """The recorder's first training loss, taken before any update, was already BROKEN_AT_INIT x ln C
    or more: the network's outputs were out of scale at initialisation (a residual stack without
    normalisation doubling its activations block by block), so a blow-up that follows is the init's
    before it is the rate's."""
    first, n = view.fact("loss", "first_loss"), view.n_classes()
    if not isinstance(first, (int, float)) or not math.isfinite(first) or not n or n[0] < 2:
        return False
    return first >= BROKEN_AT_INIT * math.log(n[0])


def not_in_optimizer_reading(view: RunView, named: int) -> tuple[str, str, dict] | None:
    """`frozen_parameters`' reading of trainable parameters no optimizer group holds: layers built inside the
    model's `forward` on every call (`model.outside_modules`, `rebuilt`), else layers kept in a
    plain Python list, tuple or dict whose parameters got a gradient (`model.unregistered_modules`:
    never registered, so `model.parameters()` never had them), else tensors left out of the optimizer
    (`model.trainable_not_in_optimizer`). (summary, recommendation, evidence values), or None."""
    lists, missing = view.fact("model", "unregistered_modules"), view.fact("model", "trainable_not_in_optimizer")

    def listed(items: list) -> str:
        return ", ".join(map(str, items[:named])) + (" ..." if len(items) > named else "")

    built = [m for m in view.fact("model", "outside_modules") or [] if isinstance(m, dict) and m.get("rebuilt")]
    if built:  # layers built inside the model's forward on every call: new random weights each time
        names = listed([f"{m.get('module')} ({m.get('parameters', 0):,} parameters)" for m in built])
        return (
            f"{len(built)} layer(s) with trainable weights are built inside `forward` on every call, so no optimizer "
            f"holds them: {names}",
            f"{names}: built inside `forward` on every call, so each call makes a new layer with new random weights "
            "and no optimizer ever updates them. Create it once in `__init__` (`self.out = nn.Linear(...)`), use it in "
            "`forward`, and build the optimizer from `model.parameters()` after the model is complete.",
            {"outside_modules": built},
        )
    if lists:
        names = listed(lists)
        return (
            f"{len(lists)} layer(s) kept in a plain Python list or dict ran in training but are not registered, "
            f"so no optimizer updates them: {names}",
            f"{names} are kept in a plain Python list (or dict), so they are not registered: `model.parameters()` "
            "never yields them, the optimizer never updates them, and they keep their random initial weights (nor "
            "are they saved or moved with `.to(device)`). Hold them in `nn.ModuleList` (or `nn.ModuleDict`); if "
            "they are meant to stay fixed (a teacher, a perceptual network), call `.requires_grad_(False)` on them.",
            {"unregistered_modules": lists},
        )
    if not missing:
        return None
    names = listed(missing)
    return (
        f"{len(missing)} trainable parameter tensors are in no optimizer group: {names}",
        f"These parameters require gradients but no optimizer updates them: {names}. Build the optimizer after the "
        "model is complete, from `model.parameters()` (or list every sub-module you train).",
        {"not_in_optimizer": missing},
    )


#: what `frozen_share` reads from the recorder
FROZEN_READS = (
    *(("model", "parameters"), ("model", "frozen_parameters"), ("model", "frozen_tensors")),
    *(("model", "frozen_largest"), ("model", "requires_grad_false")),
)


def frozen_share(view: RunView) -> tuple[float, int, str] | None:
    """The share of the model's values frozen (`requires_grad=False`) when the recorder attached
    it, their count, and the largest frozen tensors by name ("item.weight", or "a, b, ... (7
    tensors)"). None without the fact or with nothing frozen."""
    total, frozen = view.fact("model", "parameters"), view.fact("model", "frozen_parameters")
    largest = view.fact("model", "frozen_largest")
    if not (isinstance(total, int) and isinstance(frozen, int) and total > 0 and frozen > 0):
        return None
    names = [str(e[0]) for e in largest if isinstance(e, list) and e] if isinstance(largest, list) else []
    n_tensors = view.fact("model", "frozen_tensors")  # (requires_grad_false lists 20 names at most)
    if not isinstance(n_tensors, int):
        n_tensors = len(view.fact("model", "requires_grad_false") or names)
    text = ", ".join(names[:3]) + (f", ... ({n_tensors} tensors)" if n_tensors > 3 else "")
    return frozen / total, frozen, text or "frozen tensors"


def data_in_optimizer(opt: dict, outside: dict | None, has_module: bool) -> tuple[str, str, dict] | None:
    """`frozen_parameters`' first bug, from the `learning` facts: the optimizer holds tensors the
    model is fed, or a hand-written model's trainable tensors ran outside it. (what, the model as
    the text names it, the evidence's values); None when neither."""
    inputs = bool(opt.get("inputs_are_parameters"))
    outside_trainable = isinstance(outside, dict) and (outside.get("trainable") or 0) > 0 and not has_module
    if not inputs and not outside_trainable:
        return None
    about = f" ({outside.get('class')}, {outside.get('trainable')} trainable values)" if outside else ""
    what = (
        "the optimizer was handed tensors the model is fed (the data), not the model's parameters"
        if inputs
        else "none of the model's parameters is in the optimizer"
    )
    values = {"inputs_are_parameters": inputs, "model_outside_optimizer": outside}
    return what, f"the model{about} ", values | {"optimizer_parameters": opt.get("parameters")}


def nothing_learns_fix(opt: dict, n: int) -> str:
    """`frozen_parameters`' advice when none of the optimizer's `n` tensors learns (`learning.optimizer`
    facts `opt`): every one frozen, or the loss computed from other tensors than those it holds."""
    frozen = opt.get("requires_grad_false") or 0
    if frozen >= n:
        fix = (
            f"All {n} parameter tensors have `requires_grad=False`, so no gradient reaches any of them (a "
            '`loss.requires_grad = True` written to silence "element 0 of tensors does not require grad" '
            "hides exactly this). Unfreeze what should train: freeze the backbone first, then add the new "
            "layers (or set `requires_grad=True` on them), and remove `loss.requires_grad = True`."
        )
    else:
        fix = (
            f"None of the optimizer's {n} parameter tensors received a gradient or changed on "
            f"{opt.get('sampled_steps')} sampled steps: the loss is not computed from the tensors the "
            "optimizer holds (rebuilt, detached or copied after the optimizer was made). Compute the loss "
            "from the same leaf tensors you give the optimizer."
        )
    return fix


def stuck_words(view: RunView, sk: stats.Stuck) -> str:
    """How to say where a stuck loss sits (at ln k, exactly constant, no better than chance, or
    no better than predicting the targets' mean)."""
    if sk.variance is not None:
        return (
            f"no better than predicting the targets' mean (around {fmt_num(sk.level)}, "
            f"{sk.level / sk.variance:.0%} of their variance {fmt_num(sk.variance)}: the MSE of their mean)"
        )
    if sk.r2 is not None:
        return (
            f"no better than predicting the targets' mean (around {fmt_num(sk.level)}, with the validation R² "
            f"at most {fmt_num(sk.r2)} over the last half of the run: 0 is the mean's)"
        )
    guess = "" if sk.known_classes else ", the level a classifier's loss starts at"
    if sk.chance_k is not None:
        return (
            f"at chance (ln {sk.chance_k} = {fmt_num(math.log(sk.chance_k))}: the loss of a uniform guess over "
            f"{sk.chance_k} classes{guess})"
        )
    if sk.constant:
        return f"exactly constant at {fmt_num(sk.level)}"
    k = class_count(view) or 2
    return f"no better than chance (around {fmt_num(sk.level)}, never clearly below ln {k} = {fmt_num(math.log(k))}{guess})"


def stuck_checks(sk: stats.Stuck) -> str:
    """What to check on a run that learned nothing at all (`Plateau`'s stuck finding): the
    optimiser's parameters, their gradients, the loss's input (a regression's shapes, a
    classifier's logits), an early explosion."""
    loss_input = (
        "that predictions and targets have the same shape (no `(N,)` against `(N, 1)`: the loss broadcasts them)"
        if sk.variance is not None or sk.r2 is not None
        else "that the loss gets raw logits (no softmax before `CrossEntropyLoss`, no `log_softmax` over one unit)"
    )
    return (
        "Check that the optimiser holds the model's parameters (`torch.optim.X(model.parameters())`), that every "
        "parameter gets a gradient (no `.detach()`, `.item()` or `torch.tensor(...)` rebuilding it, no "
        f"`requires_grad=False` left on), {loss_input}, and that the loss did not explode in the first steps."
    )


def start_level(view: RunView, role: str = TRAIN_LOSS) -> float | None:
    """The curve's starting level for measuring progress: before an early explosion when there
    was one (not the explosion's peak), else the block-median start (`stats.Levels.start`)."""
    b = blowup(view, role)
    if b is not None and b.detected and math.isfinite(b.start):
        return b.start
    lv = view.levels(role)
    return lv.start if lv is not None else None


def early_update_ratios(view: RunView) -> dict[str, float]:
    """Per layer, the first sampled update/weight ratio ||dW||/||W|| (the run's first steps: an
    explosion that killed the units shows there, then the ratios collapse to ~0). Leading zeros
    of a layer that moves later are skipped (a warm-up from a learning rate of 0 makes the very
    first ratio exactly 0, which says nothing); a layer that never moves counts as 0."""
    prefix = schema.layer_prefix(schema.LAYER_UPDATE_RATIO)
    out = {}
    for key, c in view.extra_curves.items():
        if key.startswith(prefix) and c.finite.any():
            values = c.values[c.finite]
            moved = values[values > 0]
            out[key[len(prefix) :]] = float(moved[0] if len(moved) else values[0])
    return out


def exploded(view: RunView) -> bool:
    """The training loss blew up early (see `blowup`)."""
    b = blowup(view)
    return b is not None and b.detected


def stuck_reading(view: RunView) -> tuple[stats.Stuck | None, str | None]:
    """A loss that ended stuck (exactly constant, at ln C, or no better than chance), and how to
    say so. Per-batch training losses dip below chance by noise alone: the validation loss (on the
    whole validation set) says as well whether the run learned anything, unless the training loss
    fell a long way (then a validation loss above chance is overfitting, not a destroyed run),
    measured from before the first steps too (`pre_step_start`: a fall from an early jump's peak is
    no learning)."""
    lv_train, start = view.levels(TRAIN_LOSS), min(start_level(view) or math.inf, pre_step_start(view) or math.inf)
    train_learned = (
        lv_train is not None
        and math.isfinite(start)
        and start > 0
        and (start - lv_train.end) / start >= PLATEAU_MAX_IMPROVEMENT
    )
    readings = (stuck(view),) if train_learned else (stuck(view), stuck(view, VAL_LOSS))
    st = next((s for s in readings if s is not None and (s.stuck or s.no_better_than_chance)), None)
    if st is None:
        return None, None
    at = (
        f"at chance, ln {st.chance_k} = {fmt_num(st.level)}"
        if st.chance_k is not None
        else f"exactly constant at {fmt_num(st.level)}"
        if st.constant
        else f"no better than chance (around {fmt_num(st.level)})"
    )
    return st, f"the loss ended stuck {at}"


def recorded_step_size(
    view: RunView, ratio_high: float, collapse: float, destroyed: bool = False
) -> tuple[str, Evidence] | None:
    """The recorder's update/weight ratios, when they say the steps were far too large: a median
    above `ratio_high`, or first steps above it followed by updates that collapsed by `collapse`
    (units destroyed). On a run seen `destroyed` (stuck, or a ReLU layer dead: `destroyed_signs`)
    first steps of UPDATE_RATIO_LARGE (10x the usual) are enough before such a collapse: the corpus's
    CNN under SGD at lr 1 moved its weights 8.5% on the first step, then 1e-7, its ReLUs dead and its
    loss at chance. (A healthy run's updates shrink by that much only once its loss reaches ~0, which
    is no destroyed run.) Only for an optimiser whose steps scale with the gradient (SGD, with or without
    momentum): Adam's first steps are ~1e-2 at its usual 1e-3 (`USUAL_LR_TOP`), and its updates collapse
    with the gradient of units that died for another reason. Nothing on L-BFGS, whose steps come from
    its line search, not the rate."""
    if view.lbfgs():
        return None
    ratios = view.update_ratios()
    if not ratios:
        return None
    early = early_update_ratios(view)
    early_med = float(np.median(list(early.values()))) if early else 0.0
    med = float(np.median(list(ratios.values())))
    sgd_like = not adaptive(view)
    first_high = UPDATE_RATIO_LARGE if destroyed and sgd_like else ratio_high
    if med <= ratio_high and early_med > first_high and med < early_med * collapse:
        sign = (
            f"the first measured steps changed the weights by {early_med:.0%} of their size "
            f"(median over layers; healthy is ~0.1%), later ones by {med:.1e}"
        )
        return sign, Evidence("early_update_ratio", None, {"first": early_med, "later": med, "per_layer": early})
    if med > ratio_high:
        sign = (
            f"each step changed the weights by {med:.0%} of their size (median update/weight ratio; healthy is ~0.1%)"
        )
        return sign, Evidence("update_ratio", None, {"median": med, "per_layer": ratios})
    return None


def nonfinite_reading(view: RunView) -> tuple[str, Evidence] | None:
    """A training loss that turned NaN/Inf the way too large steps make it: after growing (see
    `growth_before_nonfinite`), or within the first few points, unless the inputs themselves hold
    NaN (then an early NaN loss says nothing about the learning rate) or the recorder's training loss
    was already NaN/Inf at step 0, before any update (a CTC loss given too few frames for its labels,
    a log of 0 in the loss)."""
    nf = view.nonfinite(TRAIN_LOSS)
    curve = view.curve(TRAIN_LOSS)
    if nf is None or nf.first_index is None or curve is None:
        return None
    before = finite_before(curve, nf.first_index)
    growth = growth_before_nonfinite(before)
    if growth is not None:
        ratio = growth[1] / growth[0]
        return (
            f"the loss grew {fmt_factor(ratio)} before turning non-finite",
            Evidence("growth_before_nonfinite", curve.key, {"ratio": ratio}),
        )
    if nf.first_index == 0 and curve.key == schema.stored_key(schema.TRAIN_LOSS) and curve.steps[0] == 0:
        return None  # non-finite at the recorder's step 0, before any update: no learning rate made it
    if len(before) < 3 and not view.fact("inputs", "train", "nonfinite_share"):
        return (
            "the loss turned non-finite within the first few steps",
            Evidence("early_nonfinite", curve.key, {"first_index": nf.first_index}),
        )
    return None


def blowup_reading(view: RunView) -> tuple[str, Evidence, bool] | None:
    """An early blow-up of the training loss (`stats.detect_blowup`), how to say it, and whether
    the run recovered to well below where it started. A NaN with no growth before it is the
    NaN-input or bad-operation picture, not a blow-up (see `nonfinite_reading`)."""
    b = blowup(view)
    curve = view.curve(TRAIN_LOSS)
    if b is None or not b.detected or curve is None:
        return None
    grew = (
        not b.nonfinite
        or b.index is None
        or any(np.isfinite(v) and v >= stats.BLOWUP_GROWTH * b.start for v in curve.values[: b.index])
    )
    if not grew:
        return None
    what = "turned non-finite" if b.nonfinite else f"reached {fmt_num(b.peak)} ({fmt_factor(b.growth)} its start)"
    sign = f"the loss blew up at step {fmt_step(b.x)}: it started at {fmt_num(b.start)} and {what}"
    values = {"step": b.x, "start": b.start, "peak": b.peak, "growth": b.growth, "end": b.end}
    recovered = b.end is not None and b.start > 0 and (b.start - b.end) / b.start >= PLATEAU_MAX_IMPROVEMENT
    return sign, Evidence("early_blowup", curve.key, values), recovered


def names_cut(facts: dict, keep: int = 5) -> dict:
    """Recorder facts for evidence, each list (of parameter names, ...) cut to its first few."""
    return {k: (v[:keep] if isinstance(v, list) else v) for k, v in facts.items()}


@dataclass(frozen=True)
class LrDecay:
    """Where a logged learning-rate curve first fell to LR_DECAYED of its peak or less."""

    key: str  # the learning-rate curve's metric key
    peak: float
    step: float  # where it fell to LR_DECAYED x peak (between two points: see `lr_decay`)
    share: float  # that step as a share of the training curve's span
    logged: float  # the first logged point at or below LR_DECAYED x peak (a step schedule changes there)
    stays: bool = False  # every logged rate from there on is at LR_DECAYED x peak or less (no restart)


#: what `lr_points` reads from the recorder besides its learning-rate curve
LR_END_READS = (("steps",), ("optimizer", schema.PARAM_OPTIMIZER_LR))


def lr_points(view: RunView) -> Curve | None:
    """The learning-rate curve (at least 3 points), with the recorder's last word on it: its
    diagnostics hold the optimizer's rate when they were written (at the end of training) and
    the optimizer step then, a point on the recorder's `nnaudit/lr` axis that a sparse curve
    (logged at sampled steps, or on a 2x move) may lack."""
    lr = view.finite_curve(LEARNING_RATE, min_points=2)
    if lr is None:
        return None
    steps, rate = view.fact("steps"), view.fact("optimizer", schema.PARAM_OPTIMIZER_LR)
    if (
        lr.key == schema.stored_key(schema.LR)
        and isinstance(steps, int)
        and isinstance(rate, (int, float))
        and steps > lr.steps[-1]
    ):
        if math.isfinite(rate) and rate >= 0:
            lr = Curve(lr.key, np.r_[lr.steps, float(steps)], np.r_[lr.values, float(rate)])
    return lr if len(lr.values) >= 3 else None


def lr_decay(view: RunView) -> LrDecay | None:
    """The logged learning rate's decay to LR_DECAYED of its peak (`LrDecay`), None when it never
    got there or there is no learning-rate or training-loss curve to place it on. Between the last
    point above LR_DECAYED x peak and the first at or below it, the crossing is placed where a
    geometric decay between the two (exponential, or steps of one factor) crosses it: a curve
    logged sparsely (every epoch, at sampled steps) does not move a fast decay to its next point."""
    lr, loss = lr_points(view), view.finite_curve(TRAIN_LOSS)
    if lr is None or loss is None or loss.steps[-1] <= loss.steps[0]:
        return None
    i_peak = int(np.argmax(lr.values))
    peak = float(lr.values[i_peak])
    if peak <= 0:
        return None
    below = np.nonzero(lr.values[i_peak:] <= LR_DECAYED * peak)[0]
    if not len(below):
        return None
    j = i_peak + int(below[0])
    x = float(lr.steps[j])
    if j > i_peak:  # between the last point above and this one: geometric (linear when it reached 0)
        (x0, x1), (v0, v1), target = lr.steps[j - 1 : j + 1], lr.values[j - 1 : j + 1], LR_DECAYED * peak
        at = math.log(v0 / target) / math.log(v0 / v1) if v1 > 0 else (v0 - target) / v0
        x = float(x0 + (x1 - x0) * at)
    share = (x - loss.steps[0]) / (loss.steps[-1] - loss.steps[0])
    return LrDecay(lr.key, peak, x, share, float(lr.steps[j]), bool(np.all(lr.values[j:] <= LR_DECAYED * peak)))


#: a rate that falls this many times over within LR_COLLAPSE_SPAN of the run was stepped in a loop, not scheduled
LR_COLLAPSE = 1000.0
LR_COLLAPSE_SPAN = 0.01


def lr_collapsed(view: RunView, decay: LrDecay) -> bool:
    """The logged rate fell LR_COLLAPSE x or more, in 2 or more logged falls within LR_COLLAPSE_SPAN of the run
    from the last logged point before its decay, and never came back (`LrDecay.stays`): a scheduler stepped inside
    a loop meant once per epoch (StepLR's 0.1 applied at every step from there: 5e-4 to 5e-8 in 4 steps).
    No schedule does this: a step decay per epoch needs 3 epochs for 1000x, an exponential per batch hundreds
    of steps, and a plateau schedule a patience each time. A rate that reaches exactly 0 is not one."""
    lr, loss = lr_points(view), view.finite_curve(TRAIN_LOSS)
    if lr is None or loss is None or not decay.stays:
        return False
    before = lr.values[lr.steps < decay.logged]
    if not len(before) or before[-1] <= 0:
        return False
    span = LR_COLLAPSE_SPAN * float(loss.steps[-1] - loss.steps[0])
    soon = lr.values[(lr.steps >= decay.logged) & (lr.steps <= decay.logged + span)]
    falls = int(np.sum(np.diff(np.r_[before[-1], soon]) < 0))
    # one cut is a schedule's own (MultiStepLR with gamma 0.001, a plateau schedule logged per epoch: review); a
    # rate that reaches exactly 0 is a linear schedule ending (the `GONE_AT_ONCE` reading); 0.999: 0.1**3 in floats
    return falls >= 2 and 0 < float(np.min(soon)) and float(before[-1]) >= 0.999 * LR_COLLAPSE * float(np.min(soon))


def lr_decay_advice(collapsed: bool, falling: bool, level: float) -> str:
    """`lr_decay_too_fast`'s advice after "the schedule shrinks the rate 10x by step k, x% into ", by what the
    rate did: collapsed in a loop (`lr_collapsed`), cut while the loss still fell, or gone before it learned."""
    if collapsed:
        return (
            f"the run, and {fmt_num(LR_COLLAPSE)}x or more within {LR_COLLAPSE_SPAN:.0%} of it, never to come back: the "
            "scheduler is stepped many times in a row (`scheduler.step()` inside the batch loop where it was meant "
            "once per epoch, or once per sample). Step it where its step_size counts."
        )
    if falling:
        return (
            f"the run, and the loss stops improving there (flat at {fmt_num(level)}) although it was still falling: "
            "decay later or more gently (e.g. cosine or step decay over the whole run, a larger gamma / step_size), "
            "or train the remaining epochs at a higher rate."
        )
    return (
        "the run, and it never comes back: the model never had a rate to learn with. A linear or one-cycle "
        "schedule given the number of epochs as its total steps does this: give it the optimizer steps "
        "(epochs x batches per epoch), and step it once per batch."
    )


def val_on_train_axis(view: RunView) -> tuple[Curve, np.ndarray] | None:
    """The validation loss (2 points or more) and where its evaluations sit on the training loss's
    step axis (that of the learning rate too): its own steps when both count the same unit, else
    its timestamps placed among the training loss's (a `val_loss` logged with step = epoch while
    the training loss counts optimizer steps). None when it cannot be placed."""
    tr, va = view.finite_curve(TRAIN_LOSS), view.finite_curve(VAL_LOSS, min_points=2)
    if tr is None or va is None:
        return None
    tx, vx = _shared_axis(tr, va)
    if tx is tr.steps:
        return va, va.steps
    return va, np.interp(vx, tr.timestamps, tr.steps)


def train_level_when_first_validated(view: RunView) -> float | None:
    """Where the training loss stood at the first evaluation (the median of its last 5 points up to there, on
    its own step axis: `val_on_train_axis`), when 3 or more training points came before it and the evaluation
    sits before the training loss's last step (curves logged after training, the training loss's first, have
    every evaluation's timestamp after it: they are all placed at its end); None otherwise, or when that level
    is not positive. A loop evaluating after its first epoch (the recorder's per-step training loss, a
    validation loss an epoch) first evaluates a model that has already learned."""
    placed, tr = val_on_train_axis(view), view.finite_curve(TRAIN_LOSS)
    if placed is None or tr is None or placed[1][0] >= tr.steps[-1]:
        return None
    before = tr.values[tr.steps <= placed[1][0]]
    at = float(np.median(before[-5:])) if len(before) >= 3 else None
    return at if at is not None and at > 0 else None


def learned_before_validated(view: RunView, share: float = 0.2, most: float = 0.8) -> bool:
    """The training loss had fallen `share` of its start (`start_level`; `learning_rate_too_low`'s slow run's
    whole gain) or more by the first evaluation (`train_level_when_first_validated`), and that was `most` of
    its whole fall (to `RunView.levels`' end): the validation curve begins after nearly all the learning, so
    its own small progress says nothing of a slow rate (a super-resolution CNN near its floor after one epoch;
    not a slow rate whose first epoch fell 20% and whose loss still falls steadily after)."""
    at, start, lv = train_level_when_first_validated(view), start_level(view), view.levels(TRAIN_LOSS)
    if at is None or start is None or lv is None or start <= 0:
        return False
    return (start - at) / start >= share and start - at >= most * (start - lv.end)


def val_fell_at_drop(view: RunView, x_gone: float, band: float) -> Evidence | None:
    """`lr_decay_too_fast`'s reading of the validation loss at a drop of the rate: its last evaluation
    at or before `x_gone` (the first logged rate at a tenth of the peak or less: evaluations up to
    there trained at the rates logged before it) fell from the one before it by more than `band` and
    by more than the loss moved over all its evaluations after (3 or more) together: measured on the
    whole validation set, one evaluation's fall is no minibatch noise. None otherwise, or when the
    evaluations cannot be placed on the rate's steps (`val_on_train_axis`)."""
    placed = val_on_train_axis(view)
    if placed is None:
        return None
    (va, x), at = placed, placed[1] <= x_gone
    pre, post = va.values[at], va.values[~at]
    if len(pre) < 2 or len(post) < 3:
        return None
    fell, moved = float(pre[-2] - pre[-1]), float(np.max(np.abs(post - pre[-1])))
    if fell <= band or fell <= moved:
        return None
    values = {"fell": fell, "band": band, "moved_after": moved, "at_step": float(x[at][-1])}
    return Evidence("val_fell_before_drop", va.key, values)


def val_stalled_before(view: RunView, x_gone: float) -> bool:
    """`lr_decay_too_fast`'s reading of a decay that answered a stall (ReduceLROnPlateau, a StepLR
    stepped when the validation accuracy stops improving, as the torchtext tutorial does): the last
    evaluation at or before `x_gone` set no new best, its loss no lower than the best of the 2 or more
    before it; not where 6 or more evaluations before the drop still fall significantly (Mann-Kendall):
    one noisy evaluation a little above the best is no stall (found by review: validation on one
    random batch every 8 steps). The stall came first, the drop second: the schedule did not stop the progress. False
    when the evaluations cannot be placed on the rate's steps (`val_on_train_axis`)."""
    placed = val_on_train_axis(view)
    if placed is None:
        return False
    at = placed[1] <= x_gone
    pre = placed[0].values[at]
    if len(pre) >= STALL_TREND_EVALS and stats.mann_kendall(placed[1][at], pre).direction < 0:
        return False  # many noisy evaluations still falling significantly: one above the best is noise
    return len(pre) >= 3 and float(pre[-1]) >= float(np.min(pre[:-1]))


#: evaluations before a drop from which their trend, not the last one, says whether they had stalled
STALL_TREND_EVALS = 6


def val_frozen_after(x: np.ndarray, y: np.ndarray, val_fell: Evidence) -> Evidence | None:
    """The validation loss that fell at the drop (`val_fell_at_drop`) froze after it: every later
    evaluation within its `band` of the one at the drop, while the training loss after the drop
    (`x`, `y`) shows no significant fall (Mann-Kendall). The flat test's stand-in where per-step
    minibatch noise hides the training loss's flatness. None otherwise."""
    v, trend = val_fell.values, stats.mann_kendall(x, y)
    if v["moved_after"] > v["band"] or trend.direction < 0:
        return None
    return Evidence("val_frozen_after_drop", val_fell.curve, {**v, "train_p": trend.p_value})


# --- curve-only readings of "nothing was learned" (plateau's, on runs whose loss has no stall to test)

#: an accuracy up by more than this (as a fraction) learned something
ACCURACY_ROSE = 0.01
#: an accuracy at or above this (as a fraction) is right on nearly every example
NEAR_PERFECT_ACCURACY = 0.99
#: how close (as a share) a loss floor must sit to ln(1 + (C-1)/e), the least CrossEntropyLoss can
#: reach on softmax outputs, to be read as that floor
FLOOR_TOLERANCE = 0.15
#: how close to a whole number the class count a floor implies must be (without a known count)
IMPLIED_CLASSES_TOLERANCE = 0.1
#: params that say the loss is smoothed on purpose (its floor is then by design)
LABEL_SMOOTHING_PARAMS = ("label_smoothing", "label_smoothing_factor", "smoothing")


@dataclass(frozen=True)
class NoLearning:
    """A curve-only reading that the run learned nothing (or is held at a floor), for the plateau."""

    role: str  # the loss curve it is read on
    severity: str  # "failed": nothing learned; "warning": learned, then held at a floor
    summary: str
    evidence: Evidence


def accuracy_scale(view: RunView, role: str) -> float:
    """100 for an accuracy logged in percent, else 1."""
    c = view.finite_curve(role, min_points=1)
    return 100.0 if c is not None and float(np.max(c.values)) > 1.5 else 1.0


def train_never_below_chance(view: RunView) -> NoLearning | None:
    """With a known class count C (recorder, param, or a Hugging Face label map), the training
    loss's second half (8+ points) never went below ln C, nor the validation loss's (when
    logged): on the very batches it trains on, the model never beat a uniform guess. Not when
    the validation loss (else the training loss) still fell through its last half, as in
    `val_at_chance`: a model recovering from a bad start is learning."""
    n, tr = view.n_classes(), view.finite_curve(TRAIN_LOSS)
    sk = stuck(view) if n is not None and tr is not None else None
    if sk is None or not sk.no_better_than_chance:
        return None
    vsk = stuck(view, VAL_LOSS) if view.curve(VAL_LOSS) is not None else None
    if vsk is not None and not vsk.no_better_than_chance:
        return None
    c = view.finite_curve(VAL_LOSS, min_points=3) if vsk is not None else tr
    if c is not None and still_falling(c):
        return None
    chance = math.log(n[0])
    return NoLearning(
        TRAIN_LOSS,
        "failed",
        f"the training loss never got below chance over the second half of the run (lowest "
        f"{fmt_num(float(np.min(tr.values[len(tr.values) // 2 :])))}, ln {n[0]} = {fmt_num(chance)}, {n[1]})",
        Evidence("never_below_chance", tr.key, {"chance": chance, "n_classes": n[0], "level": sk.level}),
    )


#: a validation loss under this share of ln C is no untrained classifier's (a resumed or fine-tuned run)
UNTRAINED_SHARE = 0.8


def val_never_below_untrained(view: RunView) -> NoLearning | None:
    """The validation loss (8+ evaluations) never got below where the training loss started (the
    untrained model's loss, or lower: a first per-epoch point already averages some learning),
    and the validation accuracy never rose (no upward trend, up by 1 point or less): on held-out
    data the model never did better than before training. Both: a validation loss logged as a
    sum over batches also sits above the training loss, but its accuracy rises. Each start is
    read on the cautious side: the training loss's first point or its robust start, whichever is
    higher; the accuracy's, whichever is lower (a rise within the first few epochs counts)."""
    va, acc, tr, ac = view.finite_curve(VAL_LOSS), view.levels(VAL_ACC), view.curve(TRAIN_LOSS), view.curve(VAL_ACC)
    start, trend = start_level(view), view.trend(VAL_ACC)
    if va is None or acc is None or trend is None or start is None or tr is None or not tr.finite.any():
        return None
    start = max(start, float(tr.values[tr.finite][0]))
    acc_start = min(acc.start, float(ac.values[ac.finite][0]))
    best = float(np.min(va.values))
    gain = (acc.end - acc_start) / accuracy_scale(view, VAL_ACC)
    if start <= 0 or best < start or trend.direction > 0 or gain > ACCURACY_ROSE:
        return None
    # a run resumed from a trained model also starts low and stays flat: the level must be an
    # untrained classifier's (near ln C when C is known; else an accuracy under one half)
    k = class_count(view)
    if best < UNTRAINED_SHARE * math.log(k) if k else acc.end / accuracy_scale(view, VAL_ACC) >= 0.5:
        return None
    return NoLearning(
        VAL_LOSS,
        "failed",
        f"the validation loss never got below where the training loss started (best {fmt_num(best)}, "
        f"training start {fmt_num(start)}) and {ac.key} never rose ({fmt_num(acc_start)} -> {fmt_num(acc.end)})",
        Evidence("val_never_below_untrained", va.key, {"best_val": best, "train_start": start, "acc_gain": gain}),
    )


#: a one-sided binomial test at this level says a held-out accuracy is "clearly" above chance
ABOVE_CHANCE_ALPHA = 0.01
#: examples scored per evaluation when neither the recorder nor a param says: few evaluation sets are
#: smaller, and fewer examples only widen chance's spread (so the bar this sets is the cautious one)
ASSUMED_EVAL_EXAMPLES = 100
#: the evaluations at the end of the run whose median is the accuracy read (one evaluation is noisy)
ACCURACY_END_EVALS = 3
#: params naming the evaluation set's size
EVAL_SIZE_PARAMS = ("n_val", "val_size", "num_val_samples", "num_val_examples", "n_eval", "eval_size", "n_test")
#: what `accuracy_above_chance` reads from the recorder
ABOVE_CHANCE_READS = (("data_loader", "loaders"), *N_CLASSES_READS)


@dataclass(frozen=True)
class AboveChance:
    """A held-out accuracy that ends clearly above chance (`accuracy_above_chance`)."""

    key: str  # the accuracy curve
    accuracy: float  # the median of its last evaluations, as a share
    chance: float
    examples: int  # evaluation examples the test assumed
    p_value: float
    why: str  # where the chance level came from


def eval_set_size(view: RunView) -> tuple[int, str] | None:
    """Examples per evaluation: the smallest DataLoader the recorder saw iterated only outside
    training (the validation or test loader; the smallest is the cautious pick), else a param."""
    loaders = view.fact("data_loader", "loaders")
    sizes = [
        e["dataset_size"]
        for e in loaders or ()
        if isinstance(e, dict) and not e.get("training_iterations") and isinstance(e.get("dataset_size"), int)
    ]
    if any(n > 0 for n in sizes):
        return min(n for n in sizes if n > 0), "the recorder's evaluation DataLoader"
    p = view.param_float(*EVAL_SIZE_PARAMS)
    return (int(p[1]), f"param {p[0]}") if p is not None and p[1] >= 1 else None


def chance_accuracy(view: RunView) -> tuple[float, str]:
    """The accuracy of a model that learned nothing: 1/C for a known class count, else for the one
    the losses start at (`class_count`); without either, 1/2, the highest chance level of balanced
    classes (the cautious side: it holds back less). (Imbalanced labels raise chance to the
    commonest class's share; `class_imbalance` explains this cause away on such runs.)"""
    k = class_count(view)
    return (1.0 / k, f"1/{k}") if k else (0.5, "1/2, no class count known")


def accuracy_above_chance(view: RunView) -> AboveChance | None:
    """A logged validation (else test) accuracy whose last evaluations (median of the last
    ACCURACY_END_EVALS) sit clearly above chance (`chance_accuracy`): a one-sided binomial test at
    ABOVE_CHANCE_ALPHA with the evaluation set's size (`eval_set_size`, else ASSUMED_EVAL_EXAMPLES).
    A model memorising labels unrelated to its inputs stays at chance on held-out data (Zhang et al.
    2017), so such an accuracy says it learned something that carries over."""
    c = view.finite_curve(VAL_ACC, min_points=2)
    if c is None:
        return None
    acc = float(np.median(c.values[-ACCURACY_END_EVALS:])) / accuracy_scale(view, VAL_ACC)
    chance, why = chance_accuracy(view)
    size = eval_set_size(view)
    n = size[0] if size else ASSUMED_EVAL_EXAMPLES
    if not 0 <= acc <= 1 or acc <= chance:
        return None
    p = stats.binomial_tail(math.floor(acc * n + 1e-9), n, chance)  # P(X >= k), k rounded down
    return AboveChance(c.key, acc, chance, n, p, why) if p < ABOVE_CHANCE_ALPHA else None


def softmax_floor(level: float, k: int | None) -> bool:
    """Whether a loss floor is the least CrossEntropyLoss reaches on softmax outputs of a confident
    model, ln(1 + (k-1)/e): within FLOOR_TOLERANCE of it for a known class count k; without one, the
    class count the floor implies (1 + e (e^level - 1)) must be a whole number (within
    IMPLIED_CLASSES_TOLERANCE) of 2 or more."""
    if k:
        floor = math.log(1 + (k - 1) / math.e)
        return abs(level - floor) <= FLOOR_TOLERANCE * floor
    implied = 1 + math.e * math.expm1(level)
    return implied >= 2 - IMPLIED_CLASSES_TOLERANCE and abs(implied - round(implied)) <= IMPLIED_CLASSES_TOLERANCE


def floor_despite_accuracy(view: RunView) -> NoLearning | None:
    """A loss gone flat (`RunView.stall`) within FLOOR_TOLERANCE of ln(1 + (C-1)/e) while the
    accuracy on the same data ended at 99% or more: the floor CrossEntropyLoss reaches when fed
    probabilities (softmax before it) on a model right on nearly every example (`softmax_floor`);
    not when a param says the labels are smoothed on purpose."""
    smoothing = view.param_float(*LABEL_SMOOTHING_PARAMS)
    if smoothing is not None and smoothing[1] > 0:
        return None
    for acc_role, loss_role in ((VAL_ACC, VAL_LOSS), (TRAIN_ACC, TRAIN_LOSS)):
        acc, st = view.levels(acc_role), view.stall(loss_role)
        if acc is None or st is None or st.start_fraction is None:
            continue
        end_acc = acc.end / accuracy_scale(view, acc_role)
        if end_acc < NEAR_PERFECT_ACCURACY or not softmax_floor(st.level, class_count(view)):
            continue  # another floor (a penalty in the logged loss, label smoothing): not this one
        key = view.curve(loss_role).key
        return NoLearning(
            loss_role,
            "warning",
            f"{key} has been flat at {fmt_num(st.level)} since step {fmt_step(st.start_x)} although "
            f"{view.curve(acc_role).key} reached {end_acc:.1%}: right on nearly every example, the model gives the "
            f"right class only about {math.exp(-st.level):.0%} probability (geometric mean) and gets no surer",
            Evidence("floor_despite_accuracy", key, {"loss_floor": st.level, "accuracy": end_acc}),
        )
    return None


def no_learning_reading(view: RunView) -> NoLearning | None:
    """The first of the curve-only no-learning readings that holds (see each)."""
    for read in (train_never_below_chance, val_never_below_untrained, floor_despite_accuracy):
        found = read(view)
        if found is not None:
            return found
    return None


def no_learning_finding(rule: Rule, view: RunView) -> Finding | None:
    """The plateau's finding from a curve-only no-learning reading (`no_learning_reading`)."""
    nl = no_learning_reading(view)
    if nl is None:
        return None
    if nl.severity == "failed":
        advice = (
            "the model learned nothing, which is a bug or a run destroyed early, not a slow optimiser. Check that "
            "the optimiser holds the model's parameters and every parameter gets a gradient (no `.detach()`, "
            "`.item()` or `torch.tensor(...)` rebuilding it), that the loss gets the input it expects (raw "
            "logits, no softmax before `CrossEntropyLoss`), and that the loss did not blow up in the first steps "
            "(a learning rate far too high)."
        )
    else:
        advice = (
            "something caps the model's confidence: feed raw logits to the loss (no softmax before "
            "`CrossEntropyLoss`, no sigmoid before `BCEWithLogitsLoss`); label smoothing makes such a floor on "
            "purpose (log it as the param `label_smoothing` and this is not reported)."
        )
    return rule.finding(
        confidence="medium",
        severity=nl.severity,
        kind="outcome",
        score=1.0 if nl.severity == "failed" else 0.5,
        summary=nl.summary,
        recommendation=f"{nl.summary[0].upper()}{nl.summary[1:]}: {advice}",
        evidence=[nl.evidence],
    )


class PlateauReadings(Rule):
    """The plateau rule's frame: its own reading of a stalled loss (`stalled`) first, then, when
    that finds nothing, the curve-only readings of no learning (`no_learning_finding`). Listed after
    `insufficient_capacity` when the recorder saw linear layers stacked with no activation."""

    def evaluate(self, view: RunView) -> Finding | None:
        found = self.stalled(view) or no_learning_finding(self, view)
        if found is not None and linear_stacks(view):
            # the recorder saw why the model cannot fit (linear layers stacked into one linear map): the
            # stall follows from its capacity when that is found, not from a guess at the model's size
            found.follows = (*found.follows, "insufficient_capacity")
        return found

    def stalled(self, view: RunView) -> Finding | None:  # pragma: no cover - interface
        raise NotImplementedError


#: Prechelt's UP_s with s = 5: the validation loss rose at this many evaluations in a row
SUSTAINED_RISE = 5
#: a training loss this many times below the validation loss fits what the model does not generalise
MEMORISED_GAP = 10.0
#: the least generalisation loss (%) such a rise must reach: half the usual OVERFIT_GL (a creep of a
#: few % at the end of a converged run is noise around its best, not memorising)
MEMORISED_GL = OVERFIT_GL / 2


def memorised(view: RunView, of: stats.Overfit) -> bool:
    """Overfitting shown without a 10% rise yet: the validation loss rose at SUSTAINED_RISE
    evaluations in a row (Prechelt's UP_5), MEMORISED_GL % or more above its best, while it stood an order of magnitude above where the
    training loss ended (the model fits its training data and not the held-out data: a repeated
    batch, a tiny training set)."""
    tr, va = view.levels(TRAIN_LOSS), view.levels(VAL_LOSS)
    if of.up < SUSTAINED_RISE or of.gl < MEMORISED_GL or tr is None or va is None or tr.end <= 0:
        return False
    return va.end >= MEMORISED_GAP * tr.end


#: the least rise of the validation loss over its best, as a share of a classifier's chance loss ln C
#: (where an untrained classifier starts), that counts as overfitting. Prechelt's GL is relative to the
#: best, and a task solved to near-zero loss turns noise into a large GL (0.0008 -> 0.0013 nats is 62%).
#: A fifth of the plateau's FLAT_TOLERANCE band (a change under 5% of the start is "flat" there), so
#: well inside what the auditor calls no change; kept small for recall: with GL >= 10% it only bears on
#: runs whose best validation loss is under a tenth of ln C, and it is 0.014 nats for 4 classes, 0.069
#: for 1000 (with no class count, a run logging an accuracy is scaled by its first training loss, an
#: untrained classifier's). On the tune split every true overfit rises 20% of ln C or more. Not for a regression: its
#: first loss is set by the untrained model's outputs and the targets' units, not by the task (an MSE
#: from 1e4 whose best is 25 and that ends at 88 has overfit), so there the floor is not applied.
OVERFIT_MIN_RISE = 0.01


@dataclass(frozen=True)
class OverfitRise:
    """How far the validation loss ended above its best, against the least rise that counts."""

    rise: float  # final - best validation loss
    floor: float  # OVERFIT_MIN_RISE x the loss's starting level

    @property
    def negligible(self) -> bool:
        return self.rise < self.floor


def overfit_rise(view: RunView, of: stats.Overfit) -> OverfitRise | None:
    """The validation loss's rise over its best in the loss's own units, against OVERFIT_MIN_RISE of
    a classifier's chance loss ln C (or, with no class count, of where the training loss of a run that
    logs an accuracy started: an untrained classifier's); None on a regression (no scale)."""
    va, chance = view.finite_curve(VAL_LOSS, min_points=1), view.chance_loss()
    if chance is None and (TRAIN_ACC in view.curves or VAL_ACC in view.curves):
        chance = start_level(view)
    if va is None or chance is None or not math.isfinite(chance) or chance <= 0:
        return None
    rise = float(va.values[-1] - va.values[of.best_index])
    return OverfitRise(rise, OVERFIT_MIN_RISE * chance)


#: the evidence of `learning_rate_too_high` that is harm seen in the loss (it exploded, diverged,
#: turned NaN, was destroyed, or undid its learning): an outcome, not a set-up risk (the catalog's
#: kind for a finding on update ratios or a rate alone)
LR_HARM_TESTS = (
    "growth_before_nonfinite",
    "early_nonfinite",
    "early_blowup",
    "divergence",
    "stuck_loss",
    "large_steps_undone",
    "late_start",
)
#: a median update/weight ratio of at least this is 10x the healthy ~1e-3 (Karpathy's rule of thumb
#: for SGD-type steps): steps large enough to be a suspect of harm seen with them, never a sign
#: alone (the corpus's healthy SGD runs at 0.1-1 reach 1e-2..8e-2)
UPDATE_RATIO_LARGE = 1e-2
#: the top of each adaptive optimiser's usual learning rates (torch's defaults and common practice:
#: Adam-family 1e-4..1e-3, NAdam and Adamax default to 2e-3, RMSprop, Adagrad and LAMB run near 1e-2);
#: 10x that is steps far larger than usual (Adam's update ratio is lr / rms(w), which small-init
#: weights make 1e-2 or more at a usual 1e-3: a BERT, a CNN, an LSTM under Adam at 1e-3 all sit there,
#: so the rate itself is read). Adafactor sizes its steps relative to the weights: not read.
USUAL_LR_TOP = {
    "adam": 1e-3,
    "adamw": 1e-3,
    "radam": 1e-3,
    "nadam": 2e-3,
    "adamax": 2e-3,
    "rmsprop": 1e-2,
    "adagrad": 1e-2,
    "lamb": 1e-2,
}
#: a learning rate this many times the top of its optimiser's usual range takes steps far too large
LARGE_LR_FACTOR = 10.0
#: definite bugs that stop all learning whatever the rate (a loss fed probabilities, an output
#: squashed before the loss): a run stuck at chance with one of them and a rate 10x its usual top
#: lists `learning_rate_too_high` after the bug (the rate is then a suspect, the bug a finding)
STUCK_BUGS = ("loss_input_mismatch", "final_layer_activation", "too_much_regularization")


def large_steps(view: RunView) -> str | None:
    """Steps 10x their usual size, said in words, or None: an adaptive optimiser (`ADAPTIVE`) at
    LARGE_LR_FACTOR times the top of its usual rates (`USUAL_LR_TOP`) or more; another optimiser (SGD, with or without momentum) whose recorded
    median update/weight ratio (over the layers, each the median of the second half of the run)
    is UPDATE_RATIO_LARGE or more. None on L-BFGS (its line search sets the step) and without
    the rate or the recorder's ratios."""
    lr = adaptive_lr(view)
    if lr is not None:
        top = USUAL_LR_TOP.get((view.optimizer_name() or "").lower())
        if top is None or lr < LARGE_LR_FACTOR * top:
            return None
        return f"{view.optimizer_name()} at a learning rate of {fmt_num(lr)} (10x the top of its usual range, {fmt_num(top)})"
    ratios = list(view.update_ratios().values())
    med = float(np.median(ratios)) if ratios else 0.0
    if med < UPDATE_RATIO_LARGE or adaptive(view):
        return None
    return f"each step moved the weights by {med:.1%} of their size (10x the usual ~0.1%)"


#: a loss "meaningfully" lower than another: by 2% of its level, `labels_unrelated`'s line between a
#: validation loss that learned something and one that never did (its MAX_VAL_GAIN, MIN_GAP_OPENED)
MEANINGFUL_GAIN = 0.02


def fits_training_only(view: RunView) -> bool:
    """The training loss ended MEANINGFUL_GAIN or more below where the validation loss ended and below
    chance (ln C; ln C alone without a validation curve of enough points): the model fits its own training labels, so its steps work,
    while nothing carries over (labels unrelated to the inputs are memorised, never generalised:
    Zhang et al. 2017). A network that steps far too large destroyed fits nothing, its training set
    included: a constant output scores the same on both sets (chance, or the label prior's entropy).
    So a run stuck at chance that fits its training labels is no evidence of a rate too high."""
    tr, va, chance = view.levels(TRAIN_LOSS), view.levels(VAL_LOSS), view.chance_loss()
    ref = va.end if va is not None else chance
    if ref and chance and chance > 0:
        ref = min(ref, chance)  # a training loss still at chance fits nothing, however high validation ended
    return tr is not None and bool(ref) and ref > 0 and tr.end < (1 - MEANINGFUL_GAIN) * ref


def learned_something(view: RunView) -> bool:
    """The validation loss at its best got MEANINGFUL_GAIN below chance (ln C), or ln C is unknown:
    the model had a best point worth racing past (labels with no signal leave it at chance)."""
    chance, va = view.chance_loss(), view.levels(VAL_LOSS)
    return not chance or va is None or va.best < (1 - MEANINGFUL_GAIN) * chance


#: a median update/weight ratio of at most this is 10x under the healthy ~1e-3 (the mirror of UPDATE_RATIO_LARGE)
UPDATE_RATIO_SMALL = 1e-4


def small_steps(view: RunView) -> str | None:
    """Steps 10x under their usual size, said in words, or None: an adaptive optimiser (`ADAPTIVE`)
    at a tenth of the bottom of its usual rates or less (the range spans a decade under
    `USUAL_LR_TOP`: Adam 1e-5 or less; a decade lower again for a model fine-tuned from pretrained
    weights, `RunView.fine_tuned`, whose usual rates are 1e-5..5e-5); another optimiser whose recorded median update/weight
    ratio, over the second half and on the first measured step alike, is UPDATE_RATIO_SMALL or
    less (tiny steps from the first one: not a loss that reached its minimum, nor a decayed
    rate). None on L-BFGS and without the rate or the recorder's ratios. Never decisive alone."""
    if view.lbfgs():
        return None
    lr = adaptive_lr(view)
    if lr is not None:
        top = USUAL_LR_TOP.get((view.optimizer_name() or "").lower())
        # fine-tuning a pretrained model runs a decade lower (BERT's 2e-5..5e-5, 1e-5 for large models)
        floor = top / LARGE_LR_FACTOR ** (3 if view.fine_tuned() else 2) if top is not None else None
        if floor is None or lr > floor:
            return None
        return f"{view.optimizer_name()} at a learning rate of {fmt_num(lr)} (a tenth of the bottom of its usual range or less)"
    ratios = [v for v in view.update_ratios().values() if v > 0]
    first = [v for v in early_update_ratios(view).values() if v > 0]
    if not ratios or not first or adaptive(view):
        return None
    med, first_med = float(np.median(ratios)), float(np.median(first))
    if max(med, first_med) > UPDATE_RATIO_SMALL:
        return None
    return f"each step moved the weights by {med:.1e} of their size from the first step on (10x under the usual ~1e-3)"


def rising_rate(view: RunView) -> tuple[str, Evidence] | None:
    """A logged learning rate (`lr_points`, with the recorder's end-of-run rate) that rose tenfold or
    more over the run and was still rising at its last point, ending at LARGE_LR_FACTOR times the top
    of its adaptive optimiser's usual range (`USUAL_LR_TOP`) or more: a schedule that raises the rate
    without bound (a warm-up levels off; a range test is meant to end there). The sign and its
    evidence; None otherwise (and for optimisers without a known usual range)."""
    lr, top = lr_points(view), USUAL_LR_TOP.get((view.optimizer_name() or "").lower())
    if lr is None or top is None or not lr.values[0] > 0:
        return None
    first, last = float(lr.values[0]), float(lr.values[-1])
    # still rising: its top first reached at one of the last two points (the recorder's end-of-run rate
    # may repeat the last one logged); a warm-up reaches its top early and holds it
    reached = int(np.argmax(lr.values >= float(np.max(lr.values))))
    if last < LARGE_LR_FACTOR * max(first, top) or reached < len(lr.values) - 2:
        return None
    sign = (
        f"the learning rate rose {last / first:.0f}x over the run and was still rising at the end, to "
        f"{fmt_num(last)}: {view.optimizer_name()} at 10x the top of its usual range ({fmt_num(top)}) or more"
    )
    return sign, Evidence("rising_rate", lr.key, {"first": first, "last": last, "usual_top": top})


@dataclass(frozen=True)
class EarlyOverfit:
    """The validation loss was best early in the run, then rose away from that best."""

    key: str  # the validation curve's metric key
    best_share: float  # where the best point sits, as a share of the evaluations
    best_step: float
    gl: float  # Prechelt's generalisation loss at the end (%)
    undone: bool = False  # it ended back at chance or above (`val_undone`), wherever its best was


def early_overfit(view: RunView, early: float = 0.3, up_evals: int = 3) -> EarlyOverfit | None:
    """The validation loss best within the first `early` share of its evaluations and ending at
    least OVERFIT_GL % above that best, rising after it (an upward trend, or `up_evals` consecutive
    rising evaluations, Prechelt's UP), while the training loss did not rise. A validation loss
    that only wanders above one low point (a noisy curve's lucky dip) is not this."""
    of = view.overfit()
    if of is None or of.gl < OVERFIT_GL:
        return None
    va = view.finite_curve(VAL_LOSS, min_points=4)
    best_share = of.best_index / max(len(va.values) - 1, 1)
    if best_share > early or of.train_trend_after_best.direction > 0:
        return None
    if of.val_trend_after_best.direction <= 0 and of.up < up_evals:
        return None
    return EarlyOverfit(va.key, best_share, float(va.x()[of.best_index]), of.gl)


def val_undone(view: RunView) -> EarlyOverfit | None:
    """A classifier's validation loss that got well below chance (by PLATEAU_MAX_IMPROVEMENT of
    ln C) and ended back at chance or above (within CHANCE_TOLERANCE): whatever the run learned,
    the end of it undid (the same reading as `early_overfit`, wherever the best point was). Not on a clean
    overfit, the validation loss rising and the training loss falling after that best (both significant
    trends): the run did not undo its learning, it memorised its training set, and a binary classifier's
    overfit validation loss passes ln 2 on its way up (a GCN on 120 graphs under Adam at PyG's usual 1e-2,
    best 32% into the run). A validation loss that only jumps about after its best (no trend) beside large
    steps stays this reading (plain SGD at lr 1)."""
    va, k, of = view.finite_curve(VAL_LOSS, min_points=4), class_count(view), view.overfit()
    clean = of is not None and of.train_trend_after_best.direction < 0 < of.val_trend_after_best.direction
    if va is None or k is None or clean:
        return None
    chance, i = math.log(k), int(np.argmin(va.values))
    best, last = float(va.values[i]), float(va.values[-1])
    if best <= 0 or best > (1 - PLATEAU_MAX_IMPROVEMENT) * chance or last < (1 - stats.CHANCE_TOLERANCE) * chance:
        return None  # (a best of exactly 0, from rounded logging, has no ratio to read)
    return EarlyOverfit(va.key, i / max(len(va.values) - 1, 1), float(va.x()[i]), 100 * (last / best - 1), True)


def pre_step_start(view: RunView) -> float | None:
    """Where the training loss stood before the first steps: the start `blowup` measures a blow-up
    from (the recorder's first-step loss, or ln C, where lower than the first point; else that
    point), else `start_level`. Not a block median of the first points, which an early jump
    itself inflates (a loss at 1.4 that jumps to 11.7 then 6 has a block-median start of 6)."""
    b = blowup(view)
    return b.start if b is not None and math.isfinite(b.start) else start_level(view)


def raced_reading(view: RunView, large: str | None) -> tuple[str, Evidence, EarlyOverfit] | None:
    """`learning_rate_too_high`'s raced-past-its-best reading: steps 10x the usual (`large`, from
    `large_steps`) with the validation loss best early then worse (`early_overfit`), or back at
    chance (`val_undone`). The sign, its evidence and the reading; None otherwise. An early overfit
    needs a best point meaningfully below chance (`learned_something`): a validation loss that never
    left chance had no best to race past (labels unrelated to the inputs, memorised: `labels_unrelated`)."""
    raced = (early_overfit(view) or val_undone(view)) if large else None
    if raced is None or not (raced.undone or learned_something(view)):
        return None
    back = " (back at chance: what the run learned was undone)" if raced.undone else ""
    sign = (
        f"{large}, and the validation loss was best {raced.best_share:.0%} into the run, then ended "
        f"{raced.gl:.0f}% above it{back}"
    )
    test = f"large_steps_{'undone' if raced.undone else 'early_overfit'}"
    return sign, Evidence(test, raced.key, {"GL": raced.gl}), raced


def early_spike(view: RunView) -> tuple[str, Evidence] | None:
    """The training loss rose to GROWTH_BEFORE_NONFINITE times its start (`pre_step_start`, the
    start of the 10x test) or more within the early window of `stats.detect_blowup` (its first
    BLOWUP_EARLY share of points, at least 3): a jump too small for a blow-up (10x) but more than
    noise, warm-up bumps or a hard task's first epochs make (2-3x). The sign and its evidence; None otherwise."""
    c, start = view.curve(TRAIN_LOSS), pre_step_start(view)
    if c is None or start is None or not start > 0 or len(c.values) < 3:
        return None
    head = c.values[: max(3, int(math.ceil(stats.BLOWUP_EARLY * len(c.values))))]
    head = head[np.isfinite(head)]
    growth = float(np.max(head)) / start if len(head) else 0.0
    if growth < GROWTH_BEFORE_NONFINITE:
        return None
    sign = f"the loss jumped to {fmt_factor(growth)} its start in the first steps"
    return sign, Evidence("early_spike", c.key, {"growth": growth, "start": start})


#: `late_start_reading`: a training loss that sat at chance through this share of its points or more
#: wasted that much of the run (a hard task's first epochs, or a warm-up, leave chance well before)
LATE_START_SHARE = 1 / 3
#: ... "at chance": a rolling median of the per-batch losses at least this share of ln C (their noise
#: dips below it) and "learned after": the last points' median this share under ln C or more
CHANCE_BAND, LEARNED_BELOW_CHANCE = 0.05, 0.1


def late_start_reading(view: RunView) -> tuple[str, Evidence] | None:
    """Too large steps seen after the network recovered from them: the first measured steps of an
    optimiser whose steps scale with the gradient (SGD, with or without momentum; `recorded_step_size`
    on Adam's) changed the weights by UPDATE_RATIO_HIGH of their size or more (median over layers:
    100x the healthy ~1e-3) and the training loss then sat at chance (ln C, 5% under to 10% over it: a loss
    falling from far above it, large initial logits, never sat there; `CHANCE_BAND`) through
    LATE_START_SHARE of its points or more (two thirds of its rolling medians at chance until the last
    one) before it fell well below it (`LEARNED_BELOW_CHANCE`). A
    run that never left chance is `destroyed_signs`' to read. When a logged rate had been cut before
    the fall began, that is said too: the steps had to shrink before the network could learn."""
    c, chance = view.finite_curve(TRAIN_LOSS, min_points=10), view.chance_loss()
    early = early_update_ratios(view)
    if c is None or not chance or not early or view.lbfgs() or adaptive(view):
        return None
    first = float(np.median(list(early.values())))
    w = max(3, len(c.values) // 10)
    med = np.array([np.median(c.values[i : i + w]) for i in range(len(c.values) - w + 1)])
    at_chance = ((1 - CHANCE_BAND) * chance <= med) & (med <= (1 + 2 * CHANCE_BAND) * chance)  # not well above it
    # it left chance for good after the last window at chance (a dip that an early jump undid is no start)
    onset = len(med) - int(np.argmax(at_chance[::-1])) if at_chance.any() else 0
    if first < UPDATE_RATIO_HIGH or onset < LATE_START_SHARE * len(c.values) or at_chance[:onset].mean() < 2 / 3:
        return None
    if not med[-1] < (1 - LEARNED_BELOW_CHANCE) * chance:
        return None
    sign = (
        f"the first measured steps changed the weights by {first:.0%} of their size (median over layers; healthy is "
        f"~0.1%), and the loss then sat at chance (ln {round(math.exp(chance))} = {fmt_num(chance)}) for the "
        f"first {onset / len(c.values):.0%} of the run"
    )
    lr, at = lr_points(view), float(c.steps[min(onset + w // 2, len(c.values) - 1)])
    if lr is not None and (cut := lr.values[lr.steps <= at]).size and cut[-1] < 0.75 * float(np.max(cut)):
        sign += f"; it began to learn only once the schedule had cut the rate to {fmt_num(float(cut[-1]))}"
    return sign, Evidence("late_start", c.key, {"first_update_ratio": first, "chance_share": onset / len(c.values)})


#: what `dead_units` reads
DEAD_RELU_READS = (schema.layer_prefix(schema.LAYER_DEAD_RELU),)


def dead_units(view: RunView, threshold: float) -> tuple[str, float] | None:
    """The layer with the largest share of dead ReLU units (the recorder's per-layer medians over
    the second half of the run) when that share is `threshold` or more, else None."""
    bad, worst = worst_layer(view.layer_medians(schema.layer_prefix(schema.LAYER_DEAD_RELU)), threshold)
    return (worst, bad[worst]) if worst is not None else None


#: adaptive optimisers whose steps are about the learning rate per weight, whatever the gradient
ADAPTIVE = ("adam", "adamw", "nadam", "radam", "adamax", "rmsprop", "adagrad", "adafactor", "lamb")


def adaptive(view: RunView) -> bool:
    """The run's optimiser is adaptive (`ADAPTIVE`), its name read by substring: FusedAdam, AdamW8bit,
    PagedAdamW8bit, DeepSpeedCPUAdam take Adam's steps too (found by review)."""
    name = (view.optimizer_name() or "").lower()
    return any(a in name for a in ADAPTIVE)


def adaptive_lr(view: RunView) -> float | None:
    """The learning rate of an adaptive optimiser (`ADAPTIVE`: each of its steps moves every weight
    by about the rate), None for another optimiser or an unknown rate."""
    lr = view.learning_rate()
    return lr[1] if lr is not None and adaptive(view) else None


def erratic_reading(view: RunView, noise_share: float) -> tuple[str, Evidence] | None:
    """The training loss swings point to point by at least `noise_share` of its level and by more
    than the run ever gained (`stats.Levels`), on a curve read as oscillating; None otherwise."""
    osc, lv, curve = view.oscillation(TRAIN_LOSS), view.levels(TRAIN_LOSS), view.curve(TRAIN_LOSS)
    if osc is None or lv is None or lv.noise < noise_share * max(abs(lv.end), 1e-12) or lv.noise < lv.start - lv.end:
        return None
    sign = "the loss swings by more than it ever improved"
    return sign, Evidence("erratic_loss", curve.key, {"noise": lv.noise, "level": lv.end})


def destroyed_signs(view: RunView, dead_share: float) -> tuple[list[tuple[str, Evidence]], bool]:
    """A network destroyed, as the run shows it after the fact: a loss that ended stuck
    (`stuck_reading`: constant, at ln C, no better than chance), a ReLU layer with `dead_share` of
    its units dead (`dead_units`). The (sign, evidence) pairs, and whether the loss ended stuck."""
    out = []
    st, stuck_sign = stuck_reading(view)
    if stuck_sign:
        c = view.curve(TRAIN_LOSS)
        values = {"level": st.level, "chance_k": st.chance_k, "constant": st.constant}
        out.append((stuck_sign, Evidence("stuck_loss", c.key if c else None, values)))
    dead = dead_units(view, dead_share)
    if dead:
        ev = Evidence("dead_units", schema.layer_prefix(schema.LAYER_DEAD_RELU), {dead[0]: dead[1]})
        out.append((f"{dead[1]:.0%} of the ReLU units of layer {dead[0]} died", ev))
    return out, bool(stuck_sign)


#: a creep "still falling through its last half" must fall there at least this share of its first half's
#: pace per evaluation: a loss converging to a floor (a capacity limit) decelerates, a rate too small keeps a
#: steadier pace (Karpathy's slow, near-linear decline). An approximate line set between two runs, not from a
#: population: the 1-hidden-unit sample run (`bottleneck_mlp`, a floor) keeps 0.15 of its pace, the corpus's
#: still-improving SGD run 30x under its sweep's best rate 0.46
KEPT_PACE = 0.25


def monotone_creep(
    view: RunView,
    min_points: int,
    steady_share: float,
    no_learning: float,
    slow_max: float = 0.2,
    need_steady: bool = False,
) -> tuple[float, Evidence] | None:
    """A validation loss lower at every one of at least `min_points` evaluations (noise alone does
    that with probability 2^-(n-1)) that gained less than `no_learning` of its first value, or less
    than `slow_max` at a steady rate (its last 30% of evaluations, TAIL_START on, still brought
    `steady_share` of the gain) or still falling through its last half at a rate that matters (at it,
    one more run as long gains NO_LEARNING of the first value: plateau's boundary of "not stuck",
    `val_falling_since`) on a run whose outcome shows harm (it ended little better than chance: not
    near a floor it converged to). With `need_steady` (the training loss had done nearly all its falling by
    the first evaluation), only a steady creep: one nearing a floor it reached early is a converged run. The
    gain and its evidence."""
    c = view.finite_curve(VAL_LOSS, min_points=min_points)
    if c is None or len(c.values) < min_points or not c.values[0] > 0:
        return None
    v, k = c.values, int(round(TAIL_START * (len(c.values) - 1)))  # k: where the tail starts
    gain = float((v[0] - v[-1]) / abs(v[0]))
    steady = gain > 0 and v[k] - v[-1] >= steady_share * (v[0] - v[-1])
    h = (len(v) - 1) // 2  # a loss nearing a floor loses its pace; a rate too small keeps it (`KEPT_PACE`)
    kept_pace = (v[h] - v[-1]) / (len(v) - 1 - h) >= KEPT_PACE * (v[0] - v[h]) / max(h, 1)
    steady = steady or (kept_pace and val_falling_since(view, 0.5, float(v[0]), 1, NO_LEARNING))
    slow_to_no_end = gain < slow_max and steady and view.outcome_harm() is not None
    if need_steady and not steady:
        return None
    if not bool((np.diff(v) < 0).all()) or not gain > 0 or not (gain < no_learning or slow_to_no_end):
        return None
    return gain, Evidence("monotone_creep", c.key, {"points": len(c.values), "gain": gain})


# --- initial weights (bad_weight_init, initial_loss_mismatch) ---------------------------------
def copies_of_first_row(w: dict) -> float:
    """Share of the rows other than the first that equal it (`identical_rows_share` counts the first too)."""
    rows = int(w["shape"][0])
    return max(0.0, (w["identical_rows_share"] * rows - 1) / (rows - 1))


#: names of embedding tables and norm layers (for records without `layer_weight`: a lookup table or a
#: per-feature scale is no fan-in matrix, and a zero, constant or N(0, 1) init of it is normal)
NOT_LAYER_NAMES = ("emb", "wte", "wpe", "word_embeddings", "position_embeddings", "token_type_embeddings", "norm")
#: recurrent weights (`nn.RNN`/`nn.GRU`/`nn.LSTM` draw U(-1/sqrt(hidden), 1/sqrt(hidden)) by default)
RNN_WEIGHT = re.compile(r"(^|\.)weight_(ih|hh)_l\d+(_reverse)?$")
#: how close (as a factor) a weight's std must be to a default init's to count as that init
DEFAULT_TOLERANCE = 1.25


def layer_weight(w: dict) -> bool:
    """Whether an initial-weight record is a layer's fan-in weight matrix/kernel (the recorder's
    `layer_weight`: Linear, convolution, RNN, attention projections, a custom layer's `weight`).
    Records from before that field: a parameter whose own name says `weight`, outside an
    embedding or a norm layer (a model's own `nn.Parameter`, `pos` or `cls_token`, is not one)."""
    if "layer_weight" in w:
        return bool(w["layer_weight"])
    name = w["param"].lower()
    return "weight" in name.rsplit(".", 1)[-1] and not any(n in name for n in NOT_LAYER_NAMES)


def pytorch_default(w: dict) -> bool:
    """Whether a weight is at PyTorch's own default init for its kind of layer, which the LeCun
    yardstick misjudges: an RNN/GRU/LSTM weight at U(-1/sqrt(hidden), 1/sqrt(hidden))
    (std 1/sqrt(3 hidden), hidden = rows / gates)."""
    name, std, rows = w["param"].lower(), float(w.get("std", 0.0)), int(w["shape"][0])
    if std <= 0 or not RNN_WEIGHT.search(name):
        return False
    near = lambda expected: 1 / DEFAULT_TOLERANCE <= std / expected <= DEFAULT_TOLERANCE  # noqa: E731
    return any(rows % gates == 0 and near(1 / math.sqrt(3 * rows / gates)) for gates in (4, 3, 1))


#: a weight's std vs LeCun's 1/sqrt(fan_in) outside this band is badly scaled (PyTorch's default ~0.58,
#: He ~1.41: both well inside)
INIT_SCALE_BAND = (0.1, 10.0)
#: a matrix with at least this share of its rows copies of the first is symmetric
SYMMETRIC_SHARE = 0.5
#: what `init_reading` reads from the recorder
INIT_READS = (("model", "init"), *N_CLASSES_READS)


@dataclass(frozen=True)
class InitReading:
    """The recorder's initial layer weights, judged (`init_reading`)."""

    weights: list  # the layers' fan-in weight records
    constant: list  # names of constant weights
    symmetric: list  # names of weights most of whose rows are copies of the first
    scaled: list  # (name, std vs LeCun's) of weights scaled outside INIT_SCALE_BAND
    output: str | None  # the output layer's weight: the last one, with one row per class (None: not known)

    @property
    def output_only(self) -> bool:
        """Whether the only problem is the output layer's scale (its effect on the logits is what
        the first loss measures: `initial_loss_mismatch`)."""
        return not (self.constant or self.symmetric) and [n for n, _ in self.scaled] == [self.output]


#: a Hugging Face model's weights drawn from normal(0, initializer_range) by its own `_init_weights`,
#: down to initializer_range / sqrt(2 n_layer) for GPT-2's residual projections (Radford et al. 2019;
#: 1/10 covers 50 layers), up to twice the range: the architecture's designed init, not a bad scale
LIBRARY_INIT_BAND = (0.1, 2.0)


def library_default(view: RunView, w: dict) -> bool:
    """Whether a weight sits at its library's own designed init: the Hugging Face config's
    `initializer_range` (a param the Trainer's MLflow callback logs), within LIBRARY_INIT_BAND of it."""
    r = view.param_float("initializer_range")
    std = w.get("std")
    if r is None or r[1] <= 0 or not isinstance(std, (int, float)):
        return False
    return LIBRARY_INIT_BAND[0] * r[1] <= std <= LIBRARY_INIT_BAND[1] * r[1]


def init_reading(view: RunView) -> InitReading | None:
    """The recorder's initial fan-in weights (`layer_weight`) judged: constant, symmetric, or
    scaled outside INIT_SCALE_BAND (not on L-BFGS, whose line search sizes its steps to the
    weights; not a weight at PyTorch's own default for its layer, nor at a Hugging Face model's
    own `initializer_range` init, `library_default`). None without the record."""
    init = view.fact("model", "init")
    if not isinstance(init, list) or not init:
        return None
    init = [w for w in init if isinstance(w, dict) and layer_weight(w)]
    constant = [w["param"] for w in init if w["constant"]]
    symmetric = [
        w["param"]
        for w in init
        if not w["constant"] and w["shape"][0] > 1 and copies_of_first_row(w) >= SYMMETRIC_SHARE
    ]
    lo, hi = INIT_SCALE_BAND
    scaled = [
        (w["param"], float(w["scale_vs_lecun"]))
        for w in init
        if not view.lbfgs()
        and not w["constant"]
        and not lo <= w["scale_vs_lecun"] <= hi
        and not pytorch_default(w)
        and not library_default(view, w)
    ]
    n = view.fact("loss", "n_classes")
    last = init[-1] if init else None
    output = last["param"] if last is not None and isinstance(n, int) and int(last["shape"][0]) == n else None
    return InitReading(init, constant, symmetric, scaled, output)


#: an output layer whose std is this many times LeCun's 1/sqrt(fan_in) or more has a scale no standard init
#: gives it: PyTorch's default is 1/sqrt(3) = 0.58x, He's (the broadest, `kaiming_*_` for ReLU) sqrt(2) = 1.41x,
#: Xavier's never more (sqrt(2 fan_in / (fan_in + C)); 2.4x at most with tanh's gain 5/3). 4x is 2.8x He's and
#: 7x PyTorch's default: a head scaled up by hand (the corpus's x10 of the default gives 5.4-6.1x)
OUTPUT_SCALE_HIGH = 4.0


def scaled_output(view: RunView) -> tuple[str, float] | None:
    """(name, std vs LeCun's) of the output layer's weight (`InitReading.output`, the last weight with
    one row per class) when the recorder saw it start at OUTPUT_SCALE_HIGH x LeCun's std or more (not
    constant); None otherwise or without the record. Judged on L-BFGS runs too: what it reads is the
    logits' spread before the first step, which no line search has touched yet."""
    reading = init_reading(view)
    if reading is None or reading.output is None:
        return None
    w = next(w for w in reading.weights if w["param"] == reading.output)
    scale = float(w["scale_vs_lecun"])
    return (
        (reading.output, scale) if not w["constant"] and math.isfinite(scale) and scale >= OUTPUT_SCALE_HIGH else None
    )


# --- labels_unrelated's reading by elimination ---------------------------------------------------
CHECK_LABELS = (
    "check that labels match their inputs (shuffle inputs and labels together, check the join/pairing code), look "
    "at a few labelled samples by hand, and check that validation uses the same label mapping."
)
#: causes whose finding explains a model that learns nothing although its layers move (labels_unrelated's
#: `explained_by`): a loss fed the wrong input, gradients piling up, steps too small or decayed away
NOT_LEARNING = ("loss_input_mismatch", "gradients_not_zeroed", "learning_rate_too_low", "lr_decay_too_fast")


def usual_steps_at_chance_finding(rule: Rule, view: RunView) -> Finding | None:
    """labels_unrelated's reading (4), with the recorder: the validation loss at its best over
    `rule.CHANCE_EVALS`+ evaluations and the training loss at its end both no better than chance (95% of
    ln C or more, the outcome's "failed" level), while every layer's median update/weight ratio over the
    second half lies in the usual band (UPDATE_RATIO_LOW..UPDATE_RATIO_HIGH: no frozen, dead or starved
    layer) and their median reaches UPDATE_RATIO_HEALTHY (no rate too small). A model whose every layer
    takes steps of a usual size and still gains nothing over a uniform guess finds no signal in its
    labels (the spec's "loss at chance level"): low confidence, a reading by elimination. On clearly
    imbalanced labels "chance" is the entropy of their frequencies (`RunView.no_signal_loss`): predicting
    the frequencies whatever the input is learning nothing from it. Not on a model that is one linear map
    (`linear_stacks`: layers stacked with no activation): it finds no signal but a linear one, and
    `insufficient_capacity` names that."""
    no_signal, ratios = view.no_signal_loss(), view.update_ratios()
    if not view.recorded() or no_signal is None or not ratios or linear_stacks(view):
        return None
    chance, words = no_signal
    low, high, med = min(ratios.values()), max(ratios.values()), float(np.median(list(ratios.values())))
    if low < UPDATE_RATIO_LOW or high > UPDATE_RATIO_HIGH or med < UPDATE_RATIO_HEALTHY:
        return None
    va, tr = view.finite_curve(VAL_LOSS, rule.CHANCE_EVALS), view.levels(TRAIN_LOSS)
    if va is None or tr is None or min(float(va.values.min()), tr.end) < CHANCE_LEVELS[0][0] * chance:
        return None  # something was learned (or memorised: the other readings)
    best = float(va.values.min())
    return rule.finding(
        confidence="low",
        severity="failed",
        kind="outcome",
        score=min(1.0, med / UPDATE_RATIO_HEALTHY / 10),
        summary=f"the validation loss never got clearly below {words} (best {best:.3g}) nor the "
        f"training loss (ended at {tr.end:.3g}) while every layer's weights moved at a usual rate (median "
        f"update/weight ratio {med:.1e}, the smallest layer's {low:.1e})",
        recommendation="The model learned nothing although the optimiser moved every layer at a usual rate: nothing "
        "in the inputs predicts the labels. " + CHECK_LABELS[0].upper() + CHECK_LABELS[1:],
        evidence=[
            Evidence(
                "usual_steps_at_chance",
                va.key,
                {
                    "val_best": best,
                    "train_end": tr.end,
                    "chance": chance,
                    "median_update_ratio": med,
                    "per_layer": ratios,
                },
            )
        ],
    )


def noisy_training_labels_finding(rule: Rule, view: RunView) -> Finding | None:
    """labels_unrelated's reading (3): training ends near chance while validation does far better: noisy
    training labels."""
    chance, tr, va = view.chance_loss(), view.levels(TRAIN_LOSS), view.finite_curve(VAL_LOSS, min_points=3)
    if chance is None or tr is None or va is None or view.fact("model", "dropout"):
        return None
    best = float(va.values.min())
    if tr.end < rule.NEAR_CHANCE * chance or best > rule.VAL_BELOW_TRAIN * tr.end:
        return None
    return rule.finding(
        confidence="medium",
        severity="warning",
        score=min(1.0, 1 - best / tr.end),
        summary=f"the training loss ended at {tr.end:.3g}, little better than chance (ln C = {chance:.3g}), while "
        f"the validation loss reached {best:.3g}: the model does better on held-out data than on its own "
        "training labels",
        recommendation="The model cannot fit its training labels yet predicts the validation labels far better: "
        "most training labels look like noise (shuffled, mislabelled, or paired with the wrong inputs), unlike the "
        "validation ones. " + CHECK_LABELS[0].upper() + CHECK_LABELS[1:],
        evidence=[Evidence("train_vs_val_level", va.key, {"train_end": tr.end, "val_best": best})],
    )


def fit_not_carried_over_finding(rule: Rule, view: RunView) -> Finding | None:
    """labels_unrelated's reading (5), a regression's (2): the validation MSE at none of `rule.CHANCE_EVALS`+
    evaluations clearly below what predicting the training targets' mean scores on them (their variance plus
    the squared shift of their mean, within MEAN_TOLERANCE) and not falling (Mann-Kendall),
    while the training loss falls (a significant downward trend, by MEAN_TOLERANCE of its targets' variance or
    more over the run: an optimiser moving the data itself lowers it 0.3%) and ends under its own targets' variance
    (`RunView.targets_variance(training=True)`): what the model fits of its training pairs does not carry
    over at all, as with targets paired with the wrong rows. A regression whose validation set is merely
    hard still beats the mean a little; `plateau`'s `val_at_mean` reads the case where training did not fit either."""
    var, train_var = view.targets_variance(), view.targets_variance(training=True)
    va, lv, trend = view.finite_curve(VAL_LOSS, rule.CHANCE_EVALS), view.levels(TRAIN_LOSS), view.trend(TRAIN_LOSS)
    if not var or not train_var or va is None or lv is None or trend is None:
        return None
    # what predicting the training targets' mean scores on validation (the validation set's own mean is no
    # model's to know: a forecaster validated on one later regime scores its variance at best, found by review)
    means = [(view.fact("loss", k) or {}).get("mean") for k in ("targets", "eval_targets")]
    if all(isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m) for m in means):
        var += (means[1] - means[0]) ** 2
    best = float(va.values.min())
    if best < (1 - MEAN_TOLERANCE) * var or stats.mann_kendall(va.steps, va.values).direction < 0:
        return None  # validation beat the mean, or is still getting better
    if trend.direction >= 0 or -trend.change < MEAN_TOLERANCE * train_var or lv.end >= train_var:
        return None  # the training loss did not fit anything either (a significant fall is no effect size)
    return rule.finding(
        p_value=trend.p_value,
        confidence="medium",
        severity="failed",
        score=min(1.0, best / var),
        summary=f"the validation loss never got clearly below what predicting the training targets' mean scores "
        f"({fmt_num(var)}; best {fmt_num(best)}) while the training loss fell to {fmt_num(lv.end)}, under its own "
        f"targets' variance ({fmt_num(train_var)})",
        recommendation="What the model fits of its training pairs does not carry over to validation at all: "
        + CHECK_LABELS,
        evidence=[
            Evidence(
                "fit_not_carried_over",
                va.key,
                {"val_best": best, "variance": var, "train_end": lv.end, "train_variance": train_var},
            ),
            trend_evidence("mann_kendall_train_whole", view.curve(TRAIN_LOSS).key, trend),
        ],
    )


def tail_share(view: RunView, role: str) -> float | None:
    """The share of a curve's whole fall (start to end) that its last 30% (`TAIL_START`) brought: ~30%
    for a steady decline, a few percent for a converged one. None when the curve did not fall."""
    total, tail = view.drop(role, 0.0, 1.0), view.drop(role, TAIL_START, 1.0)
    return tail / total if total and total > 0 and tail is not None else None


def tail_trend(view: RunView, role: str) -> stats.Trend | None:
    """The trend of a curve's tail: its last 30% (`TAIL_START`), widened to its last MIN_TAIL_POINTS
    points when that holds fewer (a run evaluated 10-14 times has a tail of 4, in which no fall can
    ever be significant: "still falling at the end" was unreadable on per-epoch curves that short)."""
    c = view.finite_curve(role)
    if c is None:
        return None
    n = len(c.values)
    start = TAIL_START if n - round(TAIL_START * n) >= MIN_TAIL_POINTS else max(0.0, (n - MIN_TAIL_POINTS) / n)
    return view.trend(role, start, 1.0)


#: a warm-up still rising when the run ended, at this share of the rate set or less, never delivered it
WARMUP_SHORT_OF = 0.5
WARMUP_PARAMS = ("warmup_steps", "num_warmup_steps", "warmup_iters")


def warmup_unfinished(view: RunView) -> tuple[str, str, Evidence] | None:
    """`learning_rate_too_low`'s reading of a warm-up longer than the run (`warmup_steps` above the steps
    trained: the HF Trainer's schedule then never reaches its peak): the logged learning rate rose through
    its last 30% of points and ended at its highest, at WARMUP_SHORT_OF of the rate set (a param: the HF
    Trainer's `learning_rate`) or less, and the training loss was still falling at the end (`tail_trend`),
    its last 30% bringing 10% of its progress or more.
    The run trained at a fraction of its rate throughout. None otherwise, or without a rate set as a
    param other than the curve itself. Returns what was seen, the fix, and the evidence."""
    lr, rate = lr_points(view), view.learning_rate()
    if lr is None or rate is None or rate[0] not in view.params or rate[1] <= 0 or len(lr.values) < 3:
        return None
    v = lr.values
    last, k = float(v[-1]), int(TAIL_START * len(v))
    if last <= 0 or last < 0.99 * float(v.max()) or last > WARMUP_SHORT_OF * rate[1] or not last > 1.1 * float(v[k]):
        return None
    tail, share = tail_trend(view, TRAIN_LOSS), tail_share(view, TRAIN_LOSS)
    if tail is None or tail.direction >= 0 or share is None or share < TAIL_SHARE_IMPROVING:
        return None  # (a fine-tune that learned what it could under the short rate: no harm, found by review)
    warm = view.param_float(*WARMUP_PARAMS, nonzero=True)
    why = f" ({warm[0]}={warm[1]:.0f})" if warm else ""
    seen = (
        f"the learning rate was still warming up when the run ended{why}: it rose through the whole run to "
        f"{fmt_num(last)}, {last / rate[1]:.0%} of the {fmt_num(rate[1])} set, and the loss was still falling"
    )
    fix = (
        f"The run trained at a fraction of its learning rate: {seen}. Make the warm-up a small part of the "
        "run (warmup_ratio=0.06, or warmup_steps a few percent of the steps trained) so that most steps run "
        "at the rate you set."
    )
    return seen, fix, Evidence("warmup_unfinished", lr.key, {"last": last, "set": rate[1], "param": rate[0]})


#: what `learning_rate_zero` reads from the recorder
ZERO_RATE_READS = (("learning", "optimizer"), ("optimizer", schema.PARAM_OPTIMIZER_LR), schema.PARAM_OPTIMIZER_LR)


def learning_rate_zero(view: RunView) -> tuple[str, str, Evidence] | None:
    """`learning_rate_too_low`'s reading of a rate of 0 (`lr = 0.1 * batch_size // 256` floors to 0.0; a
    schedule's factor of 0): the rate the recorder read from the optimizer is 0 when it first saw it and at
    the end of training, and never above 0 in between (its `nnaudit/lr`), while the optimizer's parameters
    get gradients and none of them changed on 2 sampled steps or more (`learning.optimizer`). Nothing can
    learn at any gradient: `frozen_parameters`' "the loss is not computed from these tensors" would send
    the user after the wrong line. None otherwise. Returns what was seen, the fix, and the evidence."""
    opt = view.fact("learning", "optimizer")
    rate, last = view.param_float(schema.PARAM_OPTIMIZER_LR), view.fact("optimizer", schema.PARAM_OPTIMIZER_LR)
    if not isinstance(opt, dict) or rate is None or rate[1] != 0 or last not in (None, 0, 0.0):
        return None
    n, sampled = opt.get("parameters") or 0, opt.get("sampled_steps") or 0
    if n == 0 or sampled < 2 or opt.get("learning") != 0 or (opt.get("never_grad") or 0) >= n:
        return None
    lr = view.finite_curve(LEARNING_RATE, min_points=1)
    if lr is not None and float(np.max(np.abs(lr.values))) > 0:
        return None
    user = view.param_float(*LR_PARAMS, nonzero=True)
    also = (
        f" (the run's `{user[0]}` param says {fmt_num(user[1])}: the rate given to the optimizer is not it)"
        if user
        else ""
    )
    seen = f"the optimizer's learning rate is 0{also}: its {n} parameter tensors get gradients but none changed"
    fix = (
        f"Nothing can learn: {seen}. Give the optimizer a rate above 0, and check how it is computed (an integer "
        "division such as `0.1 * batch_size // 256` floors to 0.0; a LambdaLR factor of 0)."
    )
    return seen, fix, Evidence("learning_rate_zero", schema.DIAGNOSTICS_ARTIFACT, {"lr": 0.0, "parameters": n})


#: the recurrent layer types of a plain recurrent network, and of the gated ones (`model.recurrent`)
PLAIN_RNN_MODULES = ("RNN",)  # (cells and subclasses too: `probes.model._recurrent_kind`)
GATED_RNN_MODULES = ("LSTM", "GRU")
#: time steps from which a plain tanh recurrence loses its early inputs' gradient (Bengio et al. 1994;
#: Hochreiter and Schmidhuber 1997 show plain RNNs failing from lags of 10 to 20 steps on)
LONG_SEQUENCE = 20
PLAIN_RNN_READS = (("model", "recurrent"), ("inputs", "train", "features"), ("inputs", "train", "median_batch_size"))
LINEAR_STACK_READS = (("model", "linear_stacks"), ("model", "activations"), ("model", "depth"), ("model", "recurrent"))


def plain_rnn(view: RunView) -> tuple[list[str], int] | None:
    """The plain recurrent layers (`nn.RNN`, `nn.RNNCell`) of a model with no gated one (LSTM, GRU) and
    the length of the sequences they are fed, when it is LONG_SEQUENCE or more: a tanh recurrence
    multiplies its gradient by the same matrix at every time step, and over long sequences it vanishes
    before reaching the early steps. The length is read from the model's input (`inputs.train`) as the
    smaller of its first two dimensions: which one is the time depends on `batch_first` and on how the
    model permutes its input, which the facts do not show (found by review: a batch of 64 read as 64
    steps). A model that embeds token ids first (integer inputs are not summarised) is not read. None
    otherwise (a 5-step sequence is no long one)."""
    rec = view.fact("model", "recurrent")
    rec = [r for r in rec if isinstance(r, dict)] if isinstance(rec, list) else []
    if not rec or any(r.get("type") in GATED_RNN_MODULES for r in rec):
        return None
    plain = [r for r in rec if r.get("type") in PLAIN_RNN_MODULES]
    dims = [view.fact("inputs", "train", k) for k in ("features", "median_batch_size")]
    if not plain or not all(isinstance(d, (int, float)) for d in dims) or min(dims) < LONG_SEQUENCE:
        return None
    return [str(r.get("name")) for r in plain], int(min(dims))


def linear_stacks(view: RunView) -> list[list[str]]:
    """The recorder's `model.linear_stacks` (linear layers adjacent in an `nn.Sequential`) when they
    chain every weight layer of the model into one (no convolution, no recurrent or attention layer,
    no activation module anywhere): the whole model is then one linear map. Empty otherwise: a linear
    head after a non-linear body is a design, whether the body's activations are modules or `F.relu`
    calls the facts cannot show (found by review), or the facts are missing."""
    stacks, acts = view.fact("model", "linear_stacks"), view.fact("model", "activations")
    depth, rec = view.fact("model", "depth"), view.fact("model", "recurrent")
    if not isinstance(stacks, list) or not stacks or acts != [] or rec or not isinstance(depth, int):
        return []
    if not all(isinstance(p, list) and len(p) == 2 for p in stacks):
        return []
    names = {str(n) for p in stacks for n in p}
    chained = len(stacks) == depth - 1 and len(names) == depth
    return stacks if chained else []
