"""Weight norms and the update/weight ratio ||dW|| / ||W|| per layer."""

from __future__ import annotations

from typing import Any

import torch

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe, StepContext
from mlflow_nnaudit.recorder.probes.gradients import foreach_norms, layer_norms


class UpdateProbe(Probe):
    """Snapshots the weights before a sampled optimizer step and measures how far the step
    moved them, relative to their size: ~1e-3 is the usual healthy order of magnitude,
    far above means a too-large learning rate, exactly 0 a frozen layer.

    The snapshot is a copy of the parameters on the sampled steps only (memory: one extra
    copy of the weights during that step)."""

    name = "updates"

    def __init__(self) -> None:
        self.layers: dict[str, list] = {}
        self._snapshot: list[torch.Tensor] | None = None
        self._params: list[torch.Tensor] = []

    def attach(self, model: ModelInfo) -> None:
        self.layers = model.layers

    def before_step(self, ctx: StepContext) -> dict[str, Any]:
        if not self.layers:
            return {}
        self._params = [p for params in self.layers.values() for p in params]
        with torch.no_grad():
            self._snapshot = [p.detach().clone() for p in self._params]
        return {}

    def after_step(self, ctx: StepContext) -> dict[str, Any]:
        if self._snapshot is None:
            return {}
        with torch.no_grad():
            deltas = [p.detach() - s for p, s in zip(self._params, self._snapshot)]
            d_norms = foreach_norms(deltas)
            w_norms = foreach_norms([p.detach() for p in self._params])
        self._snapshot = None
        d_by_id = {id(p): n for p, n in zip(self._params, d_norms)}
        w_by_id = {id(p): n for p, n in zip(self._params, w_norms)}
        metrics: dict[str, Any] = {}
        d_layer = layer_norms(d_by_id, self.layers)
        for layer, w in layer_norms(w_by_id, self.layers).items():
            metrics[schema.layer_key(schema.LAYER_WEIGHT_NORM, layer)] = w
            if layer in d_layer:
                metrics[schema.layer_key(schema.LAYER_UPDATE_RATIO, layer)] = d_layer[layer] / w.clamp_min(1e-12)
        return metrics
