"""Gradients never zeroed: are the gradients of the last step still there when the next
backward pass begins (a loop that forgot `optimizer.zero_grad()` accumulates them)?

Fed through the probe interface (`on_before_backward`), on each of steps 1-5 (the session's
STALE_GRADS_FIRST_STEPS: the bug shows from step 1), then on sampled steps: one batched
norm over the gradients present, kept as a 0-d tensor (no device sync) and written as the
metric `grad_present_before_backward` (1: gradients were there, 0: they were zeroed or None).
"""

from __future__ import annotations

from typing import Any

import torch

from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.probes.base import Probe, StepContext
from mlflow_nnaudit.recorder.probes.gradients import foreach_norms


class StaleGradientProbe(Probe):
    name = "stale_gradients"

    def on_before_backward(self, ctx: StepContext) -> dict[str, Any]:
        grads = [p.grad.detach() for p in ctx.params if p.grad is not None]
        if grads:  # any parameter's: the first ones may sit behind dead units, with zero gradients
            norms = foreach_norms(grads)
            present = (torch.stack([n.float().to(norms[0].device) for n in norms]) != 0).any().float()
        else:
            present = torch.zeros(())
        return {schema.GRAD_PRESENT_BEFORE_BACKWARD: present}
