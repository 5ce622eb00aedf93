"""Evidence at the moment it matters: the step where the training loss first becomes
non-finite, first spikes, or the gradient norm first jumps, with that step's input, target,
gradient and update statistics and the input and target statistics of the step before.

Sampled statistics are those of other batches: a NaN in 2% of the inputs is seen in the
sampled input statistics only by luck, while the batch that produced the first NaN loss is
exactly the evidence that separates "the data" from "the learning rate". So the session keeps
references to the current and the previous step's model input and loss target (one extra
batch alive, no copy, no statistics) and the statistics are computed only when a trigger fires,
at most once per kind of moment. What is kept is detached from autograd (`kept_loss_call`): the loss
input as it is (the model's output) would keep the step's autograd graph alive one step longer,
which costs a small model's step about 0.5% (`benchmarks/overhead.py`'s MLP, measured A/B).

The loss is read every step only when it lives on the CPU (a 0-d tensor read there costs
about a microsecond); a loss on an accelerator is looked at on sampled steps only, so that no
step waits for the device. The gradient norm is the one the gradient probe measures on
sampled steps, compared with the median of the earlier samples.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.probes.base import Probe
from mlflow_nnaudit.recorder.probes.gradients import foreach_norms

#: a loss at least this many times its running median is a spike; the same for the gradient norm
SPIKE_FACTOR = 10.0
#: finite losses looked back on for the running median
LOSS_HISTORY = 64
#: until this many finite losses are known, the threshold follows every step (from the first
#: loss on: an explosion at step 2 must be caught too)
MIN_LOSS_HISTORY = 8
#: the spike threshold is recomputed every this many finite losses (a median per step costs)
THRESHOLD_EVERY = 8
#: sampled gradient norms looked back on, and needed before a jump can be called
GRAD_HISTORY = 32
MIN_GRAD_HISTORY = 3


def tensor_stats(x: Any) -> dict[str, Any] | None:
    """numel, non-finite share, and min/max/mean/std of the finite values of a tensor (None when
    `x` is not one). Integer tensors (labels, token ids) get min/max/mean too."""
    if not isinstance(x, torch.Tensor) or x.numel() == 0:
        return None
    with torch.no_grad():
        v = x.detach().reshape(-1)
        if not v.is_floating_point():
            v = v.double() if not v.is_complex() else v.abs().double()
        v = v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
        finite = torch.isfinite(v)
        n_finite = int(finite.sum())
        out: dict[str, Any] = {
            "numel": int(v.numel()),
            "dtype": str(x.dtype).replace("torch.", ""),
            "nonfinite_share": round(1.0 - n_finite / v.numel(), 6),
        }
        if n_finite:
            f = v[finite]
            out.update(
                min=float(f.min()),
                max=float(f.max()),
                mean=float(f.mean()),
                std=float(f.std()) if n_finite > 1 else 0.0,
            )
    return out


def first_tensor(args: Any) -> torch.Tensor | None:
    """The first tensor of a call's positional arguments."""
    if isinstance(args, torch.Tensor):
        return args
    if isinstance(args, (tuple, list)):
        return next((a for a in args if isinstance(a, torch.Tensor)), None)
    return None


def _no_graph(x: Any) -> torch.Tensor | None:
    """`x` when it is a tensor outside autograd, detached when it is in a graph, else None."""
    if not isinstance(x, torch.Tensor):
        return None
    return x.detach() if x.requires_grad else x


def kept_loss_call(args: tuple, kwargs: dict) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(loss input, target) of a loss function's call, as the moment probe keeps them: detached,
    so that keeping them does not keep the step's autograd graph alive."""
    inp = args[0] if args else kwargs.get("input")
    target = args[1] if len(args) > 1 else kwargs.get("target")
    return _no_graph(inp), _no_graph(target)


class MomentProbe(Probe):
    """Watches the training loss (every step on the CPU, sampled steps elsewhere) and the sampled
    gradient norm for the first non-finite loss, loss spike and gradient jump."""

    name = "moments"

    def __init__(self) -> None:
        self.moments: dict[str, dict[str, Any]] = {}
        self._history: deque[float] = deque(maxlen=LOSS_HISTORY)  # recent finite losses
        self._threshold = math.inf  # SPIKE_FACTOR x the running median, once known
        self._since_threshold = 0
        self._grad_history: list[float] = []
        self._prev_loss: float | None = None
        # the model input and the loss target of this step and of the step before (references)
        self.input: torch.Tensor | None = None
        self._prev_input: torch.Tensor | None = None
        self._pending_update: dict[str, Any] | None = None  # a grad jump waiting for its update stats
        self.params: list = []
        self.done = False  # all three moments found: nothing more to watch

    # --- what the session feeds -----------------------------------------------------------
    def on_parameters(self, optimizer: Any, params: list) -> None:
        self.params = params

    def on_input(self, args: tuple, evaluating: bool, sampled: bool) -> None:
        if not evaluating:
            a = args[0] if args else None
            self.input = _no_graph(a if isinstance(a, torch.Tensor) else first_tensor(args))

    def note_target(self, call: Any) -> None:
        """(loss input, target) of this step's training loss call (`kept_loss_call`), read only when a
        moment is captured."""
        self.target_call = call

    target_call: Any = None
    _prev_call: Any = None

    @staticmethod
    def _target_of(call: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(target, loss input) of a kept loss call."""
        if call is None:
            return None, None
        inp, target = call
        return target, inp

    def on_step_loss(self, step: int, loss: torch.Tensor, sampled: bool, call: Any = None) -> None:
        """The step's training loss (a 0-d tensor) at the end of the step, with the step's loss call
        (`kept_loss_call`) when one was seen. This runs on every step: a small model's step lasts
        about 2 ms, so each microsecond here is 0.05% of it (`benchmarks/overhead.py`)."""
        if call is not None:
            self.target_call = call
        try:
            if loss.is_cpu or sampled:
                value = loss.item()
                if value < self._threshold and value != -math.inf:  # finite and no spike (NaN compares False)
                    self._keep(value)
                    self._prev_loss = value
                else:
                    self._fire_loss(step, value)
                    if math.isfinite(value):
                        self._prev_loss = value
        finally:
            self._prev_input, self._prev_call = self.input, self.target_call
            self.input = self.target_call = None

    def _keep(self, value: float) -> None:
        hist = self._history
        hist.append(value)
        since = self._since_threshold + 1
        if since >= THRESHOLD_EVERY or len(hist) < MIN_LOSS_HISTORY:
            since = 0
            med = sorted(hist)[len(hist) // 2]
            self._threshold = SPIKE_FACTOR * med if med > 0 else math.inf
        self._since_threshold = since

    def _fire_loss(self, step: int, value: float) -> None:
        if not math.isfinite(value):
            kind = schema.MOMENT_FIRST_NONFINITE_LOSS
        else:
            kind = schema.MOMENT_FIRST_LOSS_SPIKE
            self._keep(value)
        if kind in self.moments:
            return
        hist = self._history
        moment = self._capture(step)
        moment.update(
            loss=value if math.isfinite(value) else None,
            previous_loss=self._prev_loss,
            loss_median=sorted(hist)[len(hist) // 2] if hist else None,
        )
        moment.update(self._grad_facts())
        self.moments[kind] = moment

    def on_grad_norm(self, step: int, norm: Any) -> None:
        """The gradient probe's global norm on a sampled step (weights not yet updated)."""
        if schema.MOMENT_FIRST_GRAD_JUMP in self.moments:
            return
        value = float(norm)
        hist = self._grad_history
        if len(hist) >= MIN_GRAD_HISTORY and math.isfinite(value):
            med = sorted(hist)[len(hist) // 2]
            if med > 0 and value >= SPIKE_FACTOR * med:
                moment = self._capture(step)
                moment.update(grad_norm=value, grad_norm_median=med, loss=None, previous_loss=self._prev_loss)
                self.moments[schema.MOMENT_FIRST_GRAD_JUMP] = moment
                self._pending_update = moment
                return
        if math.isfinite(value):
            hist.append(value)
            if len(hist) > GRAD_HISTORY:
                del hist[0]

    @property
    def wants_update_ratios(self) -> bool:
        return self._pending_update is not None

    def on_update_ratios(self, ratios: list[Any]) -> None:
        """The update probe's per-layer update ratios of the sampled step a gradient jump was on."""
        moment, self._pending_update = self._pending_update, None
        if moment is not None and ratios:
            values = [float(r) for r in ratios]
            finite = [v for v in values if math.isfinite(v)]
            moment["update_ratio_max"] = max(finite) if finite else None
            moment["nonfinite_update_ratios"] = len(values) - len(finite)

    # --- evidence ---------------------------------------------------------------------------
    def _capture(self, step: int) -> dict[str, Any]:
        target, loss_input = self._target_of(self.target_call)
        prev_target, prev_loss_input = self._target_of(self._prev_call)
        # no model module seen (a loop over plain tensors): the loss input stands in for the model's
        inp = self.input if self.input is not None else loss_input
        prev = self._prev_input if self._prev_input is not None else prev_loss_input
        return {
            "step": step,
            "inputs": tensor_stats(inp),
            "targets": tensor_stats(target),
            "previous": {"inputs": tensor_stats(prev), "targets": tensor_stats(prev_target)},
        }

    def _grad_facts(self) -> dict[str, Any]:
        """Gradient and weight facts right after the step that fired (gradients still there)."""
        grads = [p.grad.detach() for p in self.params if getattr(p, "grad", None) is not None]
        out: dict[str, Any] = {}
        with torch.no_grad():
            if grads:
                norms = torch.stack([n.float().cpu() for n in foreach_norms(grads)])
                finite = torch.isfinite(norms)
                out["grad_norm"] = float(torch.linalg.vector_norm(norms[finite])) if bool(finite.any()) else None
                out["nonfinite_grads"] = int((~finite).sum())
            if self.params:
                bad = sum(int(not bool(torch.isfinite(p.detach()).all())) for p in self.params)
                out["nonfinite_weights"] = bad
        return out

    def summary(self) -> dict[str, Any]:
        return dict(self.moments)
