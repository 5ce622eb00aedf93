"""What a probe is: one kind of evidence, observed through a narrow interface.

A probe knows nothing of MLflow, nor of the recorder: everything it sees comes through the
methods below, called by the session (Lightning-style: each is a no-op by default, and a
probe overrides the ones it needs). The session calls `on_parameters` once it knows which
parameters are trained, `attach(model_info)` once the model is known,
`before_step(ctx)`/`after_step(ctx)` around optimizer steps it chose to sample, the `on_*`
methods as the training program calls a loss function, the model, `backward()`, a gradient
clipping function or a DataLoader, and asks `summary()` for one-off facts. Only the probes
that override an `on_*` method are called for it (`overrides`), so a hook that fires on
every step costs nothing for the probes that do not want it.

Metrics come back as {name: value} where a value may be a 0-d tensor: the session turns
tensors into numbers in one batch at flush time, so the device is not synchronised on every
step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelInfo:
    """The trained model as the probes see it: parameters grouped by the layer that owns them."""

    root: Any  # torch.nn.Module, or None when only the optimizer's parameters are known
    layers: dict[str, list] = field(default_factory=dict)  # layer name -> its parameters (tensors)


@dataclass
class StepContext:
    """What a probe gets on a sampled step."""

    step: int
    optimizer: Any
    params: list  # the optimizer's parameters, in a fixed order
    model: ModelInfo | None


def as_real(t):
    """A tensor the probes' statistics can take: a complex tensor is described by its magnitude
    (|z|: norms, scales and ranges are those of the values' sizes), as torch's norms do; casting
    it to a real dtype would drop the imaginary part, and torch warns about that in the user's run."""
    return t.abs() if t.is_complex() else t


class Probe:
    """Base class: override what you need. Raising is allowed; the session disables a probe
    that raises (with one warning) and training goes on untouched."""

    name = "probe"

    def on_parameters(self, optimizer: Any, params: list) -> None:
        """The parameters to follow became known (the optimizer's, before its first update; in a
        loop without optimizer, those the loss reaches, once the first hand-written step ended)."""

    def on_other_optimizer(self, optimizer: Any, params: list) -> None:
        """Another optimizer than the followed one stepped for the first time (each one once): `params` are
        trained too, by it (SparseAdam for an embedding table beside Adam for the rest, a GAN's other side)."""

    def attach(self, model: ModelInfo) -> None:
        """The model became known (its layers and parameters)."""

    def before_step(self, ctx: StepContext) -> dict[str, Any]:
        """Gradients are ready, weights not yet updated. Return metrics."""
        return {}

    def after_step(self, ctx: StepContext) -> dict[str, Any]:
        """Weights were just updated. Return metrics."""
        return {}

    def on_loss(
        self, fn: str, inp: Any, target: Any, out: Any, evaluating: bool, sampled: bool, step: int
    ) -> dict[str, Any]:
        """A watched torch loss function (`fn`, e.g. "cross_entropy") returned `out` for `inp` and
        `target`. `evaluating`: an evaluation loss (autograd off, or the model in eval mode);
        `sampled`: the step is a sampled one. Only training losses of the first calls and of
        sampled steps, and evaluation losses, reach the probes. Return metrics."""
        return {}

    def on_input(self, args: tuple, evaluating: bool, sampled: bool) -> None:
        """The model's forward pass is about to run on `args` (called on every forward pass of the
        model: keep the common case cheap)."""

    def on_before_backward(self, ctx: StepContext) -> dict[str, Any]:
        """The first backward call of a sampled step is about to run. Return metrics."""
        return {}

    def on_before_clip(self, kind: str) -> bool:
        """A gradient clipping call of `kind` ("norm" or "value") is about to run: True asks for
        the gradient size before it to be measured (`clip_grad_value_` returns nothing, so that
        costs one batched max; `clip_grad_norm_` returns the norm, so it is never measured)."""
        return False

    def on_clip(self, kind: str, pre_clip: Any, limit: float) -> None:
        """A gradient clipping call returned: the gradient size before it (a 0-d tensor, or None
        when not measured) and the limit asked for."""

    def on_loader_iter(self, loader: Any) -> None:
        """A DataLoader's iteration (an epoch) begins."""

    def take_seconds(self) -> float:
        """Time spent outside `before_step`/`after_step` (in hooks of the forward pass, say)
        since last asked: it counts against the sampling budget like the rest."""
        return 0.0

    def summary(self) -> dict[str, Any]:
        """One-off facts for `nnaudit/diagnostics.json`."""
        return {}

    def close(self) -> None:
        """The session ends or dropped this probe: remove any hook it put on the model."""


def overrides(probe: Probe, method: str) -> bool:
    """Whether `probe` does something in `method` (its class overrides the no-op default)."""
    return getattr(type(probe), method, None) is not getattr(Probe, method)
