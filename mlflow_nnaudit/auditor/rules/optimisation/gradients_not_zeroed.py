"""`gradients_not_zeroed`: gradients accumulate across steps because they are never reset."""

from __future__ import annotations

import math

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.curves import GRAD_NORM
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_factor, fmt_num


class GradientsNotZeroed(Rule):
    """On steps 1-5 and on sampled steps the recorder looks at the gradients just before the first backward
    pass after an optimizer step: after `optimizer.zero_grad()` they are None or zero. When
    they are still non-zero on at least 90% of the sampled steps (at least 3), gradients are
    accumulating across steps because they are never reset. On fewer sampled steps (a short
    run), stale on every one, the gradient norm must also have grown 10x from its first logged
    value: never reset, the gradient is a running sum (an accumulation on purpose resets).
    Stale on each of the first 5 steps (checked one by one: no reset in the first 6 steps, which no
    loop does on purpose) and on 75% of all the sampled steps counts too: a framework that resets
    once an epoch (a Lightning manual-optimisation loop without `zero_grad()`) leaves a sample or
    two clean, which took a run of 8 samples under the 90%. The same test reads the check made when
    an optimizer step calls its closure a second time (L-BFGS's line search): the second call must
    start from zero gradients too, and finds the first call's when `zero_grad()` sits outside the
    closure, before `optimizer.step(closure)`.

    Curves only (no recorder): a logged gradient-norm curve (`grad_norm`, as the HF Trainer
    logs it) that rises steadily over the whole run: at least 10x from start to end with a
    strong monotone upward trend (Mann-Kendall tau >= 0.6, autocorrelation-corrected
    p < 0.05). Healthy runs' gradient norms stay within a factor of a few (they often rise
    2-3x as the loss sharpens); accumulated gradients grow with every step. Low confidence:
    a slowly exploding gradient looks the same."""

    cause = "gradients_not_zeroed"
    #: the recorder's 0/1 per sampled step: were the last step's gradients still there?
    CURVE = schema.stored_key(schema.GRAD_PRESENT_BEFORE_BACKWARD)
    #: the same for a step's closure called again (L-BFGS): the last call's gradients?
    CLOSURE = schema.stored_key(schema.GRAD_PRESENT_IN_CLOSURE)
    reads = (CURVE, CLOSURE)

    #: share of sampled steps with stale gradients that makes the finding (a loop that accumulates
    #: on purpose over k steps still resets on one step in k)
    PRESENT_SHARE = 0.9
    #: sampled steps needed before the share means anything
    MIN_STEPS = 3
    #: the first steps, each checked; stale on all of them, this share of all sampled steps is enough
    FIRST_STEPS, FIRST_STALE_SHARE = 5, 0.75
    #: steady gradient-norm growth over a run that points to accumulation (curve-only reading)
    GROWTH = 10.0
    #: Mann-Kendall tau of a strong, nearly monotone rise (curve-only reading)
    MIN_TAU = 0.6
    SINCE = {False: "previous step", True: "closure's previous call"}

    def evaluate(self, view: RunView) -> Finding | None:
        c, closure = view.extra_curves.get(self.CURVE), view.extra_curves.get(self.CLOSURE)
        if c is None and closure is None and not view.recorded():
            return self._from_curve(view)
        return (self._stale(view, c) if c is not None else None) or (
            self._stale(view, closure, in_closure=True) if closure is not None else None
        )

    def _stale(self, view: RunView, c, in_closure: bool = False) -> Finding | None:
        v = c.values[np.isfinite(c.values)]
        first = c.values[(c.x() >= 1) & (c.x() <= self.FIRST_STEPS)]
        from_start = len(first) == self.FIRST_STEPS and bool((first == 1).all())
        if not len(v) or float(np.mean(v)) < (self.FIRST_STALE_SHARE if from_start else self.PRESENT_SHARE):
            return None
        if len(v) < self.MIN_STEPS and self._grad_norm_growth(view) < self.GROWTH:
            return None  # too few samples, and the gradient norm does not grow like a running sum
        return self.finding(
            confidence="high",
            severity="failed",
            score=1.0,
            summary=f"gradients from the {self.SINCE[in_closure]} were still there before backward on {np.mean(v):.0%} "
            f"of {len(v)} sampled steps",
            recommendation=(
                "The optimizer calls the closure several times a step (L-BFGS's line search), and each call adds its "
                "gradient to the last one's: call `optimizer.zero_grad()` inside the closure, before `loss.backward()`."
                if in_closure
                else "Gradients are never reset, so every step adds the new gradient to all earlier ones: call "
                "`optimizer.zero_grad()` once per step, before `loss.backward()` (or after `optimizer.step()`)."
            ),
            evidence=[Evidence(c.key.rsplit("/", 1)[-1], c.key, {"share": float(np.mean(v)), "sampled_steps": len(v)})],
        )

    @staticmethod
    def _grad_norm_growth(view: RunView) -> float:
        """How many times the gradient norm grew from its first logged value to its last (0 unknown)."""
        gn = view.finite_curve(GRAD_NORM, min_points=2)
        return float(gn.values[-1] / gn.values[0]) if gn is not None and gn.values[0] > 0 else 0.0

    def _from_curve(self, view: RunView) -> Finding | None:
        gn = view.finite_curve(GRAD_NORM, min_points=6)
        lv = view.levels(GRAD_NORM)
        trend = view.trend(GRAD_NORM)
        if gn is None or lv is None or trend is None or lv.start <= 0:
            return None
        growth = lv.end / lv.start
        if growth < self.GROWTH or trend.tau < self.MIN_TAU or trend.direction <= 0:
            return None
        return self.finding(
            confidence="low",
            severity="warning",
            score=min(1.0, math.log10(growth) / 2),
            p_value=trend.p_value,
            summary=f"the gradient norm rose steadily {fmt_factor(growth)} over the run ({fmt_num(lv.start)} -> "
            f"{fmt_num(lv.end)}, Mann-Kendall tau {trend.tau:.2f})",
            recommendation=f"The gradient norm grows steadily ({fmt_factor(growth)} over the run), as it does when "
            "gradients are never reset and each step adds to the last: check that `optimizer.zero_grad()` is called "
            "once per step, before `loss.backward()`.",
            evidence=[
                Evidence(
                    "grad_norm_steady_growth", gn.key, {"growth": growth, "tau": trend.tau, "p_value": trend.p_value}
                )
            ],
        )
