"""Rules that read the recorder's evidence: facts seen inside the running program. Each reads
`nnaudit/diagnostics.json` (through `RunView.fact`) or one of the recorder's per-batch
curves. Where the catalog says a cause also shows in the curves (C), the rule has a second,
curve-only branch that is used only when the recorder's facts are absent and is reported
with lower confidence; the others stay silent without the recorder."""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import GRAD_NORM, TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_factor, fmt_num

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
    means the output layer's initial scale or the loss setup is off.

    Curves only (no recorder): the class count from a param (`n_classes`, `num_classes`,
    `num_labels`, ...) and the median of the first three points of the training loss curve,
    same 3x test, low confidence (the curve's first point may be logged after some steps, and
    the loss need not be cross-entropy)."""

    cause = "initial_loss_mismatch"
    explained_by = ("loss_input_mismatch",)

    def evaluate(self, view: RunView) -> Finding | None:
        first, chance = view.fact("loss", "first_loss"), view.fact("loss", "chance_loss")
        confidence, source = "medium", DIAGNOSTICS
        if not view.recorded():
            first, chance, source = _first_loss_from_curve(view)
            confidence = "low"
        if not isinstance(first, (int, float)) or not isinstance(chance, (int, float)) or chance <= 0:
            return None
        if not math.isfinite(first) or first <= 0:
            return None
        factor = first / chance
        if 1 / INITIAL_LOSS_FACTOR <= factor <= INITIAL_LOSS_FACTOR:
            return None
        n = view.fact("loss", "n_classes") if source == DIAGNOSTICS else view.n_classes()[0]
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
            evidence=[Evidence("first_loss_vs_chance", source, {"first_loss": first, "chance_loss": chance,
                                                                  "factor": factor, "n_classes": n})],
        )


def _first_loss_from_curve(view: RunView) -> tuple[float | None, float | None, str | None]:
    """(median of the first 3 finite training-loss points, ln C from the class-count param, curve key)."""
    c = view.finite_curve(TRAIN_LOSS, min_points=3)
    n = view.n_classes()
    if c is None or n is None:
        return None, None, None
    return float(np.median(c.values[:3])), math.log(n[0]), c.key


class ClassImbalance(Rule):
    """The recorder counts the class labels fed to the classification loss on sampled
    batches. Reported when the most common class outnumbers the rarest class that occurs at
    least 10 to 1 (classes that never occur are not counted). Not decided when the batches arrive sorted by label (see `data_not_shuffled`):
    batches sampled at regular steps from a sorted stream give a biased histogram."""

    cause = "class_imbalance"
    explained_by = ("data_not_shuffled",)

    def evaluate(self, view: RunView) -> Finding | None:
        counts = view.fact("loss", "label_counts")
        if not isinstance(counts, list) or len(counts) < 2 or sum(counts) < 50:
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
    model towards one class.

    Curves only (no recorder): the per-step training loss repeats a saw-tooth every epoch (see
    `stats.epoch_periodicity`: a Friedman test of position-in-epoch bins across at least 4
    epochs, p < 0.001, with a profile swinging at least 10% of the loss level). The epoch
    length comes from params (`steps_per_epoch`, or a dataset size and a batch size) or an
    `epoch` curve. Not reported while the model memorises (training loss below half the
    validation loss): reshuffled epochs then show a mild per-epoch ramp of their own, as each
    sample's last visit recedes. Low confidence, medium when the swing is a quarter of the
    level or more."""

    cause = "data_not_shuffled"

    def evaluate(self, view: RunView) -> Finding | None:
        curve = view.extra_curves.get("nnaudit/labels_per_batch")
        counts = view.fact("loss", "label_counts")
        if curve is None and not view.recorded():
            return self._from_curve(view)
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

    def _from_curve(self, view: RunView) -> Finding | None:
        loss = view.finite_curve(TRAIN_LOSS, min_points=16)
        epoch = view.epoch_length()
        if loss is None or epoch is None:
            return None
        uf = view.underfit()
        if uf is not None and uf.val_end is not None and uf.train_end < 0.5 * uf.val_end:
            return None  # memorising: see the docstring
        per = stats.epoch_periodicity(loss.steps, loss.values, epoch[0])
        if not per.detected:
            return None
        rel = per.amplitude / max(per.level, 1e-12)
        return self.finding(
            confidence="medium" if rel >= 0.25 else "low",
            severity="warning",
            score=min(1.0, rel),
            p_value=per.p_value,
            summary=f"the training loss repeats a swing of {fmt_num(per.amplitude)} ({rel:.0%} of its level) every "
            f"epoch of {epoch[0]:.0f} steps, the same way in all {per.epochs} epochs",
            recommendation=f"The training loss repeats the same saw-tooth every epoch ({rel:.0%} of its level, over "
            f"{per.epochs} epochs of {epoch[0]:.0f} steps): the batches come in the same order each epoch, probably "
            "sorted by label or source. Shuffle every epoch (`DataLoader(dataset, shuffle=True)`), inputs and labels "
            "together.",
            evidence=[Evidence("epoch_periodicity", loss.key, {"p_value": per.p_value, "amplitude": per.amplitude,
                                                              "level": per.level, "epochs": per.epochs,
                                                              "bins": per.bins, "steps_per_epoch": epoch[0],
                                                              "epoch_length_from": epoch[1]})],
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


# --- inputs ------------------------------------------------------------------------------------
#: feature scale far from unit: median per-feature std above/below, |mean| above (in raw units),
#: or features whose scales differ by this factor (starting points, see docs/causes.md)
INPUT_STD_HIGH = 10.0
INPUT_STD_LOW = 0.01
INPUT_MEAN_HIGH = 5.0
INPUT_SCALE_SPREAD = 100.0


class InputsNotNormalized(Rule):
    """The recorder keeps per-feature statistics of sampled training input batches (features =
    dimension 1: columns of a table, channels of an image). Reported when the typical feature
    is far from zero mean and unit scale (median per-feature std above 10 or below 0.01, or
    median |mean| above 5, as with raw 0..255 pixels or features in the thousands), or when
    feature scales differ by more than 100x."""

    cause = "inputs_not_normalized"

    def evaluate(self, view: RunView) -> Finding | None:
        st = view.fact("inputs", "train")
        if not isinstance(st, dict):
            return None
        problems = []
        if st["median_std"] > INPUT_STD_HIGH or 0 < st["median_std"] < INPUT_STD_LOW:
            problems.append(f"the typical feature has standard deviation {fmt_num(st['median_std'])}")
        if st["median_abs_mean"] > INPUT_MEAN_HIGH:
            problems.append(f"the typical feature has mean {fmt_num(st['median_abs_mean'])}")
        if st["std_ratio"] > INPUT_SCALE_SPREAD:
            problems.append(f"feature scales differ by {fmt_num(st['std_ratio'])}x")
        if not problems:
            return None
        seen = "; ".join(problems)
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.8,
            summary=f"inputs are not normalised: {seen} (largest |value| {fmt_num(st['max_abs'])})",
            recommendation=f"The inputs are not normalised ({seen}): standardise each feature with the training "
            "set's mean and std (e.g. `transforms.Normalize(mean, std)` for images, or (x - mean) / std per column), "
            "and apply the same statistics to validation and test data.",
            evidence=[Evidence("input_statistics", DIAGNOSTICS, {k: st[k] for k in (
                "median_std", "median_abs_mean", "std_ratio", "max_abs", "features", "batches")})],
        )


class NonfiniteInputs(Rule):
    """The recorder counts NaN and Inf values in the sampled training and evaluation input
    batches; any at all is reported."""

    cause = "nonfinite_inputs"

    def evaluate(self, view: RunView) -> Finding | None:
        shares = {phase: view.fact("inputs", phase, "nonfinite_share") for phase in ("train", "eval")}
        bad = {k: v for k, v in shares.items() if isinstance(v, (int, float)) and v > 0}
        if not bad:
            return None
        where = " and ".join(f"{v:.2%} of the {k} input values" for k, v in bad.items())
        return self.finding(
            confidence="high",
            severity="failed",
            score=1.0,
            summary=f"NaN/Inf in the inputs: {where}",
            recommendation=f"The inputs contain NaN or Inf ({where}): find them with `torch.isfinite(x).all()` on "
            "the dataset, then impute or drop them (and check divisions and logs in the preprocessing).",
            evidence=[Evidence("input_nonfinite", DIAGNOSTICS, bad)],
        )


class ConstantFeatures(Rule):
    """Input features whose minimum equals their maximum over every sampled training batch
    (at least 3 batches): they carry no information and break standardisation (division by a
    zero std gives NaN)."""

    cause = "constant_features"

    def evaluate(self, view: RunView) -> Finding | None:
        st = view.fact("inputs", "train")
        if not isinstance(st, dict) or st.get("constant_features", 0) < 1 or st.get("batches", 0) < 3:
            return None
        k, n = st["constant_features"], st["features"]
        return self.finding(
            confidence="medium",
            severity="warning",
            score=k / max(n, 1),
            summary=f"{k} of {n} input features never changed in {st['batches']} sampled batches",
            recommendation=f"{k} of the {n} input features are constant: drop them (or make sure standardisation "
            "divides by max(std, eps)), and check the feature pipeline for a column filled by mistake.",
            evidence=[Evidence("constant_features", DIAGNOSTICS, {"constant": k, "features": n,
                                                                    "batches": st["batches"]})],
        )


#: standardised difference of feature means (median over features) between train and eval inputs
PREPROCESSING_SHIFT = 1.0
#: ... or ratio of their scales
PREPROCESSING_SCALE = 3.0


class TrainValPreprocessingMismatch(Rule):
    """The recorder keeps input statistics separately for training batches and for
    evaluation batches (forward passes without autograd or in eval mode). Reported when the
    evaluation inputs sit far from the training inputs: the median over features of
    |mean_eval - mean_train| / std_train above 1, or the median ratio of their standard
    deviations beyond 3x either way, as when only one split was normalised."""

    cause = "train_val_preprocessing_mismatch"

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
        if shift <= PREPROCESSING_SHIFT and 1 / PREPROCESSING_SCALE <= scale <= PREPROCESSING_SCALE:
            return None
        return self.finding(
            confidence="high",
            severity="warning",
            score=min(1.0, shift / 5 + abs(math.log(max(scale, 1e-12))) / 5),
            summary=f"evaluation inputs differ from training inputs: feature means shifted by {shift:.1f} training "
            f"std, scales {scale:.2g}x",
            recommendation=f"Evaluation inputs are preprocessed differently from training inputs (means shifted by "
            f"{shift:.1f} std, scale {scale:.2g}x): compute normalisation statistics on the training split once and "
            "apply the same transform to every split.",
            evidence=[Evidence("train_vs_eval_inputs", DIAGNOSTICS, {"median_mean_shift_in_train_std": shift,
                                                                       "median_std_ratio": scale})],
        )


# --- model -------------------------------------------------------------------------------------
#: weight std vs LeCun's 1/sqrt(fan_in) outside this band is badly scaled (PyTorch's default ~0.58,
#: He ~1.41: both well inside)
INIT_SCALE_BAND = (0.1, 10.0)


def _copies_of_first_row(w: dict) -> float:
    """Share of the rows other than the first that equal it. (The recorder's
    `identical_rows_share` counts the first row itself: 1/2 for any 2-row matrix.)"""
    rows = int(w["shape"][0])
    return max(0.0, (w["identical_rows_share"] * rows - 1) / (rows - 1))


class BadWeightInit(Rule):
    """The recorder measures every weight matrix/kernel before the first update: constant
    weights (all zero, all equal), most rows identical (symmetric: the units stay copies of
    each other), or a standard deviation more than 10x away from LeCun's 1/sqrt(fan_in)."""

    cause = "bad_weight_init"

    def evaluate(self, view: RunView) -> Finding | None:
        init = view.fact("model", "init")
        if not isinstance(init, list) or not init:
            return None
        constant = [w["param"] for w in init if w["constant"]]
        symmetric = [w["param"] for w in init if not w["constant"] and w["shape"][0] > 1
                     and _copies_of_first_row(w) >= 0.5]
        lo, hi = INIT_SCALE_BAND
        scaled = [f"{w['param']} ({w['scale_vs_lecun']:.2g}x)" for w in init
                  if not w["constant"] and not lo <= w["scale_vs_lecun"] <= hi]
        if not (constant or symmetric or scaled):
            return None
        parts = []
        if constant:
            parts.append(f"constant weights in {', '.join(constant[:4])}")
        if symmetric:
            parts.append(f"identical rows in {', '.join(symmetric[:4])}")
        if scaled:
            parts.append(f"weights scaled far from 1/sqrt(fan_in) in {', '.join(scaled[:4])}")
        seen = "; ".join(parts)
        return self.finding(
            confidence="high" if (constant or symmetric) else "medium",
            severity="warning",
            score=0.9 if constant else 0.7,
            summary=f"bad initial weights: {seen}",
            recommendation=f"The initial weights are bad ({seen}): use PyTorch's default initialisation or "
            "`nn.init.kaiming_normal_` (ReLU) / `nn.init.xavier_uniform_` (tanh, sigmoid) with zero biases; never "
            "initialise weights to a constant.",
            evidence=[Evidence("initial_weights", DIAGNOSTICS, {"constant": constant, "symmetric": symmetric,
                                                                  "badly_scaled": scaled})],
        )


#: share of a layer's units that must be dead / saturated (AutoTrainer 70%, DeepDiagnosis 50%)
DEAD_SHARE = 0.5
SATURATED_SHARE = 0.5


def _worst_layer(shares: dict[str, float], threshold: float) -> tuple[dict[str, float], str | None]:
    """The layers whose share reaches the threshold, and the worst of them (None: no layer)."""
    bad = {k: v for k, v in shares.items() if v >= threshold}
    return bad, (max(bad, key=bad.get) if bad else None)


class DeadRelu(Rule):
    """On sampled steps the recorder hooks every ReLU module and measures the share of its
    units (features, or channels) that output zero for every sample of the batch. Reported
    when, over the second half of the run, the median share is at least 50% in some layer."""

    cause = "dead_relu"

    def evaluate(self, view: RunView) -> Finding | None:
        shares = view.layer_medians("nnaudit/dead_relu/")
        bad, worst = _worst_layer(shares, DEAD_SHARE)
        if worst is None:
            return None
        return self.finding(
            confidence="high",
            severity="failed" if bad[worst] >= 0.9 else "warning",
            score=bad[worst],
            summary=f"{bad[worst]:.0%} of the units after ReLU layer {worst} never activate"
            + (f" (and {len(bad) - 1} more layers)" if len(bad) > 1 else ""),
            recommendation=f"{bad[worst]:.0%} of the ReLU units of layer {worst} are dead (always 0): lower the "
            "learning rate, use He initialisation (`nn.init.kaiming_normal_`) with zero biases, or switch to "
            "`nn.LeakyReLU`/`nn.GELU`; normalised inputs help too.",
            evidence=[Evidence("dead_units", "nnaudit/dead_relu/", {"per_layer": shares})],
        )


class SaturatedActivations(Rule):
    """On sampled steps the recorder hooks every Sigmoid and Tanh module and measures the share
    of outputs on the rails (pre-activation beyond +/-5, where the gradient vanishes).
    Reported when, over the second half of the run, the median share is at least 50% in some
    layer."""

    cause = "saturated_activations"

    def evaluate(self, view: RunView) -> Finding | None:
        shares = view.layer_medians("nnaudit/saturated/")
        bad, worst = _worst_layer(shares, SATURATED_SHARE)
        if worst is None:
            return None
        return self.finding(
            confidence="high",
            severity="warning",
            score=bad[worst],
            summary=f"{bad[worst]:.0%} of the outputs of {worst} sit on the sigmoid/tanh rails",
            recommendation=f"{bad[worst]:.0%} of the activations of layer {worst} are saturated, so their gradients "
            "vanish: scale the initial weights down (`nn.init.xavier_uniform_`), normalise the inputs, add "
            "normalisation layers, or use ReLU-family activations in hidden layers.",
            evidence=[Evidence("saturated_units", "nnaudit/saturated/", {"per_layer": shares})],
        )


class BatchnormSmallBatch(Rule):
    """The model has batch-normalisation layers and the recorder saw training batches of at
    most 4 samples (median over sampled steps): batch statistics from so few samples are
    noise, and training and evaluation behaviour drift apart."""

    cause = "batchnorm_small_batch"

    def evaluate(self, view: RunView) -> Finding | None:
        norms = view.fact("model", "normalization") or []
        size = view.fact("inputs", "train", "median_batch_size")
        if not any("BatchNorm" in n for n in norms) or not isinstance(size, int) or size > 4:
            return None
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.7,
            summary=f"batch normalisation with training batches of {size}",
            recommendation=f"Batch normalisation sees batches of only {size} samples: use larger batches, or replace "
            "BatchNorm with `nn.GroupNorm`/`nn.LayerNorm`, which do not depend on the batch.",
            evidence=[Evidence("batchnorm_batch_size", DIAGNOSTICS, {"median_batch_size": size,
                                                                       "normalization": norms})],
        )


class MissingBias(Rule):
    """Linear or convolution layers created with `bias=False` whose next layer is not a
    normalisation layer (which would make a bias redundant). Low confidence: some
    architectures leave biases out on purpose."""

    cause = "missing_bias"

    def evaluate(self, view: RunView) -> Finding | None:
        layers = view.fact("model", "no_bias_without_norm")
        if not layers:
            return None
        names = ", ".join(layers[:5])
        return self.finding(
            confidence="low",
            severity="warning",
            score=0.3,
            summary=f"layers without bias and without a following normalisation layer: {names}",
            recommendation=f"Layers {names} have no bias term and no normalisation after them: unless this is "
            "deliberate, create them with `bias=True` (the default).",
            evidence=[Evidence("no_bias_layers", DIAGNOSTICS, {"layers": layers})],
        )


# --- optimisation ----------------------------------------------------------------------------------
class GradientsNotZeroed(Rule):
    """On sampled steps the recorder looks at the gradients just before the first backward
    pass after an optimizer step: after `optimizer.zero_grad()` they are None or zero. When
    they are still non-zero on at least 90% of the sampled steps (at least 3), gradients are
    accumulating across steps because they are never reset.

    Curves only (no recorder): a logged gradient-norm curve (`grad_norm`, as the HF Trainer
    logs it) that rises steadily over the whole run: at least 10x from start to end with a
    strong monotone upward trend (Mann-Kendall tau >= 0.6, autocorrelation-corrected
    p < 0.05). Healthy runs' gradient norms stay within a factor of a few (they often rise
    2-3x as the loss sharpens); accumulated gradients grow with every step. Low confidence:
    a slowly exploding gradient looks the same."""

    cause = "gradients_not_zeroed"

    def evaluate(self, view: RunView) -> Finding | None:
        c = view.extra_curves.get("nnaudit/grad_present_before_backward")
        if c is None and not view.recorded():
            return self._from_curve(view)
        if c is None:
            return None
        v = c.values[np.isfinite(c.values)]
        if len(v) < 3 or float(np.mean(v)) < 0.9:
            return None
        return self.finding(
            confidence="high",
            severity="failed",
            score=1.0,
            summary=f"gradients from the previous step were still there before backward on {np.mean(v):.0%} of "
            f"{len(v)} sampled steps",
            recommendation="Gradients are never reset, so every step adds the new gradient to all earlier ones: call "
            "`optimizer.zero_grad()` once per step, before `loss.backward()` (or after `optimizer.step()`).",
            evidence=[Evidence("grad_present_before_backward", c.key, {"share": float(np.mean(v)),
                                                                        "sampled_steps": len(v)})],
        )

    def _from_curve(self, view: RunView) -> Finding | None:
        gn = view.finite_curve(GRAD_NORM, min_points=6)
        lv = view.levels(GRAD_NORM)
        trend = view.trend(GRAD_NORM)
        if gn is None or lv is None or trend is None or lv.start <= 0:
            return None
        growth = lv.end / lv.start
        if growth < GRAD_GROWTH_NOT_ZEROED or trend.tau < 0.6 or trend.direction <= 0:
            return None
        return self.finding(
            confidence="low",
            severity="warning",
            score=min(1.0, math.log10(growth) / 2),
            p_value=trend.p_value,
            summary=f"the gradient norm rose steadily {fmt_factor(growth)} over the run ({fmt_num(lv.start)} -> "
            f"{fmt_num(lv.end)}, Mann-Kendall tau {trend.tau:.2f})",
            recommendation=f"The gradient norm grows steadily ({fmt_factor(growth)} over the run), as it does when "
            "gradients are never reset and each step adds to the last: check that `optimizer.zero_grad()` is called "
            "once per step, before `loss.backward()`.",
            evidence=[Evidence("grad_norm_steady_growth", gn.key, {"growth": growth, "tau": trend.tau,
                                                                    "p_value": trend.p_value})],
        )


#: steady gradient-norm growth over a run that points to accumulation (curve-only reading)
GRAD_GROWTH_NOT_ZEROED = 10.0


#: gradient norm of the first layer vs the last below this: vanishing (AutoTrainer uses 1e-3
#: with |g_first| < 1e-4; we use the ratio alone, on per-layer medians)
VANISHING_RATIO = 1e-3


class VanishingGradients(Rule):
    """The recorder logs per-layer gradient norms on sampled steps (`nnaudit/grad_norm/<layer>`).
    Reported when, over the second half of the run, the first layer's median gradient norm is
    more than 1000x smaller than the last layer's: the early layers barely learn."""

    cause = "vanishing_gradients"

    def evaluate(self, view: RunView) -> Finding | None:
        norms = view.layer_medians("nnaudit/grad_norm/")
        order = [name for name in (view.fact("model", "layers") or {}) if name in norms]
        if len(order) < 2:
            return None
        first, last = norms[order[0]], norms[order[-1]]
        if last <= 0 or first / last >= VANISHING_RATIO:
            return None
        ratio = first / last
        return self.finding(
            confidence="high",
            severity="warning",
            score=min(1.0, -math.log10(max(ratio, 1e-12)) / 6),
            summary=f"the first layer's gradients are {ratio:.1e} of the last layer's ({order[0]}: {fmt_num(first)}, "
            f"{order[-1]}: {fmt_num(last)})",
            recommendation=f"Gradients vanish towards the input (first layer {ratio:.1e} of the last): use ReLU-family "
            "activations instead of sigmoid/tanh in hidden layers, He initialisation, normalisation layers, or "
            "residual connections; or make the network shallower.",
            evidence=[Evidence("per_layer_grad_norm", "nnaudit/grad_norm/", {"per_layer": norms,
                                                                              "first_to_last": ratio})],
        )


class UpdateRatioAbnormal(Rule):
    """Per layer, the median update/weight ratio ||dW||/||W|| over the second half of the run
    (recorder, sampled steps). ~1e-3 is the usual healthy order; reported when some layer is
    above 1e-1 or below 1e-5 while others are not (when all layers are off together, the
    learning-rate rules say so instead). Exact zeros are left to `frozen_parameters`."""

    cause = "update_ratio_abnormal"
    explained_by = ("learning_rate_too_low", "learning_rate_too_high", "frozen_parameters")

    def evaluate(self, view: RunView) -> Finding | None:
        ratios = {k: v for k, v in view.update_ratios().items() if v > 0}
        if len(ratios) < 2:
            return None
        high = {k: v for k, v in ratios.items() if v > 1e-1}
        low = {k: v for k, v in ratios.items() if v < 1e-5}
        off = {**high, **low}
        if not off or len(off) == len(ratios):
            return None
        names = ", ".join(f"{k} ({v:.0e})" for k, v in list(off.items())[:4])
        return self.finding(
            confidence="medium",
            severity="warning",
            score=0.5,
            summary=f"update/weight ratio far from ~1e-3 in {names}",
            recommendation=f"Some layers move far too {'much' if high else 'little'} per step (update/weight ratio "
            f"{names}; healthy is ~1e-3): give those layers their own learning rate (optimizer parameter groups), "
            "or check their initialisation and normalisation.",
            evidence=[Evidence("update_ratio", "nnaudit/update_ratio/", {"per_layer": ratios})],
        )


#: regression targets whose typical magnitude exceeds this are on the wrong scale
TARGET_SCALE = 10.0


def _target_std(t: dict) -> float:
    return math.sqrt(max(t["sqmean"] - t["mean"] ** 2, 0.0))


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

    def evaluate(self, view: RunView) -> Finding | None:
        t = view.fact("loss", "targets")
        if not view.recorded():
            return self._from_curve(view)
        if not isinstance(t, dict):
            return None
        std, mean = _target_std(t), abs(t["mean"])
        if std <= TARGET_SCALE and mean <= TARGET_SCALE:
            return None
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.7,
            summary=f"regression targets have mean {fmt_num(t['mean'])} and std {fmt_num(std)}",
            recommendation=f"The regression targets are far from unit scale (mean {fmt_num(t['mean'])}, std "
            f"{fmt_num(std)}): standardise them with the training set's mean and std (and invert that for "
            "predictions), or scale them into a range near [-1, 1].",
            evidence=[Evidence("target_statistics", DIAGNOSTICS, {"mean": t["mean"], "std": std,
                                                                    "min": t["min"], "max": t["max"]})],
        )

    def _from_curve(self, view: RunView) -> Finding | None:
        c = view.finite_curve(TRAIN_LOSS, min_points=3)
        if c is None or view.n_classes() is not None:
            return None  # a classifier's huge start is initial_loss_mismatch's business
        first = float(np.median(c.values[:3]))
        if first < HUGE_INITIAL_LOSS:
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
            evidence=[Evidence("huge_initial_loss", c.key, {"first_loss": first, "threshold": HUGE_INITIAL_LOSS})],
        )


#: a first training loss this large is off any sane scale (see TargetsNotNormalized)
HUGE_INITIAL_LOSS = 100.0


_OUTPUT_RANGES = {"ReLU": (0.0, math.inf), "ReLU6": (0.0, 6.0), "Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0),
                  "Softplus": (0.0, math.inf)}


class FinalLayerActivation(Rule):
    """The model's last module is an activation (ReLU, Sigmoid, Tanh, ...) and the regression
    targets the recorder saw fall outside what it can output (negative targets behind a ReLU,
    targets beyond [0, 1] behind a sigmoid, ...): part of the target range is unreachable."""

    cause = "final_layer_activation"

    def evaluate(self, view: RunView) -> Finding | None:
        last = view.fact("model", "last_module")
        t = view.fact("loss", "targets")
        if last not in _OUTPUT_RANGES or not isinstance(t, dict):
            return None
        lo, hi = _OUTPUT_RANGES[last]
        span = max(t["max"] - t["min"], 1e-12)
        below = max(0.0, lo - t["min"]) / span
        above = max(0.0, t["max"] - hi) / span
        if below + above < 0.05:
            return None
        return self.finding(
            confidence="high",
            severity="failed" if below + above >= 0.25 else "warning",
            score=min(1.0, below + above),
            summary=f"the model ends in {last} (outputs in [{fmt_num(lo)}, {fmt_num(hi)}]) but the targets span "
            f"[{fmt_num(t['min'])}, {fmt_num(t['max'])}]",
            recommendation=f"The output layer ends in {last}, which cannot produce targets in "
            f"[{fmt_num(t['min'])}, {fmt_num(t['max'])}]: remove the final activation for regression (a plain "
            "Linear output), or rescale the targets into its range.",
            evidence=[Evidence("output_activation_vs_targets", DIAGNOSTICS, {
                "last_module": last, "target_min": t["min"], "target_max": t["max"],
                "share_of_range_unreachable": below + above})],
        )


#: overfitting with no weight decay and no dropout
class NoRegularization(Rule):
    """The model overfits (see `overfitting`) and the recorder saw no regularisation at all:
    optimizer weight decay 0 and no dropout layer."""

    cause = "no_regularization"
    explained_by = ("train_val_preprocessing_mismatch", "gradients_not_zeroed")

    def evaluate(self, view: RunView) -> Finding | None:
        from mlflow_nnaudit.auditor.rules.dynamics import Overfitting

        wd = view.fact("optimizer", "nnaudit.optimizer.weight_decay")
        dropout = view.fact("model", "dropout")
        if wd is None or dropout is None or wd > 0 or dropout:
            return None
        if Overfitting().evaluate(view) is None:
            return None
        return self.finding(
            confidence="medium",
            severity="warning",
            score=0.6,
            summary="the model overfits and has no weight decay and no dropout",
            recommendation="The model overfits with no regularisation at all: add weight decay (e.g. AdamW with "
            "weight_decay=0.01), dropout (p=0.1-0.5) between hidden layers, data augmentation, or early stopping.",
            evidence=[Evidence("regularisation", DIAGNOSTICS, {"weight_decay": wd, "dropout": dropout})],
        )


#: dropout rate / weight decay that count as strong regularisation
STRONG_DROPOUT = 0.5
STRONG_WEIGHT_DECAY = 0.01


class TooMuchRegularization(Rule):
    """The training loss stalls well above a good loss (see `plateau`, or a training loss that
    ends above 60% of where it started) while the recorder saw strong regularisation: dropout
    of 0.5 or more, or weight decay of 0.01 or more with a non-decoupled optimizer.

    Curves only (no recorder): the underfitting shape (training loss less than 30% below its
    start and flat from the first half on, validation no more than 10% above it) with
    either params that say the regularisation is strong (`dropout` >= 0.5, `weight_decay`
    >= 0.01), or a validation loss that ends below the training loss, the mark of
    regularisation that is active only in training (dropout). Low confidence."""

    cause = "too_much_regularization"

    def evaluate(self, view: RunView) -> Finding | None:
        if not view.recorded():
            return self._from_curve(view)
        dropout = view.fact("model", "dropout") or []
        wd = view.fact("optimizer", "nnaudit.optimizer.weight_decay") or 0
        opt = view.fact("optimizer", "nnaudit.optimizer") or ""
        strong_wd = wd >= STRONG_WEIGHT_DECAY and opt != "AdamW"
        strong_dropout = any(p >= STRONG_DROPOUT for p in dropout)
        if not (strong_wd or strong_dropout):
            return None
        lv = view.levels()
        if lv is None or lv.start <= 0 or lv.end < 0.6 * lv.start:
            return None
        what = ", ".join(filter(None, [f"dropout {max(dropout)}" if strong_dropout else "",
                                       f"weight decay {wd}" if strong_wd else ""]))
        return self.finding(
            confidence="medium",
            severity="warning",
            score=0.5,
            summary=f"the training loss stays at {lv.end / lv.start:.0%} of its start under strong regularisation "
            f"({what})",
            recommendation=f"Training underfits under strong regularisation ({what}): reduce it (dropout 0.1-0.3, "
            "weight decay 1e-4..1e-2 with AdamW) until the training loss falls, then add it back as needed.",
            evidence=[Evidence("regularisation", DIAGNOSTICS, {"dropout": dropout, "weight_decay": wd,
                                                                 "train_end_vs_start": lv.end / lv.start})],
        )

    def _from_curve(self, view: RunView) -> Finding | None:
        from mlflow_nnaudit.auditor.rules.dynamics import PLATEAU_MAX_IMPROVEMENT

        uf = view.underfit()
        if uf is None or not uf.signature(PLATEAU_MAX_IMPROVEMENT):
            return None
        dropout = view.param_float("dropout", "dropout_rate", "drop_rate", "hidden_dropout_prob", "p_dropout")
        wd = view.param_float("weight_decay", "wd", "l2", "weight-decay")
        strong = [f"{name} {fmt_num(v)}" for (name, v), limit in ((dropout or ("", -1.0), STRONG_DROPOUT),
                                                                  (wd or ("", -1.0), STRONG_WEIGHT_DECAY)) if v >= limit]
        val_below = uf.val_end is not None and uf.val_end < uf.train_end
        if not (strong or val_below):
            return None
        what = ", ".join(strong) if strong else (
            f"validation loss {fmt_num(uf.val_end)} below the training loss {fmt_num(uf.train_end)}")
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
            evidence=[Evidence("underfit_with_regularisation", view.curve(TRAIN_LOSS).key,
                               {"improvement": uf.improvement, "train_end": uf.train_end, "val_end": uf.val_end,
                                "params": strong})],
        )
