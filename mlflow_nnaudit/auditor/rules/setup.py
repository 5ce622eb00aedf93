"""Rules about the training set-up: how much data, how it is batched and fed, how big and deep
the model is, how the learning rate is scheduled and clipped.

Most need a fact the curves cannot show (the recorder's DataLoader, fingerprint, clipping and
model facts, or params the user logged); where a curve-only reading exists it is reported
with lower confidence.
"""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import LEARNING_RATE, TRAIN_LOSS, VAL_LOSS
from mlflow_nnaudit.auditor.rules.base import (
    FLAT_TOLERANCE,
    Evidence,
    Finding,
    Rule,
    RunView,
    fmt_num,
    fmt_step,
)
from mlflow_nnaudit.auditor.rules.dynamics import NO_LEARNING, PLATEAU_MAX_IMPROVEMENT, TAIL_START, trend_evidence

DIAGNOSTICS = "nnaudit/diagnostics.json"

# --- data ---------------------------------------------------------------------------------------
#: sampled training batches needed before a repeat means anything
REPEATED_MIN_BATCHES = 4
#: the most common fingerprint's share of the sampled batches that makes a repeat (two
#: different batches of real data agree on 16 spread-out values essentially never, so any
#: repeat is suspicious; half of all batches is a margin against the loops that legitimately
#: revisit a batch now and then, e.g. an unshuffled epoch sampled at a multiple of its length)
REPEATED_SHARE = 0.5


class RepeatedBatch(Rule):
    """On sampled training steps the recorder fingerprints the model's input batch (its shape
    and 16 values at evenly spaced positions). Reported when at least 4 batches were sampled
    and one fingerprint makes up at least half of them: the same batch is fed again and
    again. Full-batch training (the training DataLoader has a single batch per epoch) is not
    reported; without a DataLoader to tell, the confidence is medium."""

    cause = "repeated_batch"

    def evaluate(self, view: RunView) -> Finding | None:
        fp = view.fact("inputs", "fingerprints")
        if not isinstance(fp, dict) or fp.get("sampled_batches", 0) < REPEATED_MIN_BATCHES:
            return None
        share, distinct, n = fp["most_common_share"], fp["distinct"], fp["sampled_batches"]
        if share < REPEATED_SHARE:
            return None
        bpe = view.fact("data_loader", "train", "batches_per_epoch")
        known = isinstance(bpe, int)
        if known and bpe <= distinct:
            return None  # the loader has no more batches than were seen: full-batch or tiny data
        loader_text = f" although the training DataLoader has {bpe} batches per epoch" if known else ""
        return self.finding(
            confidence="high" if known else "medium",
            severity="failed" if share >= 0.9 else "warning",
            score=share,
            summary=f"{share:.0%} of {n} sampled training batches were the same batch ({distinct} distinct)"
            + loader_text,
            recommendation=f"The model was fed the same batch on {share:.0%} of the {n} sampled steps{loader_text}: "
            "iterate the loader (`for x, y in loader:`) instead of calling `next(iter(loader))` every step, and "
            "check that the batch variables are reassigned inside the loop (not taken once before it). "
            "If you train full-batch on purpose, ignore this.",
            evidence=[Evidence("batch_fingerprints", DIAGNOSTICS, {**fp, "loader_batches_per_epoch": bpe})],
        )


#: validation loss best in this early share of the run, then overfitting: the data ran out early
EARLY_OVERFIT_SHARE = 0.3
#: fewer training samples than this, or more than this many parameters per sample, is small data
#: for a neural network (starting points: the classical 10-samples-per-parameter rule is far
#: stricter; these flag only the clearly small cases)
SMALL_DATASET = 1000
PARAMS_PER_SAMPLE = 100.0


class DatasetTooSmall(Rule):
    """The model overfits early: the validation loss is best within the first 30% of the run
    and ends at least 10% above that best (Prechelt's generalisation loss) while the
    training loss keeps falling. With the training set's size known (the recorder's
    DataLoader, or a param such as `n_train`) and small (under 1,000 samples, or at least 100
    model parameters per sample) the confidence is medium; from the curves alone it is low."""

    cause = "dataset_too_small"
    explained_by = ("labels_unrelated", "train_val_preprocessing_mismatch", "repeated_batch")

    def evaluate(self, view: RunView) -> Finding | None:
        from mlflow_nnaudit.auditor.rules.dynamics import OVERFIT_GL

        of = view.overfit()
        if of is None or of.gl < OVERFIT_GL:
            return None
        va = view.finite_curve(VAL_LOSS, min_points=4)
        n_val = len(va.values)
        best_share = of.best_index / max(n_val - 1, 1)
        if best_share > EARLY_OVERFIT_SHARE or of.train_trend_after_best.direction > 0:
            return None
        n = view.dataset_size()
        params = view.fact("model", "parameters")
        if not isinstance(params, int):
            p = view.param_float("nnaudit.model.parameters", "parameters", "n_parameters", "num_parameters")
            params = int(p[1]) if p else None
        small = n is not None and (n[0] < SMALL_DATASET or (params is not None and params / n[0] >= PARAMS_PER_SAMPLE))
        if n is not None and not small:
            return None  # plenty of data: the overfitting rules say what to do
        best_step = float(va.x()[of.best_index])
        size_text = ""
        if n is not None:
            size_text = f" with only {n[0]:,.0f} training samples" + (
                f" for {params:,} parameters ({params / n[0]:,.0f} per sample)" if params else "")
        return self.finding(
            confidence="medium" if small else "low",
            severity="warning",
            score=min(1.0, of.gl / 100.0),
            summary=f"the validation loss was best {best_share:.0%} into the run (step {fmt_step(best_step)}) and "
            f"ended {of.gl:.0f}% above it{size_text}",
            recommendation=f"The model runs out of data early: validation loss best at step {fmt_step(best_step)} "
            f"({best_share:.0%} into the run), {of.gl:.0f}% worse by the end{size_text}. Get more data or augment "
            "it, use a smaller model or a pre-trained one, add weight decay/dropout, and stop at the best "
            "validation point.",
            evidence=[Evidence("early_overfitting", va.key, {"best_share_of_run": best_share, "GL_percent": of.gl}),
                      Evidence("dataset_size", DIAGNOSTICS if n and n[1].startswith("the training") else None,
                               {"samples": n[0] if n else None, "source": n[1] if n else None,
                                "parameters": params})],
        )


# --- optimisation ---------------------------------------------------------------------------------
#: a batch holding this share of the training set leaves <= 10 updates per epoch (Keskar et al.
#: 2017 studied "large batch" as 10% of the training set; the usual 32-512 is well under 1-2%)
LARGE_BATCH_SHARE = 0.1


class BatchSizeTooLarge(Rule):
    """The training batch holds at least 10% of the training set (at most 10 updates per
    epoch) and the run shows what that costs: the training loss is still falling
    significantly at the end (it ran out of updates) or made less than 30% progress. Batch and
    dataset sizes come from the recorder's training DataLoader (medium confidence) or from
    params such as `batch_size` and `n_train` (low). Full-batch training on purpose looks the
    same; the recommendation says so."""

    cause = "batch_size_too_large"
    explained_by = ("repeated_batch",)

    def evaluate(self, view: RunView) -> Finding | None:
        n, bs = view.dataset_size(), view.batch_size()
        if n is None or bs is None or bs[0] < LARGE_BATCH_SHARE * n[0]:
            return None
        tail = view.trend(TRAIN_LOSS, TAIL_START, 1.0)
        uf = view.underfit()
        still_falling = tail is not None and tail.direction < 0
        little = uf is not None and uf.improvement < PLATEAU_MAX_IMPROVEMENT
        if not (still_falling or little):
            return None
        per_epoch = math.ceil(n[0] / bs[0])
        curve = view.curve(TRAIN_LOSS)
        updates = len(curve) if curve is not None and curve.key.startswith("nnaudit/") else None
        from_loader = n[1].startswith("the training") and bs[1].startswith("the training")
        seen = "the training loss was still falling when it stopped" if still_falling else (
            f"the training loss fell only {uf.improvement:.0%}")
        upd = f", {updates:,} in the whole run" if updates else ""
        return self.finding(
            confidence="medium" if from_loader else "low",
            severity="warning",
            score=min(1.0, bs[0] / n[0]),
            summary=f"batches of {bs[0]:,.0f} out of {n[0]:,.0f} samples ({bs[0] / n[0]:.0%}): {per_epoch} updates per "
            f"epoch{upd}; {seen}",
            recommendation=f"Each batch holds {bs[0] / n[0]:.0%} of the data ({bs[0]:,.0f} of {n[0]:,.0f}), so an epoch "
            f"gives only {per_epoch} updates{upd} and {seen}. Use batches of 32-256 (a few percent of the data at "
            "most) for the same epochs; or, to keep the large batch, raise the learning rate with it (linear scaling "
            "with a warm-up) and train for more steps.",
            evidence=[Evidence("batch_vs_dataset", None, {"batch_size": bs[0], "batch_source": bs[1],
                                                           "dataset_size": n[0], "dataset_source": n[1],
                                                           "updates_per_epoch": per_epoch, "updates": updates}),
                      *([trend_evidence("mann_kendall_tail", curve.key, tail)] if still_falling else [])],
        )


#: share of clipping calls where the clip bites that makes it "active on most steps" (the
#: catalog's wording; clipping is meant to catch rare spikes, Pascanu et al. 2013)
CLIP_BITES_SHARE = 0.5
CLIP_MIN_CALLS = 10


class GradientClippingMasksLr(Rule):
    """The recorder wraps `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_` and compares
    the gradient before each call (the total norm the function returns; for value clipping
    the largest |gradient|, on a sample of calls) with the limit. Reported when the clip bites
    on at least half of at least 10 measured calls: every such step has the length the limit
    sets, not the one the learning rate sets, so the clip hides a learning rate that is too
    high. High confidence when it bites on 90% of the calls with the typical gradient at least
    twice the limit."""

    cause = "gradient_clipping_masks_lr"

    def evaluate(self, view: RunView) -> Finding | None:
        clip = view.fact("clipping")
        if not isinstance(clip, dict) or clip.get("measured_calls", 0) < CLIP_MIN_CALLS:
            return None
        share, ratio, limit = clip["bite_share"], clip["median_pre_clip_ratio"], clip["limit"]
        if share < CLIP_BITES_SHARE:
            return None
        what = "norm" if clip.get("kind") == "norm" else "largest |value|"
        fn = "clip_grad_norm_" if clip.get("kind") == "norm" else "clip_grad_value_"
        lr = view.learning_rate()
        lr_text = (f" from {fmt_num(lr[1])} to about {fmt_num(lr[1] / max(ratio, 1.0))}" if lr and ratio > 1 else
                   f" about {ratio:.0f}x" if ratio > 1 else "")
        return self.finding(
            confidence="high" if share >= 0.9 and ratio >= 2 else "medium",
            severity="warning",
            score=min(1.0, share),
            summary=f"`{fn}` (limit {fmt_num(limit)}) cut the gradient on {share:.0%} of {clip['measured_calls']} "
            f"measured calls; the gradient {what} was typically {ratio:.1f}x the limit",
            recommendation=f"Gradient clipping is active on {share:.0%} of the steps (the gradient {what} is typically "
            f"{ratio:.1f}x the limit {fmt_num(limit)}), so the step size is set by the clip, not by the learning rate: "
            f"lower the learning rate{lr_text} and set the limit near the gradient {what} of a healthy step (e.g. its "
            "90th percentile), so that clipping only catches the rare spikes.",
            evidence=[Evidence("clipping_activity", DIAGNOSTICS, dict(clip))],
        )


#: the learning rate counts as decayed when it is this share of its peak or less ...
LR_DECAYED = 0.1
#: ... and it must get there within this share of the run to be "too fast" (a cosine or step
#: schedule over the whole run gets there in its last third)
LR_DECAY_EARLY = 0.5


class LrDecayTooFast(Rule):
    """A logged learning-rate curve falls to 10% of its peak or less within the first half of
    the run, the training loss was still falling significantly just before (Mann-Kendall on
    the stretch before the drop, autocorrelation-corrected), and after the drop it is flat (the
    equivalence test of `plateau`: its change lies within +/-5% of the starting loss) for the
    rest of the run: progress stopped when the learning rate went, not because the model had
    learned. Needs the learning rate as a curve (`lr`, `learning_rate`, Lightning's `lr-Adam`,
    the recorder's `nnaudit/lr`)."""

    cause = "lr_decay_too_fast"

    def evaluate(self, view: RunView) -> Finding | None:
        lr = view.finite_curve(LEARNING_RATE, min_points=4)
        loss = view.finite_curve(TRAIN_LOSS)
        lv = view.levels(TRAIN_LOSS)
        if lr is None or loss is None or lv is None or lv.start <= 0:
            return None
        i_peak = int(np.argmax(lr.values))
        peak = float(lr.values[i_peak])
        if peak <= 0:
            return None
        below = np.nonzero(lr.values[i_peak:] <= LR_DECAYED * peak)[0]
        if not len(below):
            return None
        x_drop = float(lr.steps[i_peak + below[0]])
        lx = loss.steps
        if lx[-1] <= lx[0]:
            return None
        share = (x_drop - lx[0]) / (lx[-1] - lx[0])
        if not 0 < share <= LR_DECAY_EARLY:
            return None
        before, after = lx <= x_drop, lx > x_drop
        if before.sum() < 8 or after.sum() < 8:
            return None
        xb, yb = lx[before], loss.values[before]
        k = len(xb)
        pre = stats.mann_kendall(xb[k // 2:], yb[k // 2:])  # the half of the pre-drop stretch nearest the drop
        if pre.direction >= 0:
            return None
        flat = stats.flatness(lx[after], loss.values[after], FLAT_TOLERANCE * abs(lv.start))
        if not flat.is_flat:
            return None
        level = float(np.median(loss.values[after]))
        return self.finding(
            confidence="medium",
            severity="warning",
            score=min(1.0, 1.0 - share),
            p_value=pre.p_value,
            summary=f"the learning rate fell from {fmt_num(peak)} to {fmt_num(LR_DECAYED * peak)} or less by step "
            f"{fmt_step(x_drop)} ({share:.0%} into the run); the loss, still falling until then, stayed at "
            f"{fmt_num(level)} after it",
            recommendation=f"The learning-rate schedule shrinks the rate 10x by step {fmt_step(x_drop)}, {share:.0%} into "
            f"the run, and the loss stops improving there (flat at {fmt_num(level)}) although it was still falling: "
            "decay later or more gently (e.g. cosine or step decay over the whole run, a larger gamma / step_size), "
            "or train the remaining epochs at a higher rate.",
            evidence=[Evidence("lr_drop", lr.key, {"peak": peak, "drop_step": x_drop, "share_of_run": share}),
                      trend_evidence("mann_kendall_before_drop", loss.key, pre),
                      Evidence("flat_after_drop", loss.key, {"change_ci90": [flat.change_low, flat.change_high],
                                                             "tolerance": flat.tolerance, "level": level},
                               (x_drop, float(lx[-1])))],
        )


# --- model ------------------------------------------------------------------------------------------
#: weight layers in a plain stack (no normalisation) from which depth itself hurts (He et al.
#: 2016: plain nets degrade beyond ~20 layers even with BatchNorm; without it, and with the
#: default init, MLPs a dozen layers deep already stall)
DEEP_LAYERS = 10
#: first-to-last layer gradient ratio that counts as gradients decaying with depth (an order of
#: magnitude less strict than `vanishing_gradients`' 1e-3: here depth is the claim, not vanishing)
DEPTH_GRADIENT_DECAY = 1e-2


class NetworkTooDeep(Rule):
    """The recorder saw a plain stack of at least 10 weight layers with no normalisation
    layer, and it does not train as a shallower one would: its gradients decay with depth
    (the first layer's median gradient norm is under 1% of the last layer's) or its training
    loss made less than 30% progress. Both together are high confidence. Residual connections
    are not visible in the module list; the gradient decay is what they would prevent."""

    cause = "network_too_deep"

    def evaluate(self, view: RunView) -> Finding | None:
        depth = view.fact("model", "depth")
        norms = view.fact("model", "normalization")
        if not isinstance(depth, int) or depth < DEEP_LAYERS or norms:
            return None
        grads = view.layer_medians("nnaudit/grad_norm/")
        order = [name for name in (view.fact("model", "layers") or {}) if name in grads]
        ratio = None
        if len(order) >= 2 and grads[order[-1]] > 0:
            ratio = grads[order[0]] / grads[order[-1]]
        decays = ratio is not None and ratio < DEPTH_GRADIENT_DECAY
        uf = view.underfit()
        stuck = uf is not None and uf.improvement < PLATEAU_MAX_IMPROVEMENT
        if not (decays or stuck):
            return None
        signs = []
        if decays:
            signs.append(f"the first layer's gradients are {ratio:.1e} of the last layer's")
        if stuck:
            signs.append(f"the training loss fell only {uf.improvement:.0%}")
        seen = " and ".join(signs)
        return self.finding(
            confidence="high" if decays and stuck else "medium",
            severity="failed" if uf is not None and uf.improvement < NO_LEARNING else "warning",
            score=0.85,
            summary=f"a plain stack of {depth} weight layers without normalisation: {seen}",
            recommendation=f"The network is a plain stack of {depth} weight layers without normalisation, and {seen}: "
            "make it shallower (3-4 hidden layers are plenty for most tabular tasks), or add residual connections "
            "and normalisation layers (`nn.LayerNorm`/`nn.BatchNorm1d`) with He initialisation "
            "(`nn.init.kaiming_normal_`) so that signal and gradients survive the depth.",
            evidence=[Evidence("depth", DIAGNOSTICS, {"weight_layers": depth, "normalization": norms,
                                                      "first_to_last_grad_ratio": ratio,
                                                      "train_improvement": uf.improvement if uf else None})],
        )


#: the training loss made less than this share of progress: underfitting (a healthy run on a
#: noisy task gets ~50% on the sample task; a fitting one far more)
UNDERFIT_MAX_IMPROVEMENT = 0.4


class InsufficientCapacity(Rule):
    """Too small a model for the task. With the recorder: a hidden layer narrower than the
    output (a bottleneck that cannot carry the classes apart), or no hidden layer at all,
    while the training loss underfits: it made less than 40% progress and the validation
    loss is no more than 10% above it (no generalisation gap, so more data or regularisation
    would not help). From the curves alone (no recorder): less than 30% progress, the
    training loss flat from the first half of the run on, and no gap; low confidence, since
    a hard task's noise floor, too much regularisation or a broken set-up look the same."""

    cause = "insufficient_capacity"
    explained_by = ("too_much_regularization", "bad_weight_init", "dead_relu", "saturated_activations",
                    "learning_rate_too_low", "network_too_deep", "frozen_parameters", "loss_input_mismatch",
                    "labels_unrelated", "vanishing_gradients", "inputs_not_normalized", "data_not_shuffled",
                    "repeated_batch", "batch_size_too_large", "lr_decay_too_fast")

    def evaluate(self, view: RunView) -> Finding | None:
        uf = view.underfit()
        if uf is None:
            return None
        widths = view.fact("model", "widths")
        if view.recorded() and isinstance(widths, list) and widths:
            if not uf.signature(UNDERFIT_MAX_IMPROVEMENT, need_flat=False):
                return None
            hidden, out = widths[:-1], widths[-1]
            if hidden and min(hidden) >= out:
                return None
            what = (f"its narrowest hidden layer has {min(hidden)} units for {out} outputs" if hidden
                    else f"it has no hidden layer (a single {view.fact('model', 'depth')}-layer linear map)")
            confidence, evidence_src = "medium", "recorder"
        elif not view.recorded():
            if not uf.signature(PLATEAU_MAX_IMPROVEMENT):
                return None
            what, confidence, evidence_src = "the curves alone cannot show the model's size", "low", "curves"
        else:
            return None
        gap = f", validation {fmt_num(uf.val_end)}" if uf.val_end is not None else ""
        return self.finding(
            confidence=confidence,
            severity="warning",
            score=1.0 - uf.improvement,
            summary=f"the training loss ended at {fmt_num(uf.train_end)}, only {uf.improvement:.0%} below its start"
            f"{gap}; {what}",
            recommendation=f"The model underfits: the training loss ended at {fmt_num(uf.train_end)}, only "
            f"{uf.improvement:.0%} below its start, with no gap to validation{'' if evidence_src == 'curves' else ', and ' + what}. "
            "Make the model bigger (wider hidden layers, at least as wide as the number of classes, or one or two "
            "more layers) and check that the training loss then goes lower.",
            evidence=[Evidence("underfitting", view.curve(TRAIN_LOSS).key,
                               {"improvement": uf.improvement, "train_end": uf.train_end, "val_end": uf.val_end,
                                "flat_from_share": uf.flat_from, "widths": widths if evidence_src == "recorder" else None})],
        )
