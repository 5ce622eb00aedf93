"""What every rule shares: the run as rules see it, and the finding a rule returns.

A rule is one small class in its own module (`rules/<category>/<cause_id>.py`): a cause id,
a docstring that says how the cause is detected (it becomes the "How it is detected" part of
docs/causes.md), its thresholds as class attributes, what it reads from the recorder
(`reads`), and `evaluate(view)`, which returns a `Finding` or None. Rules never read the
store: they ask the `RunView`. The view computes each curve analysis (levels, trends,
divergence, stalls, oscillation, overfitting, from `mlflow_nnaudit.auditor.stats`) once and
shares it between rules, so that two rules looking at the same divergence see the same
numbers; a rule does only simple arithmetic of its own (ratios, shares, medians of facts),
and the few that test a stretch no other rule needs call `stats` directly.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.catalog import BUG, BY_ID, KINDS, OUTCOME
from mlflow_nnaudit.auditor.curves import LEARNING_RATE, TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS, VAL_R2, Curve

CONFIDENCES = ("high", "medium", "low")
#: the recorder logs one update/weight-ratio curve per layer under this prefix
UPDATE_RATIO_PREFIX = schema.layer_prefix(schema.LAYER_UPDATE_RATIO)
SEVERITIES = ("failed", "warning")


@dataclass
class Evidence:
    """One observation behind a finding: which curve, which test, what it gave."""

    test: str
    curve: str | None = None  # the metric key the test ran on
    values: dict[str, Any] = field(default_factory=dict)  # statistic, p_value, effect size, ...
    steps: tuple[float, float] | None = None  # the step range it concerns

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(v: Any) -> Any:
    """Numbers rounded for reading, NaN/Inf as strings (strict JSON has neither), containers
    converted all the way down."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return round(f, 6) if abs(f) >= 1e-4 or f == 0 else float(f"{f:.4g}")
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


@dataclass
class Finding:
    """A cause found on a run, with how sure we are and what to do about it."""

    cause: str
    confidence: str  # "high" | "medium" | "low"
    severity: str  # "failed": the run did not learn or ended broken; "warning": it learned, but worse
    summary: str  # one sentence: what was seen
    recommendation: str  # what to do, specific to what was seen
    evidence: list[Evidence] = field(default_factory=list)
    score: float = 0.5  # strength within its confidence level, 0..1, for ordering
    #: p-value of the statistical test the finding rests on, for findings decided on curves alone
    #: by a test (None otherwise); the audit adjusts these across all runs (false-discovery control)
    p_value: float | None = None
    # whether this finding may stand in for the causes that name it in their `explained_by`:
    # False when it is one reading of an ambiguous shape, so that the others stay listed too
    explains: bool = True
    #: this finding's own kind when it differs from its cause's catalog kind (`catalog.KINDS`): a
    #: rule of a risk cause that saw the harm itself (the loss stuck) says "outcome", one that saw
    #: a definite bug (constant weights) says "bug"; None: the catalog's kind
    kind: str | None = None
    #: causes that, when also found on the run, this finding is a consequence of on this run, on
    #: top of its rule's `consequence_of`: for a link that holds only when the rule saw why (a
    #: blow-up with inputs in the hundreds follows from the input scale, not always from it)
    follows: tuple[str, ...] = ()
    #: causes this finding cannot follow from on this run, though its rule's `consequence_of` allows the
    #: link in general (an accuracy under the least its loss allows is no skewed label histogram's doing)
    rules_out: tuple[str, ...] = ()
    # set by the verdict (verdict.py), not by rules:
    advisory: bool = False  # kept as advice: the run showed no harm, so this is not a cause of it
    upstream: str | None = None  # the cause found on the run that this finding is a consequence of
    consequences: list[str] = field(default_factory=list)  # causes found on the run that follow from this one

    def __post_init__(self) -> None:
        if self.cause not in BY_ID:
            raise ValueError(f"finding for unknown cause id {self.cause!r}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"bad confidence {self.confidence!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"bad severity {self.severity!r}")
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"bad kind {self.kind!r}")

    @property
    def effective_kind(self) -> str:
        """`outcome`, `bug` or `risk`: the finding's own kind, else its cause's."""
        return self.kind or BY_ID[self.cause].kind

    @property
    def harmful(self) -> bool:
        """Whether this finding alone makes a run `warning` or `failed` (status follows harm)."""
        return self.effective_kind in (OUTCOME, BUG)

    @property
    def advice(self) -> str:
        """The recommendation as the reports and tags give it: an upstream cause's says which
        findings on the run follow from it, in one clause; a consequence's says what to fix first."""
        text = self.recommendation
        if self.consequences:
            phrases = [BY_ID[c].as_consequence or f"{BY_ID[c].title.lower()} was found" for c in self.consequences]
            joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
            text = f"{text.rstrip()} This is also why {joined} (listed after it)."
        if self.upstream:
            text = f"A consequence of `{self.upstream}` on this run: fix that first. {text}"
        return text

    @property
    def title(self) -> str:
        return BY_ID[self.cause].title

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "title": self.title,
            "confidence": self.confidence,
            "severity": self.severity,
            "score": round(float(self.score), 4),
            "kind": self.effective_kind,
            "advisory": self.advisory,
            "summary": self.summary,
            "recommendation": self.advice,
            "evidence": [e.to_dict() for e in self.evidence],
            **({"p_value": _jsonable(self.p_value)} if self.p_value is not None else {}),
            **({"consequence_of": self.upstream} if self.upstream else {}),
            **({"consequences": list(self.consequences)} if self.consequences else {}),
        }


#: a Hugging Face `architectures` param naming a single-label classifier's head (its `id2label`
#: map then counts the classes)
CLASSIFIER_HEAD = re.compile(r"For(Sequence|Image|Audio|Token)Classification")


class RunView:
    """A run as the rules see it: its curves by role, the recorder's facts, its params,
    and each curve analysis computed at most once."""

    def __init__(
        self,
        curves: dict[str, Curve],
        params: dict[str, str] | None = None,
        extra_curves: dict[str, Curve] | None = None,
        diagnostics: dict | None = None,
        metric_keys: Iterable[str] = (),
    ) -> None:
        self.curves = curves  # role -> Curve
        self.metric_keys = frozenset(metric_keys)  # every metric the run logged (curves not read included)
        self.params = params or {}
        self.extra_curves = extra_curves or {}  # metric key -> Curve (recorder per-layer curves, ...)
        self.diagnostics = diagnostics
        self._memo: dict[tuple, Any] = {}

    # --- curves -------------------------------------------------------------------------
    def curve(self, role: str) -> Curve | None:
        return self.curves.get(role)

    def finite_curve(self, role: str, min_points: int = 8) -> Curve | None:
        """The curve for a role with its non-finite points dropped, if enough remain to test.
        Made once per role, whatever the length floor (rules ask for it dozens of times a run, with
        a dozen floors); rules only read curves, so one object is shared."""
        c = self._cached("finite_curve", role, lambda: self._finite_curve(role))
        return c if c is not None and len(c) >= min_points else None

    def _finite_curve(self, role: str) -> Curve | None:
        c = self.curves.get(role)
        if c is None:
            return None
        ok = c.finite
        return Curve(c.key, c.x()[ok], c.values[ok], c.timestamps[ok] if len(c.timestamps) == len(ok) else [])

    def _cached(self, name: str, role: str, fn):
        key = (name, role)
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def levels(self, role: str = TRAIN_LOSS) -> stats.Levels | None:
        c = self.finite_curve(role)
        return self._cached("levels", role, lambda: stats.curve_levels(c.steps, c.values) if c else None)

    def nonfinite(self, role: str = TRAIN_LOSS) -> stats.NonFinite | None:
        c = self.curve(role)
        return self._cached("nonfinite", role, lambda: stats.find_nonfinite(c.values) if c is not None else None)

    def divergence(self, role: str = TRAIN_LOSS) -> stats.Divergence | None:
        c = self.finite_curve(role)
        return self._cached("divergence", role, lambda: stats.detect_divergence(c.steps, c.values) if c else None)

    def trend(self, role: str = TRAIN_LOSS, start: float = 0.0, end: float = 1.0) -> stats.Trend | None:
        """Trend of the part of a curve between two shares of its length."""
        c = self.finite_curve(role)

        def compute():
            if c is None:
                return None
            n = len(c.values)
            a, b = int(round(start * n)), int(round(end * n))
            if b - a < 4:
                return None
            return stats.mann_kendall(c.steps[a:b], c.values[a:b])

        return self._cached(f"trend[{start}:{end}]", role, compute)

    def drop(self, role: str, a: float, b: float) -> float | None:
        c = self.finite_curve(role)
        return self._cached(f"drop[{a}:{b}]", role, lambda: stats.window_drop(c.steps, c.values, a, b) if c else None)

    def stall(self, role: str = TRAIN_LOSS) -> stats.Stall | None:
        c = self.finite_curve(role)
        lv = self.levels(role)

        def compute():
            if c is None or lv is None:
                return None
            return stats.find_stall(c.steps, c.values, tolerance=FLAT_TOLERANCE * max(abs(lv.start), 1e-12))

        return self._cached("stall", role, compute)

    def oscillation(self, role: str = TRAIN_LOSS, tail: float = 0.5) -> stats.Oscillation | None:
        c = self.finite_curve(role, min_points=16)

        def compute():
            if c is None:
                return None
            n = len(c.values)
            return stats.detect_oscillation(c.values[int((1 - tail) * n) :])

        return self._cached(f"oscillation[{tail}]", role, compute)

    def overfit(self) -> stats.Overfit | None:
        tr = self.finite_curve(TRAIN_LOSS)
        va = self.finite_curve(VAL_LOSS, min_points=4)

        def compute():
            if tr is None or va is None:
                return None
            tx, vx = _shared_axis(tr, va)
            return stats.detect_overfitting(tx, tr.values, vx, va.values)

        return self._cached("overfit", VAL_LOSS, compute)

    def extra_matching(self, prefix: str) -> dict[str, Curve]:
        return {k: c for k, c in self.extra_curves.items() if k.startswith(prefix)}

    def layer_medians(self, prefix: str) -> dict[str, float]:
        """Per layer, the median over the second half of the run of the recorder's per-layer
        curves `<prefix><layer>` (e.g. `nnaudit/update_ratio/fc1`); empty without them."""

        def compute():
            out = {}
            for key, c in self.extra_matching(prefix).items():
                v = c.values[len(c.values) // 2 :]
                v = v[np.isfinite(v)]
                if len(v):
                    out[key[len(prefix) :]] = float(np.median(v))
            return out

        return self._cached("layer_medians", prefix, compute)

    def update_ratios(self) -> dict[str, float]:
        """Per layer, the median update/weight ratio ||dW||/||W|| over the second half of the run.
        Empty on L-BFGS runs: a line search, not a learning rate, sets their step, so the ratio
        says nothing about a learning-rate setting (the learning-rate rules then read the curves)."""
        if self.lbfgs():
            return {}
        return self.layer_medians(UPDATE_RATIO_PREFIX)

    def fact(self, *path: str) -> Any:
        """A fact the recorder wrote into its diagnostics artifact (None when absent); the paths
        are listed in `schema.DIAGNOSTICS_FIELDS`."""
        node: Any = self.diagnostics
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def moment(self, kind: str) -> Moment | None:
        """The recorder's evidence at one moment (`schema.MOMENTS`: the first non-finite training
        loss, the first loss spike, the first gradient-norm jump), None when it did not happen
        or the run was not recorded."""
        raw = self.fact("moments", kind)
        if not isinstance(raw, dict) or not isinstance(raw.get("step"), (int, float)):
            return None
        return Moment.from_fact(kind, raw)

    def moments(self) -> list[Moment]:
        """The moments the recorder kept, earliest step first."""
        found = [m for m in (self.moment(k) for k in schema.MOMENTS) if m is not None]
        return sorted(found, key=lambda m: (m.step, schema.MOMENTS.index(m.kind)))

    def explosion(self) -> Moment | None:
        """The first moment the training blew up while the data fed at that step (and the step
        before) was finite: a loss spike, a non-finite loss or a gradient jump that the inputs
        and targets do not explain (the learning-rate rules' evidence; see `Moment.data_finite`).
        None when nothing blew up, or when the first blow-up came with non-finite data."""
        for m in self.moments():
            if m.data_finite is False:
                return None  # the data explains the first blow-up (nonfinite_inputs)
            return m
        return None

    def underfit(self) -> Underfit | None:
        """The training loss's progress and end level next to the validation loss's (the shared
        reading of the underfitting rules)."""

        def compute():
            tr = self.levels(TRAIN_LOSS)
            if tr is None or tr.start <= 0:
                return None
            st = self.stall(TRAIN_LOSS)
            va = self.levels(VAL_LOSS)
            return Underfit(
                improvement=(tr.start - tr.end) / tr.start,
                train_end=tr.end,
                val_end=va.end if va is not None else None,
                flat_from=st.start_fraction if st is not None else None,
            )

        return self._cached("underfit", TRAIN_LOSS, compute)

    def recorded(self) -> bool:
        """Whether the recorder's facts about the run are there (then curve-only guesses about
        what the recorder measures directly are not needed)."""
        return isinstance(self.diagnostics, dict)

    def epoch_length(self, from_curve: bool = True) -> tuple[float, str] | None:
        """Optimizer steps per epoch and where that came from: the recorder's training
        DataLoader, params (`steps_per_epoch`, or a dataset size and a batch size), or (unless
        `from_curve` is False) an `epoch` curve logged against the step (Lightning, the HF
        Trainer; a hand-written loop that logs `epoch` at step = epoch reads as one step an epoch)."""
        bpe = self.fact("data_loader", "train", "batches_per_epoch")
        if isinstance(bpe, int) and bpe > 0:
            return float(bpe), "the training DataLoader"
        steps = self.param_float(*STEPS_PER_EPOCH_PARAMS)
        if steps is not None and steps[1] > 0:
            return steps[1], f"param {steps[0]}"
        n, bs = self.dataset_size(), self.batch_size()
        if n is not None and bs is not None and bs[0] > 0 and not bs[1].startswith("the recorder"):
            return float(math.ceil(n[0] / bs[0])), f"{n[1]} / {bs[1]}"
        ep = self.extra_curves.get("epoch") if from_curve else None
        if ep is not None and ep.finite.sum() >= 3:
            x, v = ep.steps[ep.finite], ep.values[ep.finite]
            if np.ptp(v) > 0 and np.ptp(x) > 0:
                slope = np.polyfit(x, v, 1)[0]  # epochs per step
                if slope > 0:
                    return float(1.0 / slope), f"the `{ep.key}` curve"
        return None

    def dataset_size(self) -> tuple[float, str] | None:
        """Training samples: the recorder's training DataLoader, else a param, else the cycle of
        batches the recorder saw fed in turn from the first step (a training set of a few batches
        sliced by hand, fed in the same order every epoch: the cycle is the whole set)."""
        n = self.fact("data_loader", "train", "dataset_size")
        if isinstance(n, int) and n > 0:
            return float(n), "the training DataLoader"
        p = self.param_float(*DATASET_SIZE_PARAMS)
        if p is not None and p[1] > 0:
            return p[1], f"param {p[0]}"
        n, k = (
            self.fact("inputs", "fingerprints", "cycle_samples"),
            self.fact("inputs", "fingerprints", "cycle_batches"),
        )
        if isinstance(n, int) and n > 0 and isinstance(k, int):
            return float(n), f"the recorder's training batches (a cycle of {k} batches, fed in turn every epoch)"
        return None

    def batch_size(self) -> tuple[float, str] | None:
        """Training batch size: the recorder's training DataLoader, a param, or the recorder's
        median input batch."""
        b = self.fact("data_loader", "train", "batch_size")
        if isinstance(b, int) and b > 0:
            return float(b), "the training DataLoader"
        p = self.param_float(*BATCH_SIZE_PARAMS)
        if p is not None and p[1] > 0:
            return p[1], f"param {p[0]}"
        b = self.fact("inputs", "train", "median_batch_size")
        return (float(b), "the recorder's input batches") if isinstance(b, int) and b > 0 else None

    def n_classes(self) -> tuple[int, str] | None:
        return self._cached("n_classes", "", self._n_classes)

    def _n_classes(self) -> tuple[int, str] | None:
        """Class count: the recorder's (width of the logits; 2 for a binary classifier over one logit,
        `_one_logit`), else a param, else, on a run without
        the recorder, the label map of a Hugging Face model config (`id2label`, logged by the
        Trainer's MLflow callback) on a run that logs an accuracy, when its labels were named
        (not the default `LABEL_0`, `LABEL_1`, ...) or the `architectures` param names a
        single-label classification head (`...For{Sequence,Image,Audio,Token}Classification`), and
        no multi-label or regression `problem_type`: every config carries a two-label map by
        default, and language-model scripts log a token accuracy, so the map alone names no classes.
        (A recorded run keeps the recorder's or a param's count, never the map's.)"""
        n = self.fact("loss", "n_classes")
        if isinstance(n, int) and n > 1:
            return n, "the recorder"
        if self._one_logit():
            return 2, "the recorder (one logit per sample)"
        p = self.param_float(*N_CLASSES_PARAMS)
        if p is not None and p[1] > 1:
            return int(p[1]), f"param {p[0]}"
        if self.recorded() or not (TRAIN_ACC in self.curves or VAL_ACC in self.curves):
            return None
        labels = self._cached("id2label", "", lambda: _literal(self.params.get("id2label")))
        head = self.params.get("architectures", "")
        problem = self.params.get("problem_type", "") or ""
        if not isinstance(labels, dict) or len(labels) < 2 or re.search(r"multi_label|regression", problem):
            return None
        named = not all(re.fullmatch(r"LABEL_\d+", str(v)) for v in labels.values())
        if named or CLASSIFIER_HEAD.search(head):
            return len(labels), "param id2label"
        return None

    def chance_loss(self) -> float | None:
        """A classifier's chance loss, ln C (the loss of a uniform guess): the recorder's (ln 2 for a binary
        cross-entropy over one output a sample, `_one_logit`), else from a class count (`n_classes`) on a run
        without the recorder. None for a regression."""
        chance = self.fact("loss", "chance_loss")
        if isinstance(chance, (int, float)) and not isinstance(chance, bool):
            return float(chance) if chance > 0 else None
        nc = self.n_classes() if not self.recorded() or self._one_logit() else None
        return math.log(nc[0]) if nc else None

    def _one_logit(self) -> bool:
        """The recorder saw a binary cross-entropy (with or without logits) over one output per sample, on targets
        exactly 0 or 1 and without `weight=`/`pos_weight=` (`loss.binary_targets` "hard"): a
        binary classifier, whose uniform guess (0.5) costs ln 2 as a 2-class softmax's does. Not with weights
        (`pos_weight = neg/pos` makes a 0.5 guess cost 2(1-p) ln 2, 1.25 at 10% positives), nor on soft targets
        (distillation, a regression onto [0, 1]: their floor is their own entropy), nor a multi-label BCE (K
        outputs a sample: sparse labels cost far less), nor on records from before those facts."""
        return self.one_label_per_sample() == "binary" and self.fact("loss", "binary_targets") == "hard"

    def one_label_per_sample(self) -> str | None:
        """The recorder saw a cross-entropy over one label per sample: "classes" (`cross_entropy`/`nll_loss` over
        class scores, a shape of one int) or "binary" (a binary cross-entropy over one output a sample); None
        otherwise (a sequence's or an image's labels, a multi-label BCE, a regression, no recorder)."""
        fn, shape = self.fact("loss", "loss_function"), self.fact("loss", "input_shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            return None
        if fn in ("cross_entropy", "nll_loss"):
            return "classes" if len(shape) == 1 else None
        one = fn in ("binary_cross_entropy", "binary_cross_entropy_with_logits") and math.prod(shape) == 1
        return "binary" if one else None

    def prior_loss(self) -> float | None:
        """The cross-entropy of predicting the label frequencies whatever the input: the entropy of the
        recorder's label histogram (natural log), the best a model that ignores its inputs can reach; ln C
        only on balanced labels, lower otherwise (a tagger whose labels are 67% `O` reaches 0.98 of ln 4
        = 1.39 by predicting the frequencies). The classifier's analogue of a regression's targets'
        variance. None without the histogram, on token-id labels (a sampled histogram over a vocabulary
        misses its rare words), on fewer than PRIOR_MIN_PER_CLASS labels per class on average (the
        plug-in entropy's downward bias is about (C - 1) / 2N nats: under 0.025 there), and on a loss
        given class weights or label smoothing (`loss.class_weighted`, `loss.label_smoothing`): a
        weighted cross-entropy that learned nothing sits at ln C or above (inverse-frequency weights
        make predicting the frequencies cost the mean of -ln p over the classes), and smoothing lifts
        the floor above the entropy. Measured on the training labels only."""
        counts = self.fact("loss", "label_counts")
        if not isinstance(counts, list) or len(counts) < 2 or self.token_id_labels():
            return None
        if self.fact("loss", "class_weighted") or self.fact("loss", "label_smoothing"):
            return None
        c = np.asarray([v for v in counts if isinstance(v, (int, float)) and v > 0], dtype=float)
        if len(c) < 2 or c.sum() < PRIOR_MIN_PER_CLASS * len(counts):
            return None
        p = c / c.sum()
        return float(-(p * np.log(p)).sum())

    def _at_prior(self, level: float, which: str) -> OutcomeHarm | None:
        """On clearly imbalanced labels, the "learned nothing" level of the outcome (`failed` only) read
        against the label frequencies' entropy (`no_signal_loss`): the outcome's level (`outcome_level`:
        the validation loss at its best, else the training loss at its end) at 95% of it or more, with
        the training loss at its end at 80% of it or more beside a validation loss (a model memorising
        noise gets a little under 95%). The training loss too, because the histogram is the training
        labels' (a balanced validation set scores the training frequencies at ln C or more, while its
        model fits its training labels well); not the "learned little" level, which heavy imbalance
        makes too easy to reach (a calibrated model with an AUC of 0.8 at 1% positives sits at 90% of
        that entropy)."""
        no_signal, tr = self.no_signal_loss(), self.levels(TRAIN_LOSS)
        if no_signal is None or tr is None or no_signal[0] >= self.chance_loss():
            return None
        prior, words = no_signal
        (share, severity, what), (little, _, _) = CHANCE_LEVELS
        if level < share * prior or tr.end < little * prior:
            return None
        return OutcomeHarm(severity, f"the {which} {fmt_num(level)}, {what} {words}")

    def no_signal_loss(self) -> tuple[float, str] | None:
        """The loss of a classifier that learned nothing from its inputs, with its words: the label
        prior's entropy (`prior_loss`) where it is clearly under ln C (by PRIOR_UNDER_CHANCE), else ln C
        (`chance_loss`). None for a regression."""
        chance = self.chance_loss()
        if not chance:
            return None
        prior = self.prior_loss()
        if prior is not None and prior < (1 - PRIOR_UNDER_CHANCE) * chance:
            return prior, f"predicting the label frequencies (their entropy {fmt_num(prior)}; ln C = {fmt_num(chance)})"
        return chance, f"chance (ln C = {fmt_num(chance)})"

    # --- the outcome ------------------------------------------------------------------------
    def outcome_level(self) -> tuple[float, str] | None:
        """The loss the outcome is read on (`outcome_harm`): the validation loss at its best, else where
        the training loss ended; with the words that say which. None when neither is finite."""
        val = self.curve(VAL_LOSS)
        vals = val.values[val.finite] if val is not None else np.array([])
        if len(vals):
            level, which = float(vals.min()), "validation loss at its best was"
        else:
            lv = self.levels(TRAIN_LOSS)
            if lv is None:
                return None
            level, which = lv.end, "training loss ended at"
        return (level, which) if math.isfinite(level) else None

    def outcome_harm(self) -> OutcomeHarm | None:
        """Harm in the run's outcome that needs no rule to name it, read against what an
        untrained model gives. The level read is the validation loss at its best (overfitting
        is judged by its own rule), else where the training loss ended. A classifier (chance =
        ln C, from the recorder or a class-count param) at 95% of it or more did not learn
        (`failed`); at 80% or more it learned little (`warning`); on clearly imbalanced labels also
        `failed` at 95% of the entropy of their frequencies (`_at_prior`). A regression (`mse_loss`, with the
        recorder's target statistics) is read the same way against its targets' variance, the MSE
        of predicting their mean (`targets_variance`), its analogue of ln C: at 95% of it or more
        (it explains under 5% of it) it is no better than predicting the mean (`failed`, the
        classifier's share); at a quarter or more it explains less than 75% of it (`warning`). Without
        the recorder's variance (curves only, an L1 or Huber loss), the validation R² the run logged at its
        best (`best_r2`) is read on the classifier's shares: 0.05 or less (95% of the variance left, no better
        than the mean) is `failed`, 0.2 or less (80%, little better) `warning`, whether or not it was still
        rising (as a classifier's loss near ln C is, still falling or not). These are absolute: where 0.1 is the
        best a domain's targets allow, they cry wolf (log such an R² under a name no role reads). A
        set-up risk found on such a run is a cause of it, not an advisory (see verdict.py). None
        when the outcome is fine or cannot be judged this way."""

        def compute():
            read = self.outcome_level()
            if read is None:
                return None
            level, which = read
            chance = self.chance_loss()
            if chance:
                for share, severity, what in CHANCE_LEVELS:
                    if level >= share * chance:
                        return OutcomeHarm(
                            severity, f"the {which} {fmt_num(level)}, {what} chance (ln C = {fmt_num(chance)})"
                        )
                return self._at_prior(level, which)
            var = self.targets_variance()
            for share, severity, what in MEAN_LEVELS if var else ():
                if level >= share * var:
                    return OutcomeHarm(
                        severity,
                        f"the {which} {fmt_num(level)}, {level / var:.0%} of the targets' variance "
                        f"({fmt_num(var)}){what}",
                    )
            r2 = None if var else self.best_r2()
            for share, severity, what in CHANCE_LEVELS if r2 is not None else ():
                if 1 - r2 >= share:
                    what = "worse than" if r2 < 0 else what
                    return OutcomeHarm(
                        severity,
                        f"the validation R² at its best was {fmt_num(r2)} ({max(r2, 0.0):.0%} of the targets' "
                        f"variance explained): {what} predicting their mean",
                    )
            return None

        return self._cached("outcome_harm", "", compute)

    def r2_curve(self, min_points: int = 3) -> Curve | None:
        """The validation R² the run logged (`curves.VAL_R2`: `val_r2`, `val_r2_score`, ...), its
        non-finite points dropped, with `min_points` or more left; None when there is none, when a
        value above 1 says it is no R² (1 - SS_res / SS_tot is 1 at most; a percentage is not read), or
        when the run logs an accuracy too (a classifier's `val_r2` is something else: ROUGE-2, a recall)."""
        c = self.finite_curve(VAL_R2, min_points=min_points)
        if c is None or TRAIN_ACC in self.curves or VAL_ACC in self.curves:
            return None
        return None if float(c.values.max()) > 1 + R2_SLACK else c

    def best_r2(self) -> float | None:
        """A regression's yardstick where the recorder gave none (curves only, or an L1 or Huber loss):
        the best validation R² the run logged itself (`r2_curve`), the share of the validation
        targets' variance its predictions explain (0: no better than their mean). None without one."""
        c = self.r2_curve()
        return float(c.values.max()) if c is not None else None

    def targets_variance(self, training: bool = False) -> float | None:
        """A regression's yardstick: the variance of its targets (the recorder's running statistics
        of the `mse_loss` targets on the checked training batches: `var`, computed stably), which is
        the MSE of always predicting their mean. Over several outputs a sample it is each output's own
        variance, averaged (`output_var`: the MSE of predicting each output's mean; 68 keypoints in pixels
        vary 15.7 px around their mean face but 31 px pooled, as the keypoints sit apart), else, on runs
        recorded before the recorder kept it, the pooled variance (predicting one constant). None without the
        recorder, for another loss (the variance is no yardstick for L1 or Huber), for an MSE not
        averaged over its elements (`reduction='sum'` is the batch size times that, found by review;
        the recorder reads the reduction from the loss's value), on a run recorded before the recorder
        kept `var` (float32 sqmean - mean^2 loses the variance when |mean| >> std), or targets that
        never vary. The evaluation targets' variance (`eval_targets`, the validation set's own, over
        every evaluation batch) is read first: it is what a validation MSE is held against, and a few
        checked training batches estimate it to within ~10% (a healthy-looking recommender flipped
        across the 95% line between two retrains). `training`: the training targets' own (a training MSE's yardstick)."""
        t = None if training else self.fact("loss", "eval_targets")
        ev = t.get("var") if isinstance(t, dict) else None
        if not isinstance(ev, (int, float)) or not math.isfinite(ev) or ev <= 0:
            t = self.fact("loss", "targets")  # (a constant or NaN validation target: the training targets')
        if self.fact("loss", "loss_function") != "mse_loss" or not isinstance(t, dict):
            return None
        if self.fact("loss", "reduction") != "mean":
            return None
        for var in (t.get("output_var"), t.get("var")):
            if isinstance(var, (int, float)) and not isinstance(var, bool) and math.isfinite(var) and var > 0:
                return float(var)
        return None

    # --- what kind of run this is (for `Rule.applies`) -------------------------------------
    def optimizer_name(self) -> str | None:
        """The optimizer's class name: the recorder's param `nnaudit.optimizer` (or its fact)."""
        name = self.params.get("nnaudit.optimizer") or self.fact("optimizer", "nnaudit.optimizer")
        return str(name) if name else None

    def fine_tuned(self) -> bool:
        """A model loaded from pretrained weights: the Hugging Face config's `_name_or_path` (logged by
        the Trainer's MLflow callback) names a checkpoint (empty for a model built from a config).
        Its usual learning rates are a decade lower than training from scratch (BERT: 2e-5..5e-5)."""
        return bool(str(self.params.get("_name_or_path", "")).strip())

    def lbfgs(self) -> bool:
        """Trained with L-BFGS: its steps come from a line search, not from a learning rate, and
        it is run full-batch by design."""
        return (self.optimizer_name() or "").upper() == "LBFGS"

    def full_batch(self) -> bool:
        """Every step sees the whole training set: one batch per epoch (the recorder's
        DataLoader), a batch size equal to the dataset size (loader facts or params), or one
        batch fingerprint repeated on an L-BFGS run (which calls the model on the same batch)."""
        if self.fact("data_loader", "train", "batches_per_epoch") == 1:
            return True
        n, bs = self.dataset_size(), self.batch_size()
        if n is not None and bs is not None and bs[0] >= n[0]:
            return True
        fp = self.fact("inputs", "fingerprints")
        return self.lbfgs() and isinstance(fp, dict) and fp.get("distinct") == 1

    def token_id_labels(self) -> bool:
        """The labels are token ids (a language model): a vocabulary-sized class count (the
        recorder's label histogram or logit width, or a param), an embedding as the first
        layer with at least 100 classes, or a last layer named `lm_head`. Their histogram is
        Zipf-like by nature."""
        counts = self.fact("loss", "label_counts")
        n_classes = len(counts) if isinstance(counts, list) else None
        if n_classes is None:
            nc = self.n_classes()
            n_classes = nc[0] if nc else None
        if n_classes is None:
            return False
        if n_classes >= TOKEN_VOCABULARY:
            return True
        layers = self.fact("model", "layers")
        names = list(layers) if isinstance(layers, dict) else []
        first, last = (names[0].lower(), names[-1].lower()) if names else ("", "")
        return is_lm_head(last) or (n_classes >= 100 and ("embed" in first or "encoder" == first))

    def image_inputs(self) -> bool:
        """The inputs are images (N, C, H, W): the model's first weight layer is a 2-d
        convolution (a 4-d kernel)."""
        layers = self.fact("model", "layers")
        if not isinstance(layers, dict):
            return False
        for shapes in layers.values():
            weights = [s for s in shapes if isinstance(s, list) and len(s) >= 2]
            if weights:
                return len(weights[0]) == 4
        return False

    # --- params -------------------------------------------------------------------------
    def param_float(self, *names: str, nonzero: bool = False) -> tuple[str, float] | None:
        """The first of the named params that parses as a number (case-insensitive names); with
        `nonzero`, the first that parses as one other than 0."""
        lowered = {k.lower(): (k, v) for k, v in self.params.items()}
        for name in names:
            hit = lowered.get(name.lower())
            if hit is None:
                continue
            try:
                value = float(hit[1])
            except (TypeError, ValueError):
                continue
            if not (nonzero and value == 0):
                return hit[0], value
        return None

    def lr_at(self, x: float | None) -> tuple[float, float] | None:
        """(first logged learning rate, learning rate at step x) from the lr curve, if logged."""
        c = self.curve(LEARNING_RATE)
        if c is None or x is None or not c.finite.any():
            return None
        cx, cv = c.x()[c.finite], c.values[c.finite]
        before = cv[cx <= x]
        return float(cv[0]), float(before[-1] if len(before) else cv[0])

    def learning_rate(self) -> tuple[str, float] | None:
        """The run's learning rate as far as params tell (the recorder logs it; users often do). A
        rate of 0 is where a warm-up starts (the Hugging Face Trainer's linear warm-up from 0, read by
        the recorder when it first saw the optimizer), not the rate the run trains at: the next param
        that names one is read instead, else the peak of the logged learning rate."""
        names = (schema.PARAM_OPTIMIZER_LR, *LR_PARAMS)
        found = self.param_float(*names, nonzero=True)
        if found is not None:
            return found
        c = self.curve(LEARNING_RATE) if self.param_float(*names) is not None else None
        peak = float(np.nanmax(c.values[c.finite])) if c is not None and c.finite.any() else 0.0
        return (c.key, peak) if c is not None and peak > 0 else None


#: params that name the same thing in different codebases (Lightning hparams, HF TrainingArguments, ...)
LR_PARAMS = ("lr", "learning_rate", "learning-rate", "optimizer.lr", "optimizer_lr", "base_lr")
STEPS_PER_EPOCH_PARAMS = ("steps_per_epoch", "num_update_steps_per_epoch", "batches_per_epoch")
DATASET_SIZE_PARAMS = (
    "n_train",
    "train_size",
    "num_train_samples",
    "num_train_examples",
    "train_samples",
    "dataset_size",
    "n_samples",
    "num_samples",
)
BATCH_SIZE_PARAMS = ("batch_size", "train_batch_size", "per_device_train_batch_size", "batch-size", "bs")
N_CLASSES_PARAMS = ("n_classes", "num_classes", "num_labels", "classes", "n_labels")
#: a class count this large is a vocabulary: the labels are token ids
TOKEN_VOCABULARY = 1000
#: `prior_loss` needs this many recorded labels per class (its bias is then under 1/40 nat)
PRIOR_MIN_PER_CLASS = 20
#: the label prior's entropy replaces ln C as "learned nothing" only this far under it (balanced labels: the same)
PRIOR_UNDER_CHANCE = 0.05


#: a classifier's loss at these shares of ln C or above: no better than chance, little better
CHANCE_LEVELS = ((0.95, "failed", "no better than"), (0.8, "warning", "little better than"))
#: a regression whose MSE ends above this share of its targets' variance explains too little of it
UNEXPLAINED_VARIANCE = 0.25
#: an R² this far above 1 (float rounding of 1 - SS_res / SS_tot) is no R²
R2_SLACK = 1e-6
#: a regression's MSE at these shares of its targets' variance (the MSE of predicting their mean) or
#: above: no better than the mean (the classifier's CHANCE_LEVELS failed share: under 5% of it
#: explained), and explaining less than 75% of it
MEAN_LEVELS = (
    (CHANCE_LEVELS[0][0], "failed", ": no better than predicting their mean"),
    (UNEXPLAINED_VARIANCE, "warning", ""),
)


@dataclass(frozen=True)
class OutcomeHarm:
    """Harm seen in a run's outcome without a rule (see `RunView.outcome_harm`)."""

    severity: str  # "failed" | "warning"
    summary: str


@dataclass(frozen=True)
class Moment:
    """One moment the recorder kept evidence of (`diagnostics.moments.<kind>`)."""

    kind: str  # one of schema.MOMENTS
    step: int
    loss: float | None  # the training loss at that step (None when non-finite or not read)
    previous_loss: float | None  # the last finite loss before it
    loss_median: float | None  # the running median of the recent losses
    grad_norm: float | None
    grad_norm_median: float | None  # the median of the earlier sampled gradient norms (grad jumps)
    inputs_nonfinite: float | None  # share of NaN/Inf in that step's model input (None: not seen)
    targets_nonfinite: float | None  # ... in its loss target
    previous_inputs_nonfinite: float | None  # ... in the step before's model input
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_fact(cls, kind: str, raw: dict) -> Moment:
        def share(*path: str) -> float | None:
            node: Any = raw
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            return float(node) if isinstance(node, (int, float)) else None

        def num(key: str) -> float | None:
            v = raw.get(key)
            return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

        return cls(
            kind=kind,
            step=int(raw["step"]),
            loss=num("loss"),
            previous_loss=num("previous_loss"),
            loss_median=num("loss_median"),
            grad_norm=num("grad_norm"),
            grad_norm_median=num("grad_norm_median"),
            inputs_nonfinite=share("inputs", "nonfinite_share"),
            targets_nonfinite=share("targets", "nonfinite_share"),
            previous_inputs_nonfinite=share("previous", "inputs", "nonfinite_share"),
            raw=raw,
        )

    @property
    def data_finite(self) -> bool | None:
        """False when that step's input or target held NaN/Inf, True when both were seen and
        finite, None when neither was seen."""
        shares = [s for s in (self.inputs_nonfinite, self.targets_nonfinite) if s is not None]
        if not shares:
            return None
        return not any(s > 0 for s in shares)


@dataclass(frozen=True)
class Underfit:
    """How far the training loss got, and where it and the validation loss ended."""

    improvement: float  # (start - end) / start of the training loss
    train_end: float
    val_end: float | None
    flat_from: float | None  # share of the run from which the training loss is flat; None: never

    def signature(self, max_improvement: float, need_flat: bool = True) -> bool:
        """The underfitting shape: little progress, flat from the first half on (unless
        `need_flat` is off), and no generalisation gap (validation within 10% of training, or
        no validation curve)."""
        no_gap = self.val_end is None or self.val_end <= 1.1 * self.train_end
        flat = self.flat_from is not None and self.flat_from <= 0.5
        return self.improvement < max_improvement and (flat or not need_flat) and no_gap


#: a stretch is "flat" when its whole 90% interval of change fits within this share of the
#: curve's starting level (starting point from practice; see tests/test_stats.py)
FLAT_TOLERANCE = 0.05


def _shared_axis(train: Curve, val: Curve) -> tuple[np.ndarray, np.ndarray]:
    """Put train and validation curves on one axis. Steps when both use the same step unit;
    timestamps when the steps clearly disagree (per-step training loss, per-epoch validation
    loss logged with step=epoch)."""
    t_span = np.ptp(train.steps) if len(train.steps) else 0
    v_span = np.ptp(val.steps) if len(val.steps) else 0
    same_unit = t_span > 0 and v_span > 0 and 0.5 <= v_span / t_span <= 2.0
    have_times = len(train.timestamps) == len(train.values) and len(val.timestamps) == len(val.values)
    if same_unit or not have_times or np.ptp(train.timestamps) == 0:
        return train.steps, val.steps
    return train.timestamps, val.timestamps


class Rule:
    """Base class of a rule: decides one cause. Subclasses set `cause` and implement `evaluate`.

    The subclass docstring says how the cause is detected, for docs/causes.md.
    """

    cause: ClassVar[str]
    #: what the rule reads from the recorder besides the curves it reads by role (training and
    #: validation loss, accuracy, learning rate, gradient norm, whoever logged them): stored metric
    #: keys, or key prefixes ending in "/" (`schema.layer_prefix`), fact paths into the diagnostics
    #: artifact as tuples (`("model", "depth")`), and `nnaudit.` params. The audit fetches the
    #: curves named here (`rules.curves_read_by`); tests/test_schema.py checks that the recorder
    #: can write every one of them.
    reads: ClassVar[tuple[str | tuple[str, ...], ...]] = ()
    #: causes that, when also found on the run, explain this rule's evidence better; the
    #: finding is then left out (e.g. a loss that climbs when the data arrives sorted by label
    #: says nothing about the learning rate)
    explained_by: ClassVar[tuple[str, ...]] = ()
    #: causes that, when also found on the run, this rule's finding is a consequence of: it is
    #: listed after the upstream cause, and the upstream cause's recommendation says so (an
    #: explosion that killed the ReLUs: `dead_relu` is a consequence of `learning_rate_too_high`)
    consequence_of: ClassVar[tuple[str, ...]] = ()
    #: causes whose finding on the run contradicts this rule's: the finding is then dropped (no
    #: "learning rate too low" on a run whose loss exploded)
    contradicted_by: ClassVar[tuple[str, ...]] = ()

    def applies(self, view: RunView) -> bool:
        """Whether the check means anything for this kind of run; a rule that does not apply is
        not run at all (repeated batches on full-batch training, class imbalance on token ids).
        Subclasses override it with the view's facts about the run (`RunView.full_batch`, ...)."""
        return True

    def evaluate(self, view: RunView) -> Finding | None:  # pragma: no cover - interface
        raise NotImplementedError

    def finding(self, **kwargs: Any) -> Finding:
        return Finding(cause=self.cause, **kwargs)


def _literal(text: str | None) -> Any:
    """A param's value read as a Python literal (a dict logged by its `repr`), None when it is not one."""
    if not text:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def is_lm_head(name: object) -> bool:
    """A layer named `lm_head`: a language model's token head (Hugging Face's *LMHeadModel and
    *ForCausalLM, nanoGPT), which predicts tokens whatever the vocabulary's size, bias-free by
    design (its weight is tied to the token embedding)."""
    return str(name).lower().endswith("lm_head")


def fmt_step(x: float | None) -> str:
    """A step for a sentence: 1,240."""
    if x is None or not math.isfinite(x):
        return "?"
    return f"{int(round(x)):,}"


def fmt_factor(f: float) -> str:
    """A growth factor for a sentence: 12x, 4,000x, 3.2e+17x."""
    if not math.isfinite(f):
        return "inf-fold"
    if f < 1e6:
        return f"{f:,.0f}x"
    return f"{f:.1e}x"


def fmt_num(v: float | None) -> str:
    """A value for a sentence: 3 significant digits."""
    if v is None:
        return "?"
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Inf" if v > 0 else "-Inf")
    return f"{v:.3g}"
