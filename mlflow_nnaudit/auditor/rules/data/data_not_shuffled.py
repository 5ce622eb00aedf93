"""`data_not_shuffled`: the data arrives sorted (by label or source), in the same order every epoch."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import EPOCH_LENGTH_READS


class DataNotShuffled(Rule):
    """The recorder counts the distinct labels in each sampled classification batch
    (`nnaudit/labels_per_batch`). When the median batch holds a single class although the
    run has several, the data arrives sorted by label: each stretch of training pulls the
    model towards one class. Not with batches of one sample (per-sample SGD), which hold one
    class whatever the order, and not when shuffled batches would hold one class about as
    often: with one class making up most labels (a 97% majority), a shuffled batch of 32 is
    all majority a third of the time. So the sampled batches holding one class must be more
    than batches drawn at random from the recorder's label histogram give (a binomial test of
    their count against sum_k p_k^b, the chance that b labels drawn from it are all one class;
    p < 0.001); that histogram then says `class_imbalance`.

    Curves only (no recorder): the per-step training loss repeats a saw-tooth every epoch (see
    `stats.epoch_periodicity`: a Friedman test of position-in-epoch bins across at least 4
    epochs, p < 0.001, with a profile swinging at least 10% of the loss level). The epoch
    length comes from params (`steps_per_epoch`, or a dataset size and a batch size) or an
    `epoch` curve. Not reported while the model memorises (training loss below half the
    validation loss): reshuffled epochs then show a mild per-epoch ramp of their own, as each
    sample's last visit recedes. Low confidence, medium when the swing is a quarter of the
    level or more."""

    cause = "data_not_shuffled"
    #: the recorder's count of distinct labels per sampled batch
    CURVE = schema.stored_key(schema.LABELS_PER_BATCH)
    reads = (CURVE, ("loss", "label_counts"), *EPOCH_LENGTH_READS)

    #: sampled batches needed before their median means anything
    MIN_BATCHES = 5
    #: training loss below this share of the validation loss: the model memorises (see the docstring)
    MEMORISING = 0.5
    #: a per-epoch swing of this share of the loss level or more is medium confidence
    MEDIUM_SWING = 0.25
    #: one-class batches must be this unlikely from shuffled data (the curves-only test's level too)
    ALPHA = 1e-3

    def evaluate(self, view: RunView) -> Finding | None:
        curve = view.extra_curves.get(self.CURVE)
        counts = view.fact("loss", "label_counts")
        if curve is None and not view.recorded():
            return self._from_curve(view)
        if curve is None or len(curve) < self.MIN_BATCHES or not isinstance(counts, list):
            return None
        bs = view.batch_size()
        if bs is not None and bs[0] < 2:
            return None  # a batch of one sample holds one class whatever the order: per-sample SGD
        n_classes_seen = sum(1 for c in counts if c > 0)
        per_batch = curve.values[np.isfinite(curve.values)]
        med = float(np.median(per_batch))
        if n_classes_seen < 2 or med > 1:
            return None
        # how often a shuffled batch would hold one class, given the label histogram and the batch size
        p = np.asarray(counts, dtype=float) / float(sum(counts))
        b = bs[0] if bs is not None else float(sum(counts)) / len(per_batch)
        one_class = float(np.sum(p**b))
        single = int(np.sum(per_batch <= 1))
        p_value = stats.binomial_tail(single, len(per_batch), one_class)
        if p_value >= self.ALPHA:
            return None  # shuffled batches of this histogram hold one class as often: an imbalance, not an order
        return self.finding(
            confidence="high",
            severity="failed",
            score=0.9,
            summary=f"the median training batch holds {med:.0f} class although {n_classes_seen} classes occur",
            recommendation=f"Training batches hold one class each (median over {len(curve)} sampled batches) although "
            f"{n_classes_seen} classes occur: the data arrives sorted. Shuffle it every epoch "
            "(`DataLoader(dataset, shuffle=True)`), and shuffle inputs and labels together.",
            evidence=[
                Evidence(
                    "labels_per_batch",
                    curve.key,
                    {"median": med, "batches": len(curve), "classes_seen": n_classes_seen}
                    | {"one_class_batches": single, "one_class_if_shuffled": one_class, "p_value": p_value},
                )
            ],
        )

    def _from_curve(self, view: RunView) -> Finding | None:
        loss = view.finite_curve(TRAIN_LOSS, min_points=16)
        epoch = view.epoch_length()
        if loss is None or epoch is None:
            return None
        uf = view.underfit()
        if uf is not None and uf.val_end is not None and uf.train_end < self.MEMORISING * uf.val_end:
            return None  # memorising: see the docstring
        per = stats.epoch_periodicity(loss.steps, loss.values, epoch[0])
        if not per.detected:
            return None
        rel = per.amplitude / max(per.level, 1e-12)
        return self.finding(
            confidence="medium" if rel >= self.MEDIUM_SWING else "low",
            severity="warning",
            score=min(1.0, rel),
            p_value=per.p_value,
            summary=f"the training loss repeats a swing of {fmt_num(per.amplitude)} ({rel:.0%} of its level) every "
            f"epoch of {epoch[0]:.0f} steps, the same way in all {per.epochs} epochs",
            recommendation=f"The training loss repeats the same saw-tooth every epoch ({rel:.0%} of its level, over "
            f"{per.epochs} epochs of {epoch[0]:.0f} steps): the batches come in the same order each epoch, probably "
            "sorted by label or source. Shuffle every epoch (`DataLoader(dataset, shuffle=True)`), inputs and labels "
            "together.",
            evidence=[
                Evidence(
                    "epoch_periodicity",
                    loss.key,
                    {
                        "p_value": per.p_value,
                        "amplitude": per.amplitude,
                        "level": per.level,
                        "epochs": per.epochs,
                        "bins": per.bins,
                        "steps_per_epoch": epoch[0],
                        "epoch_length_from": epoch[1],
                    },
                )
            ],
        )
