"""`gradient_clipping_masks_lr`: the clip is active on most steps and hides a too-high learning rate."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num
from mlflow_nnaudit.auditor.rules.helpers import LEARNING_RATE_READS


class GradientClippingMasksLr(Rule):
    """The recorder wraps `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_` and compares
    the gradient before each call (the total norm the function returns; for value clipping
    the largest |gradient|, on a sample of calls) with the limit. Reported when the clip bites
    on at least half of at least 10 measured calls: every such step has the length the limit
    sets, not the one the learning rate sets, so the clip hides a learning rate that is too
    high. Also when it bites less often but cuts a tenth of the calls or more to a tenth of their
    size or less (the 90th percentile of gradient / limit at 10 or more): spikes on one step in
    ten are no rare spikes, and each of those steps is the clip's, 10x smaller than the rate's
    (a run that converged fast spends its later steps with gradients under the limit, which
    dilutes the share). High confidence when it bites on 90% of the calls with the typical
    gradient at least twice the limit.

    The clip-to-gradient ratio is not a learning-rate factor: the advice moves the learning rate
    by a bounded factor taken from the run's own numbers (the typical gradient-to-limit ratio,
    clamped to 3..1000x, never more). When the learning rate is found too high on the run in
    its own right (the loss blew up or was destroyed anyway), this finding is its consequence."""

    cause = "gradient_clipping_masks_lr"
    #: upstream causes it follows from, when found too (listed after them)
    reads = (("clipping",), *LEARNING_RATE_READS)
    consequence_of = ("learning_rate_too_high",)
    #: the advice never moves a learning rate by more than this factor (nor less than MIN_FACTOR)
    MAX_FACTOR = 1000.0
    MIN_FACTOR = 3.0

    #: share of clipping calls where the clip bites that makes it "active on most steps" (the
    #: catalog's wording; clipping is meant to catch rare spikes, Pascanu et al. 2013)
    BITES_SHARE = 0.5
    #: ... or cuts the 10% largest gradients by this factor or more (the recorder's 90th percentile)
    SPIKE_CUT = 10.0
    #: measured calls needed before the share means anything
    MIN_CALLS = 10
    #: high confidence: bites this often, with the typical gradient this many times the limit
    HIGH_SHARE = 0.9
    HIGH_RATIO = 2

    def evaluate(self, view: RunView) -> Finding | None:
        clip = view.fact("clipping")
        if not isinstance(clip, dict) or clip.get("measured_calls", 0) < self.MIN_CALLS:
            return None
        share, ratio, limit = clip["bite_share"], clip["median_pre_clip_ratio"], clip["limit"]
        p90 = clip.get("p90_pre_clip_ratio") or 0.0
        if share < self.BITES_SHARE and not p90 >= self.SPIKE_CUT:
            return None
        what = "norm" if clip.get("kind") == "norm" else "largest |value|"
        fn = "clip_grad_norm_" if clip.get("kind") == "norm" else "clip_grad_value_"
        lr = view.learning_rate()
        factor = min(max(ratio, self.MIN_FACTOR), self.MAX_FACTOR)
        lr_text = (
            f" from {fmt_num(lr[1])} to about {fmt_num(lr[1] / factor)} ({factor:.0f}x lower)"
            if lr
            else f" about {factor:.0f}x"
        )
        return self.finding(
            confidence="high" if share >= self.HIGH_SHARE and ratio >= self.HIGH_RATIO else "medium",
            severity="warning",
            score=min(1.0, share),
            summary=f"`{fn}` (limit {fmt_num(limit)}) cut the gradient on {share:.0%} of {clip['measured_calls']} "
            f"measured calls; the gradient {what} was typically {fmt_num(ratio)}x the limit"
            + (f", and {fmt_num(p90)}x or more on a tenth of them" if share < self.BITES_SHARE else ""),
            recommendation=f"Gradient clipping is active on {share:.0%} of the steps (the gradient {what} is typically "
            f"{fmt_num(ratio)}x the limit {fmt_num(limit)}), so the step size is set by the clip, not by the learning rate: "
            f"lower the learning rate{lr_text} and set the limit near the gradient {what} of a healthy step (e.g. its "
            "90th percentile), so that clipping only catches the rare spikes.",
            evidence=[Evidence("clipping_activity", schema.DIAGNOSTICS_ARTIFACT, dict(clip))],
        )
