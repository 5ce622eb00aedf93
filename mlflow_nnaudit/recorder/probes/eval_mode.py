"""An evaluation that forgot `model.eval()`: a loss computed under `no_grad` while the model
is in training mode, which matters only if the model has layers that behave differently in
the two modes (dropout, batch normalisation). Reported once, with the step and those layers,
in `nnaudit/diagnostics.json` ("eval_in_train_mode").

Fed through the probe interface (`on_loss`; the model from `attach`).
"""

from __future__ import annotations

from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe

_MODE_DEPENDENT = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


class EvalModeProbe(Probe):
    name = "eval_in_train_mode"

    def __init__(self) -> None:
        self.root = None
        self.found: dict[str, Any] | None = None

    def attach(self, model: ModelInfo) -> None:
        self.root = model.root

    def on_loss(
        self, fn: str, inp: Any, target: Any, out: Any, evaluating: bool, sampled: bool, step: int
    ) -> dict[str, Any]:
        root = self.root
        if (
            self.found is None
            and root is not None
            and root.training
            and (not torch.is_grad_enabled() or not getattr(out, "requires_grad", False))
        ):
            layers = sorted({type(m).__name__ for m in root.modules() if isinstance(m, _MODE_DEPENDENT)})
            self.found = {"step": step, "mode_dependent_layers": layers}
        return {}

    def summary(self) -> dict[str, Any]:
        return self.found or {}
