"""Whether the optimizer's parameters learn at all, with or without an `nn.Module`.

Three bugs leave a run training nothing while the loop looks right: an optimizer handed the
data tensors instead of the weights (`SGD([x_train])`), a parameter rebuilt each step
(`a = torch.tensor(a.item(), requires_grad=True)`) so that the tensor the optimizer holds is
no longer used, and every parameter frozen with `loss.requires_grad = True` to silence the
error that follows. On sampled steps this probe counts, per parameter of the followed
optimizer, whether its gradient was None or zero, and keeps two scalar fingerprints (L1 and
L2 norm, one batched call each) of every parameter: the first sample's against the latest
tell which never changed. It also notes when a model input is one of the optimizer's
parameters (or a view of one), and the session tells it about a module that ran forward
passes while owning none of the optimizer's parameters.
"""

from __future__ import annotations

from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe, StepContext
from mlflow_nnaudit.recorder.probes.gradients import foreach_norms

#: parameter names listed at most
MAX_NAMES = 10
#: training forward passes whose inputs are compared with the optimizer's parameters
INPUT_CHECKS = 3


def _fingerprints(params: list[torch.Tensor]) -> torch.Tensor:
    """[P, 2]: each parameter's L1 and L2 norm (float64 on the CPU, to compare exactly)."""
    with torch.no_grad():
        ts = [p.detach() for p in params]
        try:
            l1 = torch._foreach_norm(ts, 1)
            l2 = torch._foreach_norm(ts, 2)
        except Exception:  # noqa: BLE001 - private API
            l1 = [t.abs().sum() for t in ts]
            l2 = [torch.linalg.vector_norm(t) for t in ts]
        return torch.stack([torch.stack([a.double().cpu(), b.double().cpu()]) for a, b in zip(l1, l2)])


class LearningProbe(Probe):
    """Per parameter of the optimizer: gradient None/zero on sampled steps, and never changed."""

    name = "learning"

    def __init__(self) -> None:
        self.params: list[torch.Tensor] = []
        self.names: dict[int, str] = {}
        self.samples = 0
        self._no_grad: torch.Tensor | None = None  # per parameter: sampled steps with no/zero gradient
        self._first: torch.Tensor | None = None
        self._last: torch.Tensor | None = None
        self._input_checks = 0
        self.inputs_are_parameters = False
        self.outside: dict[str, Any] | None = None

    def on_parameters(self, optimizer: Any, params: list) -> None:
        self.params = list(params)
        self.names = {id(p): f"param[{i}] {tuple(p.shape)}" for i, p in enumerate(self.params)}

    def attach(self, model: ModelInfo) -> None:
        root = model.root
        if root is not None:
            named = {id(p): n for n, p in root.named_parameters()}
            self.names.update({k: v for k, v in named.items() if k in self.names})

    def on_input(self, args: tuple, evaluating: bool, sampled: bool) -> None:
        if evaluating or self._input_checks >= INPUT_CHECKS:
            return
        self._input_checks += 1
        self.check_inputs(args)

    def check_inputs(self, args: Any) -> None:
        """Whether a tensor given to the model is one of the optimizer's parameters (or a view)."""
        ids = {id(p) for p in self.params}
        for a in args if isinstance(args, (tuple, list)) else (args,):
            if isinstance(a, torch.Tensor) and (id(a) in ids or id(getattr(a, "_base", None)) in ids):
                self.inputs_are_parameters = True

    def note_outside_model(self, module: torch.nn.Module, args: Any) -> None:
        """A module ran forward while owning none of the optimizer's parameters (the model left
        out of the optimizer, when nothing else owns them either)."""
        ps = list(module.parameters())
        if self.outside is None and ps:
            self.outside = {
                "class": type(module).__name__,
                "parameters": int(sum(p.numel() for p in ps)),
                "trainable": int(sum(p.numel() for p in ps if p.requires_grad)),
            }
        self.check_inputs(args)

    def before_step(self, ctx: StepContext) -> dict[str, Any]:
        params = ctx.params
        if params is not self.params and len(params) != len(self.params):
            self.on_parameters(ctx.optimizer, params)
            self._no_grad = self._first = self._last = None
            self.samples = 0
        if not params:
            return {}
        with torch.no_grad():
            grads = [p.grad for p in params]
            present = [g.detach() for g in grads if g is not None]
            zero = torch.ones(len(params), dtype=torch.int64)
            if present:
                norms = foreach_norms(present)
                nz = (torch.stack([n.float().cpu() for n in norms]) == 0).long()
                idx = torch.tensor([i for i, g in enumerate(grads) if g is not None])
                zero[idx] = nz
            self._no_grad = zero if self._no_grad is None else self._no_grad + zero
            if self._first is None:
                self._first = _fingerprints(params)
        self.samples += 1
        return {}

    def after_step(self, ctx: StepContext) -> dict[str, Any]:
        if self._first is not None and len(ctx.params) == len(self._first):
            self._last = _fingerprints(ctx.params)
        return {}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.samples and self._no_grad is not None:
            never_grad = [p for p, c in zip(self.params, self._no_grad.tolist()) if c >= self.samples]
            facts: dict[str, Any] = {
                "parameters": len(self.params),
                "sampled_steps": self.samples,
                "never_grad": len(never_grad),
                "never_grad_names": [self.names.get(id(p), "?") for p in never_grad][:MAX_NAMES],
                "requires_grad_false": sum(1 for p in self.params if not p.requires_grad),
                "inputs_are_parameters": self.inputs_are_parameters,
            }
            if self._last is not None and self.samples > 1:
                same = (self._last == self._first).all(dim=1).tolist()
                unchanged = [p for p, s in zip(self.params, same) if s]
                facts["never_changed"] = len(unchanged)
                facts["never_changed_names"] = [self.names.get(id(p), "?") for p in unchanged][:MAX_NAMES]
                never_grad_ids = {id(p) for p in never_grad}
                facts["learning"] = sum(1 for p, s in zip(self.params, same) if not s and id(p) not in never_grad_ids)
            out["optimizer"] = facts
        if self.outside is not None:
            out["model_outside_optimizer"] = self.outside
        return out
