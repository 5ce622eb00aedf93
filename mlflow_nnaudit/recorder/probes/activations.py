"""Dead ReLUs and saturated sigmoid/tanh units, per activation layer, on sampled steps.

Forward hooks are put on the activation modules only for the forward pass of a sampled
training step (armed in `on_input`, called from the model's forward pre-hook; disarmed at
the optimizer step): a hook on every module on every step would cost a few percent. Activations
applied as functions (`torch.relu(x)` inside `forward`) are not seen.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe, StepContext

_RELUS = (nn.ReLU, nn.ReLU6)
_SIGMOIDS = (nn.Sigmoid,)
_TANHS = (nn.Tanh,)
#: |pre-activation| >= 5 is saturated (DeepDiagnosis); in output terms:
SIGMOID_RAIL = 0.0067  # sigmoid(-5); sigmoid(5) = 1 - this
TANH_RAIL = 0.9999  # tanh(5) = 0.99991


def dead_share(out: torch.Tensor) -> torch.Tensor:
    """Share of units (features, or channels of a feature map) that are zero for every sample.
    Reduced over the batch first and then over the positions of each channel, so that no
    transposed copy of a large feature map is made."""
    if out.dim() == 0:
        return torch.zeros(())
    dead = out.detach().le(0).all(dim=0)  # per feature, or per (channel, position)
    if dead.dim() > 1:
        dead = dead.reshape(dead.shape[0], -1).all(dim=1)
    return dead.float().mean()


def saturated_share(out: torch.Tensor, kind: str) -> torch.Tensor:
    o = out.detach()
    if kind == "sigmoid":
        return ((o < SIGMOID_RAIL) | (o > 1 - SIGMOID_RAIL)).float().mean()
    return (o.abs() > TANH_RAIL).float().mean()


class ActivationProbe(Probe):
    name = "activations"

    def __init__(self) -> None:
        self.layers: list[tuple[str, nn.Module, str]] = []
        self._handles: list = []
        self._seen: dict[str, list[torch.Tensor]] = {}
        self._seconds = 0.0  # time spent in the hooks since `take_seconds` was last asked

    def attach(self, model: ModelInfo) -> None:
        if model.root is None:
            return
        for name, m in model.root.named_modules():
            kind = (
                "relu"
                if isinstance(m, _RELUS)
                else "sigmoid"
                if isinstance(m, _SIGMOIDS)
                else ("tanh" if isinstance(m, _TANHS) else None)
            )
            if kind:
                self.layers.append((name, m, kind))

    @property
    def armed(self) -> bool:
        return bool(self._handles)

    def arm(self) -> None:
        """Hook the activation modules for the coming forward pass."""
        if self._handles or not self.layers:
            return
        for name, module, kind in self.layers:
            self._handles.append(module.register_forward_hook(self._hook(name, kind)))

    def on_input(self, args: tuple, evaluating: bool, sampled: bool) -> None:
        if sampled and not evaluating:
            self.arm()

    def _hook(self, name: str, kind: str):
        key = schema.layer_key(schema.LAYER_DEAD_RELU if kind == "relu" else schema.LAYER_SATURATED, name)

        def hook(_module, _inputs, out):
            # not while torch.compile traces the model: its statistics stay out of compiled graphs
            if isinstance(out, torch.Tensor) and out.is_floating_point() and not torch.compiler.is_compiling():
                t0 = time.perf_counter()
                share = dead_share(out) if kind == "relu" else saturated_share(out, kind)
                self._seen.setdefault(key, []).append(share)
                self._seconds += time.perf_counter() - t0

        return hook

    def disarm(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def close(self) -> None:
        self.disarm()
        self._seen = {}

    def before_step(self, ctx: StepContext) -> dict[str, Any]:
        self.disarm()
        seen, self._seen = self._seen, {}
        return {k: torch.stack(v).mean() if len(v) > 1 else v[0] for k, v in seen.items()}

    def take_seconds(self) -> float:
        spent, self._seconds = self._seconds, 0.0
        return spent

    def summary(self) -> dict[str, Any]:
        return {"layers": {name: kind for name, _, kind in self.layers}} if self.layers else {}
