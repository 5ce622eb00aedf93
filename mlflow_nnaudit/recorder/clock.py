"""Where the step count comes from when a loop never calls `optimizer.step()`.

Official PyTorch examples update parameters by hand (`p -= lr * p.grad` under
`torch.no_grad()`, then `p.grad = None`). No optimizer hook fires there, so the recorder
infers step boundaries from consecutive `backward()` calls: a step ended between two of
them when the parameters reached by the loss were changed in between (their autograd version
counters moved, or their first values differ) or their gradients were reset to None. Two
backward calls with neither in between are gradient accumulation: the same step.

The clock is only consulted while no optimizer step has been seen in the process; the first
`optimizer.step()` switches it off for good.
"""

from __future__ import annotations

import torch

#: autograd nodes visited at most when looking for the parameters behind a loss
MAX_GRAPH_NODES = 100_000
#: values of the first parameter compared between backward calls (catches `.data` updates,
#: which do not move the version counter)
FINGERPRINT_VALUES = 64


def leaf_parameters(loss: torch.Tensor, max_nodes: int = MAX_GRAPH_NODES) -> list[torch.Tensor]:
    """The leaf tensors requiring grad that `loss` depends on, found by walking its autograd
    graph (each leaf has one AccumulateGrad node holding it as `.variable`)."""
    out: list[torch.Tensor] = []
    seen_leaves: set[int] = set()
    visited: set = set()
    stack = [loss.grad_fn]
    while stack and len(visited) < max_nodes:
        fn = stack.pop()
        if fn is None or fn in visited:
            continue
        visited.add(fn)
        leaf = getattr(fn, "variable", None)
        if isinstance(leaf, torch.Tensor):
            if id(leaf) not in seen_leaves:
                seen_leaves.add(id(leaf))
                out.append(leaf)
            continue
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return out


class ManualClock:
    """Decides, at each backward call, whether a hand-written update happened since the last."""

    def __init__(self, loss: torch.Tensor) -> None:
        self.params = leaf_parameters(loss)
        self._versions: list[int] = []
        self._fingerprint: torch.Tensor | None = None
        self.mark()

    def mark(self) -> None:
        """Remember the parameters as they are now (just before a backward call)."""
        self._versions = [p._version for p in self.params]
        first = self.params[0] if self.params else None
        with torch.no_grad():
            self._fingerprint = first.detach().reshape(-1)[:FINGERPRINT_VALUES].clone() if first is not None else None

    def step_ended(self) -> bool:
        """Did a step end since the last `mark()`: parameters updated, or gradients reset?"""
        if not self.params:
            return False
        if [p._version for p in self.params] != self._versions:
            return True
        if all(p.grad is None for p in self.params):
            return True
        first = self.params[0]
        if self._fingerprint is not None:
            with torch.no_grad():
                now = first.detach().reshape(-1)[:FINGERPRINT_VALUES]
                if now.shape != self._fingerprint.shape or not torch.equal(now, self._fingerprint):
                    return True
        return False
