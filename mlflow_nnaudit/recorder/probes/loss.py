"""What the loss function is fed, and the evaluation losses nobody logged.

Fed through the probe interface (`on_loss`) from the wrapper around torch's functional losses (`torch.nn.functional.cross_entropy`,
`nll_loss`, `mse_loss`, ...; the loss modules call these too), not by optimizer steps:

- a loss computed while autograd is off, or while the model is in eval mode, is an
  evaluation loss: consecutive ones are averaged (weighted by batch size) into one
  `val_loss` point at the current step;
- on the first few training calls and on sampled steps, the loss input is checked against
  what the loss expects: probabilities fed to `cross_entropy` (softmax applied twice), raw
  logits fed to `nll_loss`, a sigmoid's output fed to `binary_cross_entropy_with_logits`
  (read from the input's autograd graph), and, for the element-wise regression losses
  (`mse_loss`, `l1_loss`, `smooth_l1_loss`, `huber_loss`), predictions and targets whose
  shapes broadcast to more elements than either (`(N,)` against `(N, 1)` gives `(N, N)`:
  every prediction is compared with every target, so the model can learn only their mean;
  torch only warns), read from the shapes alone;
- the class count and the first training loss (an untrained classifier starts near ln C);
- label histogram and distinct labels per batch (classification targets), target
  statistics and the sign range of outputs vs targets (regression).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.probes.base import Probe, as_real

#: the loss call being observed, (function name, args, kwargs), set by `patches._after_loss` around
#: it and None otherwise: `class_index_options` reads it on the calls the probe checks
CALL: tuple[str, tuple, dict] | None = None
#: loss functions whose input should be class scores (logits) over dim 1
_LOGIT_LOSSES = ("cross_entropy",)
_LOG_PROB_LOSSES = ("nll_loss",)
#: losses fed log-probabilities over their last dimension, (T, N, C) for ctc_loss
_SEQUENCE_LOG_PROB_LOSSES = ("ctc_loss",)
_BINARY_LOGIT_LOSSES = ("binary_cross_entropy_with_logits",)
_BINARY_LOSSES = ("binary_cross_entropy", *_BINARY_LOGIT_LOSSES)
_REGRESSION_LOSSES = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
#: loss functions read when called with reduction='none' (`LossProbe._per_sample_call`): not `nll_loss`,
#: often a gather of log-likelihoods that are no class scores (a point process's intensities, a policy's actions)
_PER_SAMPLE_READ = ("cross_entropy", *_BINARY_LOSSES, *_REGRESSION_LOSSES)
#: the classification losses: an input that is exactly 0 (or 1) for every sample is a bug there
_CLASSIFICATION_LOSSES = _LOGIT_LOSSES + _LOG_PROB_LOSSES + _BINARY_LOGIT_LOSSES + ("binary_cross_entropy",)
#: the reduction of mse_loss is read (once) only where its squared differences hold at most this many
#: values (40 MB in float32): the check makes a temporary of that size
MAX_REDUCTION_CHECK = 10_000_000
#: backward calls on sampled steps whose loss function outputs are kept against the loss backpropagated
#: (`pair_objective`): the first this many
MAX_OBJECTIVE_STEPS = 64
#: evaluation calls of a regression loss whose targets are summarised (`eval_targets`)
MAX_EVAL_TARGET_BATCHES = 200
#: the first this many of them give the share at the start (a penalty that has already zeroed the
#: weights weighs little later on: the start shows what drove the first steps)
OBJECTIVE_START_STEPS = 3
#: how many training calls are always checked before checks fall back to sampled steps
CHECK_FIRST_CALLS = 5
#: optimizer steps (after the first update) on which a single-output classification loss's checked input must be
#: one exact 0 or 1 (`_constant_mismatch`)
CONSTANT_STEPS_NEEDED = 2
#: checked calls that must all lie in [0, 1] before binary_cross_entropy_with_logits is said to
#: be fed probabilities, when the input carries no autograd graph to tell
BINARY_CHECKS_NEEDED = 5
#: autograd nodes that only reshape or copy a tensor: looked through to the op that made it
_PASS_THROUGH = (
    "Squeeze",
    "Unsqueeze",
    "View",
    "Reshape",
    "Expand",
    "Permute",
    "Transpose",
    "Clone",
    "ToCopy",
    "Select",
    "Slice",
    "Flatten",
    "Contiguous",
    "Alias",
)


#: activations told from a loss input's autograd graph: their backward node's name -> the module's
_ACTIVATIONS = {"Sigmoid": "Sigmoid", "Relu": "ReLU", "Tanh": "Tanh", "Softplus": "Softplus"}


def made_by(x: Any) -> str | None:
    """The activation that computed `x` (torch.sigmoid, nn.ReLU, F.tanh, ...), possibly followed by
    reshapes: "Sigmoid", "ReLU", "Tanh" or "Softplus"; "" for anything else; None when `x` has no
    autograd graph (no grad, or a leaf)."""
    fn = getattr(x, "grad_fn", None)
    if fn is None:
        return None
    for _ in range(8):
        name = type(fn).__name__
        made = next((m for node, m in _ACTIVATIONS.items() if name.startswith(node + "Backward")), None)
        if made is not None:
            return made
        if not name.startswith(_PASS_THROUGH):
            return ""
        inputs = [f for f, _ in fn.next_functions if f is not None]
        if len(inputs) != 1:
            return ""
        fn = inputs[0]
    return ""


def _shape(shape: tuple[int, ...]) -> str:
    """A shape as Python writes a tuple: (32,), (32, 1)."""
    return str(tuple(int(d) for d in shape))


def _batch_size(t: torch.Tensor) -> int:
    return int(t.shape[0]) if t.dim() > 0 else 1


def _whole(q: float) -> bool:
    """`q` is a whole number >= 1 to float32 precision: a sum divided by a count (a penalty added to it
    makes the ratio a fraction of that count, which lands this close to a whole number rarely)."""
    return q >= 0.999 and abs(q - round(q)) <= 1e-4 * q


def class_index_options(call: tuple[str, tuple, dict] | None) -> tuple[bool, float, int] | None:
    """What moves a class-index loss off the label frequencies' entropy, from the call's arguments by
    keyword or position (`F.cross_entropy(input, target, weight, size_average, ignore_index, reduce,
    reduction, label_smoothing)`; `F.nll_loss` the same without the last): class weights given, the
    label smoothing, the ignore_index (a Python int; -100 when it cannot be read as one). None for
    another loss or no call."""
    if call is None or call[0] not in _LOGIT_LOSSES + _LOG_PROB_LOSSES:
        return None
    fn, args, kwargs = call

    def arg(name: str, pos: int, default):
        return kwargs[name] if name in kwargs else args[pos] if len(args) > pos else default

    try:
        ignore = operator.index(arg("ignore_index", 4, -100))
    except TypeError:
        ignore = -100
    try:
        smoothing = float(arg("label_smoothing", 7, 0.0) or 0.0) if fn in _LOGIT_LOSSES else 0.0
    except (TypeError, ValueError):
        smoothing = 0.0
    return arg("weight", 2, None) is not None, smoothing, ignore


def binary_weighted(call: tuple[str, tuple, dict] | None) -> bool:
    """A binary cross-entropy call given element weights or a `pos_weight` (`F.binary_cross_entropy(input,
    target, weight, ...)`, `F.binary_cross_entropy_with_logits(input, target, weight, size_average, reduce,
    reduction, pos_weight)`, by keyword or position): a 0.5 guess then costs other than ln 2."""
    if call is None or call[0] not in _BINARY_LOSSES:
        return False
    fn, args, kwargs = call
    weight = kwargs["weight"] if "weight" in kwargs else args[2] if len(args) > 2 else None
    pos = kwargs.get("pos_weight", args[6] if len(args) > 6 and fn in _BINARY_LOGIT_LOSSES else None)
    return weight is not None or pos is not None


class LossProbe(Probe):
    """See the module docstring. All statistics stay tensors until the session flushes."""

    name = "loss"

    def __init__(self) -> None:
        self.loss_fn: str | None = None
        self.n_classes: int | None = None
        self.first_loss: torch.Tensor | None = None
        self.input_shape: list[int] | None = None  # the first training loss call's input, past the batch
        self.mismatch: dict[str, Any] | None = None
        # binary_cross_entropy_with_logits inputs without a graph: checked calls that lay entirely
        # in [0, 1], and whether any lay outside (or a graph showed no sigmoid): that settles it
        self._unit_interval_calls = 0
        self._outside_unit_interval = False
        # a single-output classification loss's checked inputs of one exact 0 or 1 for every sample, after the
        # first update: the optimizer steps they were seen on (up to CONSTANT_STEPS_NEEDED), the value and the
        # function (`_constant_mismatch`); the step of the current call
        self._constant_steps: set[int] = set()
        self._constant_value: int | None = None
        self._constant_fn: str | None = None
        self._step = 0
        self.train_calls = 0
        self.label_counts: torch.Tensor | None = None
        #: a class-index loss given class weights, or label smoothing (largest seen): the no-signal loss is
        #: then not the label frequencies' entropy (`patches._after_loss` tells)
        self.class_weighted = False
        self.label_smoothing = 0.0
        self.target_stats: dict[str, Any] | None = None
        #: a regression loss's evaluation targets, over the first MAX_EVAL_TARGET_BATCHES evaluation calls:
        #: the validation set's own variance, the yardstick of a validation MSE
        self.eval_target_stats: dict[str, Any] | None = None
        self._eval_target_batches = 0
        self.output_stats: dict[str, Any] | None = None
        #: mse_loss's output over its own mean of squared differences on the first checked call, and the
        #: element count: 1 for reduction='mean', the count for 'sum' (the variance is a yardstick of the first only)
        self._mse_ratio: torch.Tensor | None = None
        self._mse_numel = 0
        self._val_sum: torch.Tensor | None = None
        self._val_n = 0
        #: the activation a logit loss's training input came out of (`made_by`), when one did
        self.input_activation: str | None = None
        #: the loss function's training outputs on the current sampled step (summed), and per sampled
        #: step that value against what was backpropagated (`pair_objective`), as tensors
        self._step_out: torch.Tensor | None = None
        self._step_raw: torch.Tensor | None = None
        self._step_calls = 0
        self._objective: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]] = []
        #: a loss function called with `reduction='none'` (its per-sample outputs reduced by the run's own
        #: code: a focal or poly loss), read while no reduced call has been seen (`_per_sample_call`)
        self.per_sample_fn: str | None = None
        self._per_sample_calls = 0
        #: a binary cross-entropy's checked targets (of the function the run is read by): whether any was other
        #: than exactly 0 or 1 (soft labels, distillation, a regression onto [0, 1]), a tensor once one was
        #: checked (None before), and whether a call had `weight=`/`pos_weight=`
        self.binary_soft: torch.Tensor | None = None
        self.binary_weighted = False

    # --- called for every loss function call --------------------------------------------------
    def on_loss(
        self, fn: str, inp: Any, target: Any, out: Any, evaluating: bool, sampled: bool, step: int
    ) -> dict[str, Any]:
        self._step = step
        return self.observe(fn, inp, target, out, evaluating, sampled)

    def observe(
        self, fn: str, inp: torch.Tensor, target: Any, out: torch.Tensor, evaluating: bool, sampled: bool
    ) -> dict[str, Any]:
        """Record one loss call; returns metrics to log now (e.g. labels per batch)."""
        if not isinstance(inp, torch.Tensor) or not isinstance(out, torch.Tensor):
            return {}
        if out.dim() != 0:  # torch's reductions give a 0-dim tensor; 'none' one value a sample, [1] for a batch of 1
            return self._per_sample_call(fn, inp, target, out, evaluating, sampled)
        if self.per_sample_fn is not None and not evaluating and self.loss_fn is None:
            self._drop_per_sample()
        if evaluating:
            n = _batch_size(inp)
            v = out.detach().float() * n
            self._val_sum = v if self._val_sum is None else self._val_sum + v.to(self._val_sum.device)
            self._val_n += n
            if (
                fn in _REGRESSION_LOSSES
                and self._eval_target_batches < MAX_EVAL_TARGET_BATCHES
                and isinstance(target, torch.Tensor)
                and target.is_floating_point()
            ):
                self._eval_target_batches += 1
                with torch.no_grad():
                    self.eval_target_stats = _merge_stats(self.eval_target_stats, target.detach(), per_output=True)
            return {}
        self.train_calls += 1
        if sampled or self.train_calls <= CHECK_FIRST_CALLS:
            # kept on sampled steps and on the first calls, whose steps are never the quiet kind (a tiny
            # model's time budget may sample only two or three steps in a whole run: the share then
            # rested on too few to read, and the verdict on timing). A loss read per sample from a sum
            # (`patches._per_sample`): the sum too, for a loop that backpropagates the sum itself
            v = out.detach().float()
            raw = v * getattr(out, "_nnaudit_sum", 1.0)
            self._step_out = v if self._step_out is None else self._step_out + v.to(self._step_out.device)
            self._step_raw = raw if self._step_raw is None else self._step_raw + raw.to(self._step_raw.device)
            self._step_calls += 1
        if self.loss_fn is None:
            self.loss_fn = fn
            self.first_loss = out.detach().float()
            self.input_shape = _per_sample_shape(inp)
            if fn in _LOGIT_LOSSES + _LOG_PROB_LOSSES and inp.dim() >= 2:
                self.n_classes = int(inp.shape[1])
        if self.train_calls > CHECK_FIRST_CALLS and not sampled:
            return {}
        with torch.no_grad():
            self._check_shapes(fn, inp, target)
            made = made_by(inp)
            self._check_input(fn, inp.detach(), None if made is None else made == "Sigmoid")
            if made and fn in _LOGIT_LOSSES and self.input_activation is None:
                self.input_activation = made  # logits through an activation: bounded, or cut at 0
            if fn == "mse_loss" and self._mse_ratio is None and isinstance(target, torch.Tensor):
                self._reduction_ratio(inp.detach(), target.detach(), out.detach())
            return self._targets(fn, inp.detach(), target, class_index_options(CALL))

    def _per_sample_call(
        self, fn: str, inp: torch.Tensor, target: Any, out: torch.Tensor, evaluating: bool, sampled: bool
    ) -> dict[str, Any]:
        """A training call with one output per sample (`reduction='none'`) while no reduced call has been
        seen: the loss is the run's own (a focal loss, PolyLoss, a masked or weighted mean) built on this
        function. What it is fed is read as for a reduced call: the class count and label histogram, the
        input checks (softmax before `cross_entropy`, a sigmoid before the logit loss), a regression's
        targets. Not its value: the objective is not the function's mean, so no first loss, chance level,
        evaluation loss or objective share comes of it; nor the broadcast check (a per-sample loss may pair
        every prediction with every target on purpose, as a pairwise loss does). The first function seen
        this way is the one read; the first reduced training call takes over (`_drop_per_sample`)."""
        if evaluating or self.loss_fn is not None or self.per_sample_fn not in (None, fn) or fn not in _PER_SAMPLE_READ:
            return {}
        if inp.dim() == 0 or out.dim() == 0 or out.shape[0] != inp.shape[0]:
            return {}
        self.per_sample_fn = fn
        # (not `train_calls`: the session's quiet steps wait for a reduced call's first checks, so that one
        # arriving later is seen whether its step is sampled or not)
        self._per_sample_calls += 1
        if self._per_sample_calls > CHECK_FIRST_CALLS and not sampled:
            return {}
        if self.n_classes is None and fn in _LOGIT_LOSSES + _LOG_PROB_LOSSES and inp.dim() >= 2:
            self.n_classes = int(inp.shape[1])
        with torch.no_grad():
            made = made_by(inp)
            self._check_input(fn, inp.detach(), None if made is None else made == "Sigmoid")
            if made and fn in _LOGIT_LOSSES and self.input_activation is None:
                self.input_activation = made
            return self._targets(fn, inp.detach(), target, class_index_options(CALL))

    def _drop_per_sample(self) -> None:
        """A reduced training call after per-sample ones: the reduced one is the loss function the run is
        read by; what the per-sample calls gathered (another function's labels or targets) is dropped. A
        mismatch they found stays: a bug in what a loss function is fed is one whatever reduces it."""
        self.per_sample_fn = None
        self.n_classes = self.label_counts = self.target_stats = self.output_stats = self.input_activation = None
        self.binary_soft, self.binary_weighted = None, False
        self._unit_interval_calls, self._outside_unit_interval = 0, False
        self.class_weighted, self.label_smoothing = False, 0.0

    def pair_objective(self, backpropagated: torch.Tensor) -> None:
        """A backward call: keep the loss functions' training outputs seen since the last one (summed,
        on sampled steps) next to the loss it backpropagates, and how many calls they were. Their
        ratio is the loss function's share of the objective the optimizer minimised: 1 for a plain
        loss, below 1 when terms the user added by hand (an L1/L2 penalty) weigh on it or the loss is
        weighted up, above 1 when it is scaled down (gradient accumulation). Tensors only: no device
        sync on the step."""
        out, raw, calls = self._step_out, self._step_raw, self._step_calls
        self._step_out, self._step_raw, self._step_calls = None, None, 0
        if out is None or len(self._objective) >= MAX_OBJECTIVE_STEPS:
            return
        self._objective.append((out, raw, backpropagated.detach().float().to(out.device), calls))

    def _objective_share(self) -> dict[str, Any]:
        """The loss functions' share of what was backpropagated, and the factor that reads the training
        loss per sample. A `reduction='sum'` call is read both ways, per sample (a) and as the sum (r):
        what the loop backpropagated (b) may be the sum itself, the sum over the batch size (a sum over
        the outputs, per sample: a/b = 1/outputs), over the token count (the Hugging Face causal-LM loss:
        a/b = 1), over accumulation steps, with a penalty added... Its share is the reading within 2x of
        1 (nearer 1 of the two), and the pair is left out of the share when neither is (which scale the
        loop applied is not known: a share of 1/outputs read as a penalty was found by review). For
        every other reduction the two are the same."""
        kept = [(float(a), float(r), float(b), k) for a, r, b, k in self._objective]
        kept = [
            (a, r, b, k)
            for a, r, b, k in kept
            if math.isfinite(a) and math.isfinite(r) and math.isfinite(b) and a > 0 and r > 0 and b > 0
        ]
        pairs = []
        for a, r, b, k in kept:
            near = min((a / b, r / b), key=lambda q: abs(math.log(q)))
            if r == a or 0.5 <= near <= 2.0:
                pairs.append((near, k))
        # a summed call's per-sample reading over what was backpropagated: the factor that puts the
        # training loss (`nnaudit/train_loss`, the loss backpropagated) in the units of the first and
        # evaluation losses, which are per sample; when most paired calls were summed and scaled
        # cleanly (the sum over a whole number: itself, the batch size, accumulation steps, the token
        # count), not with a penalty added (its share read as a unit, found by review), and below 1
        summed = [(a, r, b) for a, r, b, _ in kept if r != a]
        clean = sorted(a / b for a, r, b in summed if _whole(r / b))
        factor = clean[len(clean) // 2] if clean and 2 * len(clean) > len(kept) else None
        out: dict[str, Any] = {"train_loss_per_sample": factor if factor is not None and factor < 0.99 else None}
        if not pairs:
            return out if kept else {}
        shares = [share for share, _ in pairs]
        start = sorted(shares[:OBJECTIVE_START_STEPS])
        calls = sorted(k for _, k in pairs)
        return out | {
            "objective_share": sorted(shares)[len(shares) // 2],
            "objective_share_start": start[len(start) // 2],
            "objective_steps": len(shares),
            "objective_calls": calls[len(calls) // 2],
        }

    @property
    def has_val_loss(self) -> bool:
        """Evaluation losses are waiting to be taken."""
        return self._val_n > 0

    def take_val_loss(self) -> torch.Tensor | None:
        """The average evaluation loss since the last call, or None when there was none."""
        if self._val_sum is None or self._val_n == 0:
            return None
        value = self._val_sum / self._val_n
        self._val_sum, self._val_n = None, 0
        return value

    # --- checks ------------------------------------------------------------------------------
    def _reduction_ratio(self, x: torch.Tensor, target: torch.Tensor, out: torch.Tensor) -> None:
        """Which reduction mse_loss ran with, read from its value (the module passes `reduction` by
        keyword, F.mse_loss may get it positionally, legacy `size_average` too): once, as tensors."""
        if not (x.is_floating_point() and target.is_floating_point()):
            return
        if math.prod(torch.broadcast_shapes(x.shape, target.shape)) > MAX_REDUCTION_CHECK:
            return  # (a temporary of that size on the user's device: not worth it)
        sq = (as_real(x).float() - as_real(target).float().to(x.device)) ** 2  # broadcast as the loss did
        if sq.numel() == 0:
            return
        self._mse_ratio = out.float() / sq.mean().clamp_min(1e-30)
        self._mse_numel = int(sq.numel())

    def _reduction(self) -> str | None:
        if self._mse_ratio is None:
            return None
        r = float(self._mse_ratio)
        if abs(r - 1.0) <= 1e-2:
            return "mean"
        return "sum" if abs(r / max(self._mse_numel, 1) - 1.0) <= 1e-2 else "other"

    def _check_shapes(self, fn: str, x: torch.Tensor, target: Any) -> None:
        """An element-wise regression loss whose input and target broadcast to more elements than
        either holds: each prediction is compared with several targets (all of them, for `(N,)`
        against `(N, 1)`), and the loss is least at their mean. Shapes only, no tensor work."""
        if self.mismatch is not None or fn not in _REGRESSION_LOSSES or not isinstance(target, torch.Tensor):
            return
        a, b = tuple(x.shape), tuple(target.shape)
        if a == b:
            return
        try:
            both = tuple(torch.broadcast_shapes(a, b))
        except RuntimeError:  # torch raised in the loss itself already
            return
        if math.prod(both) <= max(math.prod(a), math.prod(b)):
            return  # one side repeated along the other (a scalar target, a per-feature weight): no pairing
        self.mismatch = {
            "loss": fn,
            "problem": "broadcast",
            "detail": f"predictions {_shape(a)} against targets {_shape(b)} broadcast to {_shape(both)}: every "
            "prediction is compared with every target, so the model can only learn their mean",
        }

    def _check_input(self, fn: str, x: torch.Tensor, sigmoid: bool | None = None) -> None:
        if self.mismatch is not None or not x.is_floating_point() or x.numel() == 0:
            return
        if (
            fn in _CLASSIFICATION_LOSSES
            and x.dim() >= 1
            and x.shape[0] >= 2
            and (x.dim() == 1 or x.shape[1] == 1)
            # not before any update (a zero-initialised output gives exactly 0), nor once settled (no sync)
            and self._step >= 1
            and len(self._constant_steps) < CONSTANT_STEPS_NEEDED
        ):
            value = 0 if bool((x == 0).all()) else 1 if bool((x == 1).all()) else None
            if value is not None and self._constant_value in (None, value):
                # the same exact 0 or 1 for every sample (see `_constant_mismatch`); per step, not cleared by another
                # call's varied input (a second, healthy head beside a buggy one)
                self._constant_value, self._constant_fn = value, fn
                self._constant_steps.add(self._step)
                return
        if fn in _LOGIT_LOSSES and x.dim() >= 2 and x.shape[1] > 1:
            sums = x.sum(dim=1)
            if bool(((x >= 0) & (x <= 1)).all()) and bool(((sums - 1).abs() < 1e-3).all()):
                self.mismatch = {
                    "loss": fn,
                    "problem": "probabilities",
                    "detail": "its input rows are probabilities (each in [0, 1], summing to 1): "
                    "softmax was applied before a loss that applies log-softmax itself",
                }
        elif (fn in _LOG_PROB_LOSSES and x.dim() >= 2 and x.shape[1] > 1) or (
            fn in _SEQUENCE_LOG_PROB_LOSSES and x.dim() >= 2 and x.shape[-1] > 1
        ):
            dim = 1 if fn in _LOG_PROB_LOSSES else -1
            lse = torch.logsumexp(x.float(), dim=dim)
            tol = 0.1 if x.element_size() < 4 else 1e-2  # a bf16 log_softmax over 1000 classes rounds 0.02 off
            if bool((x > 1e-6).any()) or bool(((lse).abs() > tol).any()):
                self.mismatch = {
                    "loss": fn,
                    "problem": "not_log_probabilities",
                    "detail": "its input is not log-probabilities (positive values, or rows whose "
                    f"exp does not sum to 1): raw logits were fed to {fn} without "
                    f"log_softmax (over dim={dim})",
                }
        elif fn in _BINARY_LOGIT_LOSSES:
            # The autograd graph tells directly whether a sigmoid made the input. The values
            # cannot tell on one batch: a binary classifier's logits often start inside [0, 1].
            if sigmoid:
                self.mismatch = {
                    "loss": fn,
                    "problem": "probabilities",
                    "detail": "its input is the output of a sigmoid: sigmoid was applied before a "
                    "loss that applies it itself",
                }
            elif sigmoid is False:
                self._outside_unit_interval = True  # the graph shows no sigmoid: the values are not asked
            elif not self._outside_unit_interval and x.numel() >= 16:
                if bool(((x >= 0) & (x <= 1)).all()):
                    self._unit_interval_calls += 1
                else:
                    self._outside_unit_interval = True

    def _constant_mismatch(self) -> dict[str, Any] | None:
        """A single-output classification loss whose input was the same exact 0 or 1 for every sample on
        checked calls of CONSTANT_STEPS_NEEDED optimizer steps or more, all after the first update:
        (log_)softmax over a single output unit (softmax over one value is 1, its log 0), whatever the
        inputs, so the loss cannot change. Not read before any update: a zero-initialised output layer (a
        logistic regression's usual start) gives exactly 0 until the first step moves it (through a
        gradient accumulation's micro-batches too); a warm-up starting at rate 0 keeps it at 0 one step
        more. Another loss call's varied input does not clear it (a healthy head beside the buggy one)."""
        if len(self._constant_steps) < CONSTANT_STEPS_NEEDED:
            return None
        value = self._constant_value
        return {
            "loss": self._constant_fn,
            "problem": "constant_input",
            "detail": f"its input is exactly {value} for every sample, step after step: "
            f"{'log_softmax' if value == 0 else 'softmax'} over a single output unit "
            "always gives that, so the loss cannot change (use a sigmoid, or "
            "binary_cross_entropy_with_logits on the raw output)",
        }

    def _binary_mismatch(self) -> dict[str, Any] | None:
        """For inputs without an autograd graph only, decided over the run, not on one batch:
        every checked input of binary_cross_entropy_with_logits lay in [0, 1], over at least
        BINARY_CHECKS_NEEDED calls (logits leave [0, 1] as the model learns; sigmoid outputs
        never can). Approximate: a model that learns little may keep its logits inside."""
        if self._outside_unit_interval or self._unit_interval_calls < BINARY_CHECKS_NEEDED:
            return None
        return {
            "loss": "binary_cross_entropy_with_logits",
            "problem": "probabilities",
            "detail": f"its input lay entirely in [0, 1] in all {self._unit_interval_calls} checked calls: "
            "sigmoid was applied before a loss that applies it itself",
        }

    def _targets(self, fn: str, x: torch.Tensor, target: Any, options: tuple | None = None) -> dict[str, Any]:
        if not isinstance(target, torch.Tensor):
            return {}
        metrics: dict[str, Any] = {}
        if options is not None:
            weighted, smoothing, _ = options
            self.class_weighted = self.class_weighted or bool(weighted)
            self.label_smoothing = max(self.label_smoothing, smoothing)
        if fn in _LOGIT_LOSSES + _LOG_PROB_LOSSES and not target.is_floating_point() and self.n_classes:
            t = target.flatten()
            keep = (t >= 0) & (t < self.n_classes)  # ignore_index and padding
            if options is not None and 0 <= options[2] < self.n_classes:
                keep &= t != options[2]  # an ignore_index inside the class range (padding tagged 0)
            t = t[keep]
            counts = torch.bincount(t, minlength=self.n_classes)
            self.label_counts = counts if self.label_counts is None else self.label_counts + counts
            metrics[schema.LABELS_PER_BATCH] = (counts > 0).sum()
        elif fn in _REGRESSION_LOSSES and target.is_floating_point():
            self.target_stats = _merge_stats(self.target_stats, target.detach(), per_output=True)
            self.output_stats = _merge_stats(self.output_stats, x)
        elif fn in _BINARY_LOSSES and target.numel() > 0 and fn == (self.loss_fn or self.per_sample_fn):
            # (an auxiliary BCE beside another loss function says nothing of the run's yardstick)
            self.binary_weighted = self.binary_weighted or binary_weighted(CALL)
            soft = ~((target == 0) | (target == 1)).all()  # a tensor: read when the summary is made
            self.binary_soft = soft if self.binary_soft is None else self.binary_soft | soft.to(self.binary_soft.device)
        return metrics

    def summary(self) -> dict[str, Any]:
        # a class count read from per-sample calls only is no chance level of the run's own loss
        out: dict[str, Any] = {"loss_function": self.loss_fn, "n_classes": self.n_classes if self.loss_fn else None}
        if self.per_sample_fn is not None:
            out["per_sample_loss"] = self.per_sample_fn
        if self.input_shape is not None:
            out["input_shape"] = self.input_shape
        if self.first_loss is not None:
            first = float(self.first_loss)
            out["first_loss"] = first
            if self.n_classes and self.n_classes > 1:
                out["chance_loss"] = math.log(self.n_classes)
        mismatch = self.mismatch or self._constant_mismatch() or self._binary_mismatch()
        if mismatch is not None:
            out["input_mismatch"] = mismatch
        if self.input_activation is not None:
            out["input_activation"] = self.input_activation
        if self.label_counts is not None:
            out["label_counts"] = [int(c) for c in self.label_counts.tolist()]
        if self.class_weighted:
            out["class_weighted"] = True
        if self.binary_soft is not None:
            out["binary_targets"] = "weighted" if self.binary_weighted else "soft" if bool(self.binary_soft) else "hard"
        if self.label_smoothing > 0:
            out["label_smoothing"] = self.label_smoothing
        if (reduction := self._reduction()) is not None:
            out["reduction"] = reduction
        for name, st in (
            ("targets", self.target_stats),
            ("outputs", self.output_stats),
            ("eval_targets", self.eval_target_stats),
        ):
            if st is not None:
                out[name] = _stats_summary(st)
        return out | self._objective_share()


def _per_sample_shape(inp: torch.Tensor) -> list[int] | None:
    """A loss input's shape past the batch dimension ([C]: one label's class scores; [] or [1]: one logit);
    None where a dimension is not a plain number (a nested tensor's ragged one)."""
    try:
        return [int(d) for d in inp.shape[1:]]
    except (TypeError, ValueError, AttributeError, RuntimeError):
        return None


#: running means kept per batch by `_merge_stats` (`wvar`: the batch's own variance; `dmean`, `dsq`: its
#: mean's offset from the first batch's mean, and that squared)
_RUNNING = ("mean", "sqmean", "wvar", "dmean", "dsq")


def _merge_stats(acc: dict[str, Any] | None, t: torch.Tensor, per_output: bool = False) -> dict[str, Any] | None:
    """Running min/max/mean/sq-mean over everything seen, and what the pooled variance needs
    computed stably (tensors, no device sync): each batch's own variance (two-pass) and the spread of
    the batch means around the first batch's mean. In float32, sqmean - mean^2 loses the variance to
    rounding when |mean| >> std (targets around 2000 with std 1 came out anywhere in -0.8..1.9)."""
    t = as_real(t).float()
    if t.numel() == 0:
        return acc
    m = t.mean()
    shift = acc["shift"] if acc is not None else m.detach().clone()
    d = m - shift.to(m.device)
    cur = {"min": t.min(), "max": t.max(), "mean": m, "sqmean": (t * t).mean(), "wvar": t.var(unbiased=False)}
    w = float(t.numel())  # each batch weighted by its size: a short last batch counts for what it holds
    cur |= {"dmean": d, "dsq": d * d, "n": torch.tensor(1.0), "w": w, "shift": shift}
    if per_output:
        cur |= _per_output(acc, t)
    if acc is None:
        return cur
    total = acc["w"] + w
    out = {k: acc[k] + (cur[k] - acc[k]) * (w / total) for k in _RUNNING}
    out |= {"min": torch.minimum(acc["min"], cur["min"]), "max": torch.maximum(acc["max"], cur["max"])}
    if "orows" in acc and "orows" in cur:  # each output's running moments, every row weighted alike
        rows = acc["orows"] + cur["orows"]
        out |= {k: acc[k] + (cur[k] - acc[k]) * (cur["orows"] / rows) for k in ("om1", "om2")}
        out |= {"orows": rows, "oshift": acc["oshift"]}
    return out | {"n": acc["n"] + 1, "w": total, "shift": shift}


def _per_output(acc: dict[str, Any] | None, t: torch.Tensor) -> dict[str, Any]:
    """Each output's running first and second moments around the first batch's per-output means (length-D
    tensors, D = the values a sample), for `output_var`: with several outputs a sample, across all batches, so
    an evaluation loader in time order (neighbouring windows alike) or a batch of one changes nothing. Nothing
    (and nothing kept after) for one output a sample, or when D changes between batches."""
    if t.dim() < 2 or t[0].numel() < 2 or (acc is not None and "orows" not in acc):
        return {}
    r = t.reshape(t.shape[0], -1)
    shift = acc["oshift"] if acc is not None else r.mean(0).detach().clone()
    if shift.shape[0] != r.shape[1]:
        return {}
    d = r - shift.to(r.device)
    return {"om1": d.mean(0), "om2": (d * d).mean(0), "orows": float(r.shape[0]), "oshift": shift}


def _stats_summary(st: dict[str, Any]) -> dict[str, float]:
    """min, max, mean, sqmean, n (batches) and the pooled variance `var` (mean within-batch variance
    plus the variance of the batch means, each batch weighted by its size); with several outputs a
    sample (keypoints, boxes, a forecast horizon), `output_var`: each output's own variance over every
    checked batch, averaged over outputs, the MSE of predicting each output's mean (`_per_output`)."""
    out = {k: float(st[k]) for k in ("min", "max", "mean", "sqmean", "n")}
    out["var"] = max(float(st["wvar"]) + float(st["dsq"]) - float(st["dmean"]) ** 2, 0.0)
    if "orows" in st:
        out["output_var"] = max(float((st["om2"] - st["om1"] ** 2).clamp(min=0).mean()), 0.0)
    return out
