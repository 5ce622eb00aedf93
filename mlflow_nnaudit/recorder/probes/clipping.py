"""Gradient clipping: how often the clip bites, and how far above the limit the gradients are.

Fed through the probe interface (`on_before_clip`, `on_clip`) from thin wrappers around
`torch.nn.utils.clip_grad_norm_` and `clip_grad_value_` (in `recorder/patches.py`). The
wrapper calls the real function and only reads what it returns, so clipping behaves exactly
as without the recorder:

- `clip_grad_norm_` returns the total gradient norm *before* clipping: the probe keeps that
  0-d tensor and the `max_norm` asked for; no extra computation, no device sync;
- `clip_grad_value_` returns nothing, so on the first calls and every `VALUE_CHECK_EVERY`-th
  call after that the probe measures the largest |gradient| before the call (one batched
  max per call checked, `grad_abs_max`).

Calls made before the session exists (the first step of a run) are not counted.
"""

from __future__ import annotations

from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import Probe
from mlflow_nnaudit.recorder.probes.gradients import stored_values

#: pre-clip norms kept; beyond this every other one is dropped and the keep-stride doubles,
#: so memory stays flat on long runs while the sample stays spread over the whole run
MAX_KEPT = 2000
#: clip_grad_value_ calls checked: the first ones, then every this many
VALUE_CHECK_EVERY = 10
VALUE_CHECK_FIRST = 5


class ClipProbe(Probe):
    """Pre-clip gradient size vs the clip limit, per clipping call."""

    name = "clipping"

    def __init__(self) -> None:
        self.calls = 0
        self.kind: str | None = None
        self.limit: float | None = None
        self._kept: list[torch.Tensor] = []  # pre-clip size / limit, one 0-d tensor per kept call
        self._stride = 1

    def on_before_clip(self, kind: str) -> bool:
        """Whether the coming clip_grad_value_ call should be measured (it costs one max)."""
        return kind == "value" and (self.calls < VALUE_CHECK_FIRST or self.calls % VALUE_CHECK_EVERY == 0)

    def on_clip(self, kind: str, pre_clip: torch.Tensor | None, limit: float) -> None:
        """One clipping call: its kind ("norm" or "value"), the gradient size before it (None
        when not measured) and the limit asked for."""
        self.calls += 1
        self.kind, self.limit = kind, float(limit)
        if pre_clip is None or limit <= 0 or (self.calls - 1) % self._stride:
            return
        self._kept.append(pre_clip.detach().float().reshape(()) / float(limit))
        if len(self._kept) >= MAX_KEPT:
            self._kept = self._kept[::2]
            self._stride *= 2

    def summary(self) -> dict[str, Any]:
        if not self.calls:
            return {}
        out: dict[str, Any] = {"calls": self.calls, "kind": self.kind, "limit": self.limit}
        if self._kept:
            ratios = torch.stack(self._kept)
            ratios = ratios[torch.isfinite(ratios)]
            if ratios.numel():
                out.update(
                    {
                        "measured_calls": int(ratios.numel()),
                        "bite_share": float((ratios > 1.0).float().mean()),
                        "median_pre_clip_ratio": float(ratios.median()),
                        "p90_pre_clip_ratio": float(torch.quantile(ratios, 0.9)),
                    }
                )
        return out


def grad_abs_max(parameters) -> torch.Tensor | None:
    """The largest |gradient| over `parameters` (a tensor or a list of them), as a 0-d tensor
    (one batched max, no device sync), or None when none has a gradient."""
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    with torch.no_grad():
        return torch.stack([stored_values(g.detach()).abs().amax().float() for g in grads]).amax()
