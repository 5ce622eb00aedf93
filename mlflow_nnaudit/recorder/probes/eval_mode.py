"""An evaluation that forgot `model.eval()`: a loss computed under `no_grad` while the model
is in training mode, which matters only if the model has layers that behave differently in
the two modes (dropout, batch normalisation). Reported once, with the step and those layers,
in `nnaudit/diagnostics.json` ("eval_in_train_mode").

A model in eval mode whose forward calls dropout through the functional API without its mode
(`F.dropout(x, p)`, whose `training` defaults to True) still drops units in evaluation. On the
model's first EVAL_FORWARDS_CHECKED forward passes in eval mode under `no_grad` (and only while
none of its dropout modules is in training mode: Monte Carlo dropout on purpose), torch's functional
dropouts are watched for the length of that one forward pass: a call that leaves `training` at its
default with p > 0 is counted (`functional_dropout_calls`). Nothing of torch is changed outside those
few forward passes (a global wrapper would be what TorchScript and FX see), and the watch is undone
when the forward returns, or, should it raise, on the model's next forward and when the session ends.

Fed through the probe interface (`on_loss`, `on_input`; the model from `attach`).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import ModelInfo, Probe

_DROPOUT = torch.nn.modules.dropout._DropoutNd
_MODE_DEPENDENT = (_DROPOUT, torch.nn.modules.batchnorm._BatchNorm)
#: the functional dropouts whose `training` defaults to True (the alpha dropouts' default to False)
_WATCHED = ("dropout", "dropout1d", "dropout2d", "dropout3d")
#: evaluation forward passes watched (the bug is in the model's code: it shows on every one)
EVAL_FORWARDS_CHECKED = 3


class EvalModeProbe(Probe):
    name = "eval_in_train_mode"

    def __init__(self) -> None:
        self.root = None
        self.found: dict[str, Any] | None = None
        self.functional_calls = 0
        self.checks_left = EVAL_FORWARDS_CHECKED
        self._watching: list[tuple[str, Any, Any]] = []  # (name, torch's function, our wrapper)
        self._done_hook = None

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

    # --- a functional dropout left on in an eval-mode model ---------------------------------------
    def on_input(self, args: tuple, evaluating: bool, sampled: bool) -> None:
        if self._watching:
            self._unwatch()  # the last watched forward raised: its hook never ran
        root = self.root
        if self.checks_left <= 0 or root is None or root.training or torch.is_grad_enabled():
            return
        if torch.compiler.is_compiling():
            return
        if any(m.training for m in root.modules() if isinstance(m, _DROPOUT)):
            return  # dropout modules switched back on under an eval model: Monte Carlo dropout on purpose
        self.checks_left -= 1
        functional = torch.nn.functional
        for name in _WATCHED:
            original = getattr(functional, name, None)
            if callable(original):
                wrapper = self._counting(original)
                setattr(functional, name, wrapper)
                self._watching.append((name, original, wrapper))
        self._done_hook = root.register_forward_hook(lambda *_: self._unwatch())

    def _counting(self, original):
        @functools.wraps(original)
        def dropout(*args, **kwargs):
            # `training` left at its default (True): `nn.Dropout` passes its own mode, MC dropout passes True
            if len(args) <= 2 and "training" not in kwargs:
                p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
                if isinstance(p, (int, float)) and p > 0:
                    self.functional_calls += 1
            return original(*args, **kwargs)

        return dropout

    def _unwatch(self) -> None:
        functional = torch.nn.functional
        for name, original, wrapper in self._watching:
            if getattr(functional, name, None) is wrapper:  # still ours (nothing wrapped it since)
                setattr(functional, name, original)
        self._watching = []
        if self._done_hook is not None:
            self._done_hook.remove()
            self._done_hook = None

    def close(self) -> None:
        self._unwatch()

    def summary(self) -> dict[str, Any]:
        functional = {"functional_dropout_calls": self.functional_calls} if self.functional_calls else {}
        return {**functional, **(self.found or {})}
