"""`final_layer_activation`: the output activation cannot produce the targets."""

from __future__ import annotations

import math

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import learned_nothing


class FinalLayerActivation(Rule):
    """The model's last module is an activation (ReLU, Sigmoid, Tanh, ...) and the regression
    targets the recorder saw fall outside what it can output (negative targets behind a ReLU,
    targets beyond [0, 1] behind a sigmoid, ...): part of the target range is unreachable. Or a
    classifier's logits pass through one before `cross_entropy` (read from the loss input's
    autograd graph, not from the module order): a definite bug."""

    cause = "final_layer_activation"
    reads = (("model", "last_module"), ("loss", "targets"), ("loss", "input_activation"), ("loss", "loss_function"))

    #: what each final activation can output
    OUTPUT_RANGES = {
        "ReLU": (0.0, math.inf),
        "ReLU6": (0.0, 6.0),
        "Sigmoid": (0.0, 1.0),
        "Tanh": (-1.0, 1.0),
        "Softplus": (0.0, math.inf),
    }
    #: the share of the target range out of reach that makes the finding ...
    UNREACHABLE_SHARE = 0.05
    #: ... and that makes the run a failure
    FAILED_SHARE = 0.25

    def evaluate(self, view: RunView) -> Finding | None:
        return self._logits(view) or self._targets(view)

    def _logits(self, view: RunView) -> Finding | None:
        """`cross_entropy` fed the output of an activation (read from the loss input's autograd graph,
        `loss.input_activation`): it wants raw logits, and an activation bounds them (Sigmoid, Tanh: the
        softmax can never be confident) or cuts them at 0 (ReLU: a class cannot be pushed down, and an
        output unit that dies stops learning). A definite bug whatever the outcome."""
        act = view.fact("loss", "input_activation")
        fn = view.fact("loss", "loss_function")
        if act not in self.OUTPUT_RANGES or fn != "cross_entropy":
            return None
        lo, hi = self.OUTPUT_RANGES[act]
        return self.finding(
            confidence="high",
            severity="failed" if learned_nothing(view) else "warning",
            kind="bug",
            score=0.9,
            summary=f"the model's output passes through {act} before cross_entropy, which wants raw logits: "
            f"they are held in [{fmt_num(lo)}, {fmt_num(hi)}]",
            recommendation=f"The logits go through {act} before `cross_entropy` (nn.CrossEntropyLoss), which "
            "applies log-softmax to raw, unbounded scores itself: remove the final activation and end the model "
            "in a plain Linear layer.",
            evidence=[Evidence("loss_input_activation", schema.DIAGNOSTICS_ARTIFACT, {"activation": act, "loss": fn})],
        )

    def _targets(self, view: RunView) -> Finding | None:
        last = view.fact("model", "last_module")
        t = view.fact("loss", "targets")
        if last not in self.OUTPUT_RANGES or not isinstance(t, dict):
            return None
        lo, hi = self.OUTPUT_RANGES[last]
        span = max(t["max"] - t["min"], 1e-12)
        below = max(0.0, lo - t["min"]) / span
        above = max(0.0, t["max"] - hi) / span
        if below + above < self.UNREACHABLE_SHARE:
            return None
        return self.finding(
            confidence="high",
            severity="failed" if below + above >= self.FAILED_SHARE else "warning",
            score=min(1.0, below + above),
            summary=f"the model ends in {last} (outputs in [{fmt_num(lo)}, {fmt_num(hi)}]) but the targets span "
            f"[{fmt_num(t['min'])}, {fmt_num(t['max'])}]",
            recommendation=f"The output layer ends in {last}, which cannot produce targets in "
            f"[{fmt_num(t['min'])}, {fmt_num(t['max'])}]: remove the final activation for regression (a plain "
            "Linear output), or rescale the targets into its range.",
            evidence=[
                Evidence(
                    "output_activation_vs_targets",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {
                        "last_module": last,
                        "target_min": t["min"],
                        "target_max": t["max"],
                        "share_of_range_unreachable": below + above,
                    },
                )
            ],
        )
