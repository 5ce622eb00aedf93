"""Gradient clipping: how often the clip bites, and how far above the limit the gradients are.

Fed by thin wrappers around `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`
(installed with the recorder's other hooks, `install_clipping_hooks`). The wrapper calls
the real function first and only reads what it returns, so clipping behaves exactly as
without the recorder:

- `clip_grad_norm_` returns the total gradient norm *before* clipping: the probe keeps that
  0-d tensor and the `max_norm` asked for; no extra computation, no device sync;
- `clip_grad_value_` returns nothing, so on the first calls and every `VALUE_CHECK_EVERY`-th
  call after that the probe measures the largest |gradient| before the call (one batched
  max per call checked).

Calls made before the session exists (the first step of a run) are not counted.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from mlflow_nnaudit.recorder.probes.base import Probe

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

    def wants_value_check(self) -> bool:
        """Whether the next clip_grad_value_ call should be measured (it costs one max)."""
        return self.calls < VALUE_CHECK_FIRST or self.calls % VALUE_CHECK_EVERY == 0

    def observe(self, kind: str, pre_clip: torch.Tensor | None, limit: float) -> None:
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
                out.update({
                    "measured_calls": int(ratios.numel()),
                    "bite_share": float((ratios > 1.0).float().mean()),
                    "median_pre_clip_ratio": float(ratios.median()),
                    "p90_pre_clip_ratio": float(torch.quantile(ratios, 0.9)),
                })
        return out


def _session_probe() -> ClipProbe | None:
    from mlflow_nnaudit.recorder.config import current_config
    from mlflow_nnaudit.recorder.hooks import RECORDER  # late: hooks imports this module

    if current_config() is None or RECORDER.session is None:
        return None
    return next((p for p in RECORDER.session.probes if isinstance(p, ClipProbe)), None)


def _grads(parameters) -> list[torch.Tensor]:
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def _wrap_norm(original):
    @functools.wraps(original)
    def clip_grad_norm_(parameters, *args, **kwargs):
        if not isinstance(parameters, torch.Tensor):
            parameters = list(parameters)  # may be a generator: the original must still see it all
        total = original(parameters, *args, **kwargs)
        try:
            probe = _session_probe()
            if probe is not None:
                max_norm = args[0] if args else kwargs.get("max_norm")
                probe.observe("norm", total if isinstance(total, torch.Tensor) else None, float(max_norm))
        except Exception:  # noqa: BLE001 - never raise into training; the evidence is just missing
            pass
        return total

    clip_grad_norm_.__nnaudit_original__ = original
    return clip_grad_norm_


def _wrap_value(original):
    @functools.wraps(original)
    def clip_grad_value_(parameters, *args, **kwargs):
        if not isinstance(parameters, torch.Tensor):
            parameters = list(parameters)
        pre, probe, limit = None, None, None
        try:
            probe = _session_probe()
            if probe is not None:
                limit = float(args[0] if args else kwargs.get("clip_value"))
                if probe.wants_value_check():
                    grads = _grads(parameters)
                    if grads:
                        with torch.no_grad():
                            pre = torch.stack([g.detach().abs().amax().float() for g in grads]).amax()
        except Exception:  # noqa: BLE001
            probe = None
        out = original(parameters, *args, **kwargs)
        try:
            if probe is not None and limit is not None:
                probe.observe("value", pre, limit)
        except Exception:  # noqa: BLE001
            pass
        return out

    clip_grad_value_.__nnaudit_original__ = original
    return clip_grad_value_


_installed: dict[str, Any] = {}


def install_clipping_hooks() -> None:
    """Wrap torch's clipping functions where user code finds them (`torch.nn.utils.X` and
    `torch.nn.utils.clip_grad.X`). Code that did `from torch.nn.utils import clip_grad_norm_`
    before the recorder was installed keeps the unwrapped function (no evidence, no harm)."""
    if _installed:
        return
    import torch.nn.utils as utils
    import torch.nn.utils.clip_grad as clip_grad

    for name, wrap in (("clip_grad_norm_", _wrap_norm), ("clip_grad_value_", _wrap_value)):
        original = getattr(clip_grad, name, None)
        if original is None:
            continue
        wrapped = wrap(original)
        _installed[name] = original
        for module in (utils, clip_grad):
            if getattr(module, name, None) is original:
                setattr(module, name, wrapped)


def uninstall_clipping_hooks() -> None:
    import torch.nn.utils as utils
    import torch.nn.utils.clip_grad as clip_grad

    for name, original in list(_installed.items()):
        for module in (utils, clip_grad):
            current = getattr(module, name, None)
            if getattr(current, "__nnaudit_original__", None) is original:
                setattr(module, name, original)
        del _installed[name]
