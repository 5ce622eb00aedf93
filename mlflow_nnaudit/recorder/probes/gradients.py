"""Gradient norms: global and per layer, plus non-finite gradients."""

from __future__ import annotations

from typing import Any

import torch

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe, StepContext


def stored_values(t: torch.Tensor) -> torch.Tensor:
    """A tensor's stored values: a sparse one's (the gradient of `nn.Embedding(sparse=True)`),
    coalesced so that an index met twice counts once, summed; a dense one as it is. Norms and
    extremes over them are the tensor's own (the zeros it does not store change neither)."""
    if t.layout == torch.strided:
        return t
    return t.coalesce().values() if t.layout == torch.sparse_coo else t.values()


def foreach_norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """L2 norm of each tensor, batched where torch allows (one kernel per device/dtype); sparse
    tensors by their stored values (no norm kernel takes them)."""
    if not tensors:
        return []
    tensors = [stored_values(t) for t in tensors]
    try:
        return list(torch._foreach_norm(tensors))
    except Exception:  # noqa: BLE001 - private API; fall back to the plain loop
        return [torch.linalg.vector_norm(t) for t in tensors]


def layer_norms(per_param: dict[int, torch.Tensor], layers: dict[str, list]) -> dict[str, torch.Tensor]:
    """Combine per-parameter norms into one norm per layer: sqrt(sum of squares)."""
    out = {}
    for name, params in layers.items():
        parts = [per_param[id(p)] for p in params if id(p) in per_param]
        if parts:
            out[name] = torch.linalg.vector_norm(torch.stack([q.float() for q in parts]))
    return out


class GradientProbe(Probe):
    """Global gradient norm, per-layer gradient norms, and how many parameters have
    non-finite gradients, measured just before the optimizer step."""

    name = "gradients"

    def __init__(self) -> None:
        self.layers: dict[str, list] = {}

    def attach(self, model: ModelInfo) -> None:
        self.layers = model.layers

    def before_step(self, ctx: StepContext) -> dict[str, Any]:
        with_grad = [p for p in ctx.params if p.grad is not None]
        if not with_grad:
            return {}
        norms = foreach_norms([p.grad.detach() for p in with_grad])
        stacked = torch.stack([n.float().to(norms[0].device) for n in norms])
        metrics: dict[str, Any] = {
            schema.GRAD_NORM: torch.linalg.vector_norm(stacked),
            schema.NONFINITE_GRADS: (~torch.isfinite(stacked)).sum(),
        }
        per_param = {id(p): n for p, n in zip(with_grad, norms)}
        for layer, norm in layer_norms(per_param, self.layers).items():
            metrics[schema.layer_key(schema.LAYER_GRAD_NORM, layer)] = norm
        return metrics
