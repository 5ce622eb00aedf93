"""`class_imbalance`: one class far outnumbers another in the training labels."""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import TRAIN_LOSS, VAL_ACC, VAL_LOSS
from mlflow_nnaudit.auditor.rules import helpers
from mlflow_nnaudit.auditor.rules.base import CHANCE_LEVELS, Evidence, Finding, Rule, RunView, fmt_num


class ClassImbalance(Rule):
    """The recorder counts the class labels fed to the classification loss on sampled
    batches. Reported when the most common class outnumbers the rarest class that occurs at
    least 10 to 1 (classes that never occur are not counted). Not decided when the batches arrive sorted by label (see `data_not_shuffled`):
    batches sampled at regular steps from a sorted stream give a biased histogram.
    Imbalance at worst makes a model predict the label prior, whose loss is the labels' entropy
    (below ln C): on a run whose losses never got down to that entropy nor below chance (5% above
    the entropy and at 95% of ln C or more, the outcome's "no better than chance", at their best)
    it explains nothing of the outcome, and is
    reported at low confidence without explaining other findings away (a char-level model whose
    loss sat above ln 27 from a bad init was named `class_imbalance` first).

    The harm it does is seen where the model predicts the majority class only: the validation accuracy
    exactly the same at every one of 3 or more evaluations, below 1 and within 5 points of the majority's
    share of the sampled labels (any prediction that changes moves it), and the loss (validation at its
    best, else training at its end) no lower than 90% of the labels' entropy, the loss of predicting the
    label prior, which a model that never names a rarer class cannot beat by much. Then it is `failed`:
    whatever the loss says against ln C, the model never names the rarer classes (an HF Trainer BERT at
    1:10 kept 0.915 accuracy, a loss of 0.29 at the prior's and an F1 of 0 over four epochs, and was
    `healthy` with an advisory). A small validation set's accuracy holds still at 0.95 for a model that
    does name the minority; its loss is then well under the entropy (found by review). With that harm seen,
    a majority 3x the rarest class is enough (PolyLoss on 86/14 labels). Labels read from a
    loss function the run reduces itself (`loss.per_sample_loss`: a focal loss, PolyLoss) are reported
    only with that harm: such a loss is often the run's answer to the imbalance. (A focal loss sits far
    under the entropy even at the prior, so on such runs only a loss at least the cross-entropy, as
    PolyLoss is, can show it.)"""

    cause = "class_imbalance"
    explained_by = ("data_not_shuffled",)
    reads = (("loss", "label_counts"), ("loss", "per_sample_loss"))

    #: the most common class outnumbers the rarest present class this many times
    RATIO = 10.0
    #: ... or this many times, with the harm seen (a model that predicts the majority class only)
    HARM_RATIO = 3.0
    #: labels counted before the histogram means anything
    MIN_LABELS = 50
    #: losses this share above the labels' entropy never reached the label prior (see the docstring)
    ABOVE_PRIOR = 1.05
    #: ... and at this share of ln C or more ("no better than chance", the outcome's)
    AT_CHANCE = CHANCE_LEVELS[0][0]
    #: evaluations with the very same accuracy that show a model predicting one class
    SAME_ACCURACY = 3
    #: ... when that accuracy is within this of the majority's share of the sampled labels
    MAJORITY_NEAR = 0.05
    #: ... and the loss no lower than this share of the labels' entropy (predicting the prior)
    AT_PRIOR = 0.9

    def applies(self, view: RunView) -> bool:
        """Not on token-id labels (a language model): a Zipf-shaped histogram is what text is."""
        return not view.token_id_labels()

    def evaluate(self, view: RunView) -> Finding | None:
        counts = view.fact("loss", "label_counts")
        if not isinstance(counts, list) or len(counts) < 2 or sum(counts) < self.MIN_LABELS:
            return None
        c = np.asarray(counts, dtype=float)
        present = c[c > 0]
        share = c.max() / c.sum()
        ratio = c.max() / present.min() if len(present) else math.inf
        if ratio < self.HARM_RATIO:
            return None
        top = int(np.argmax(c))
        p = present / present.sum()
        entropy = float(-(p * np.log(p)).sum())
        lows = [lv.best for lv in (view.levels(TRAIN_LOSS), view.levels(VAL_LOSS)) if lv is not None]
        floor = max(self.ABOVE_PRIOR * entropy, self.AT_CHANCE * math.log(len(c)))
        above_prior = bool(lows) and min(lows) >= floor
        outcome = view.outcome_level()
        at_prior = outcome is not None and outcome[0] >= self.AT_PRIOR * entropy
        only = self._majority_only(view, share, c / c.sum()) if at_prior and not above_prior else None
        if (view.fact("loss", "per_sample_loss") or ratio < self.RATIO) and not only:
            return None  # a loss of the run's own (focal, poly) is often its answer to the imbalance: harm only
        said = f"; not why: the loss never got down to the labels' entropy ({fmt_num(entropy)})" if above_prior else ""
        return self.finding(
            confidence="low" if above_prior else "high",
            explains=not above_prior,
            severity="failed" if only else "warning",
            kind="outcome" if only else None,
            score=min(1.0, share),
            summary=f"class {top} makes up {share:.0%} of the sampled labels ({ratio:.0f}x the rarest class)"
            + (f"; {only}" if only else said),
            recommendation=f"Class {top} makes up {share:.0%} of the training labels: weight the loss "
            "(`nn.CrossEntropyLoss(weight=...)` with inverse class frequencies) or resample "
            "(`torch.utils.data.WeightedRandomSampler`), and judge the model by per-class recall or F1, not accuracy.",
            evidence=[
                Evidence(
                    "label_histogram",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {"label_counts": counts, "max_share": share, "max_to_min_ratio": ratio},
                )
            ],
        )

    def _majority_only(self, view: RunView, share: float, shares: np.ndarray) -> str | None:
        """What shows the model predicts the majority class only (see the class docstring), or None. The frozen
        accuracy must sit nearer the majority's share than any other class's: at 3:1 over five classes a model
        stuck on the second class scores within 5 points of the first's share too (found by review)."""
        acc = view.finite_curve(VAL_ACC, min_points=self.SAME_ACCURACY)
        if acc is None:
            return None
        v = acc.values / helpers.accuracy_scale(view, VAL_ACC)  # a fraction, also when logged in percent
        if v.min() != v.max() or not 0 < v[0] < 1 or abs(v[0] - share) > self.MAJORITY_NEAR:
            return None
        if sorted(abs(shares - v[0]))[1] <= abs(v[0] - share):  # (the majority's own distance is the least)
            return None
        return (
            f"the validation accuracy was {v[0]:.3g} at every one of {len(v)} evaluations, about the majority's "
            "share: the model predicts that class only"
        )
