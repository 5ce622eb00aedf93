"""An evaluation that forgot `model.eval()`: a loss computed under `no_grad` while the model
is in training mode, which matters only if the model has layers that behave differently in
the two modes (dropout, batch normalisation). Reported once, with the step and those layers,
in `nnaudit/diagnostics.json` ("eval_in_train_mode").

A model in eval mode whose forward calls dropout through the functional API without its mode
(`F.dropout(x, p)`, whose `training` defaults to True) still drops units in evaluation: such a call
under `no_grad` while the model is in eval mode is counted (`functional_dropout_calls`, with the
first step it was seen on), beside or instead of the above.

Fed through the probe interface (`on_loss`, `on_eval_dropout`; the model from `attach`).
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
        self.functional: dict[str, Any] | None = None

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

    def on_eval_dropout(self, step: int) -> None:
        root = self.root
        if root is None or root.training:
            return  # a model left in training mode: `on_loss` reports it with its layers
        if self.functional is None:
            self.functional = {"step": step, "functional_dropout_calls": 0}
        self.functional["functional_dropout_calls"] += 1

    def summary(self) -> dict[str, Any]:
        return {**(self.functional or {}), **(self.found or {})}
