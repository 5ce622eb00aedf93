"""What a probe is: one kind of evidence, observed through a narrow interface.

A probe knows nothing of MLflow. The session calls `attach(model_info)` once the model is
known, `before_step(ctx)`/`after_step(ctx)` around optimizer steps it chose to sample, and
asks `summary()` for one-off facts. Metrics come back as {name: value} where a value may be
a 0-d tensor: the session turns tensors into numbers in one batch at flush time, so the
device is not synchronised on every step.
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

    def attach(self, model: ModelInfo) -> None:
        """The model became known (its layers and parameters)."""

    def before_step(self, ctx: StepContext) -> dict[str, Any]:
        """Gradients are ready, weights not yet updated. Return metrics."""
        return {}

    def after_step(self, ctx: StepContext) -> dict[str, Any]:
        """Weights were just updated. Return metrics."""
        return {}

    def take_seconds(self) -> float:
        """Time spent outside `before_step`/`after_step` (in hooks of the forward pass, say)
        since last asked: it counts against the sampling budget like the rest."""
        return 0.0

    def summary(self) -> dict[str, Any]:
        """One-off facts for `nnaudit/diagnostics.json`."""
        return {}

    def close(self) -> None:
        """The session ends or dropped this probe: remove any hook it put on the model."""
