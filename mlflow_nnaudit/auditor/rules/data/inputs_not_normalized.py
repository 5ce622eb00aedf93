"""`inputs_not_normalized`: the input features are far from zero mean and unit scale."""

from __future__ import annotations

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView, fmt_num


class InputsNotNormalized(Rule):
    """The recorder keeps per-feature statistics of sampled training input batches (features =
    dimension 1: columns of a table, channels of an image). Reported when the typical feature
    is far from zero mean and unit scale (median per-feature std above 10 or below 0.01, or
    median |mean| above 5, as with raw 0..255 pixels or features in the thousands), or when
    feature scales differ by more than 100x."""

    cause = "inputs_not_normalized"
    reads = (("inputs", "train"),)

    #: feature scale far from unit: median per-feature std above/below, |mean| above (in raw units),
    #: or features whose scales differ by this factor (starting points, see docs/causes.md)
    STD_HIGH = 10.0
    STD_LOW = 0.01
    MEAN_HIGH = 5.0
    SCALE_SPREAD = 100.0

    def evaluate(self, view: RunView) -> Finding | None:
        st = view.fact("inputs", "train")
        if not isinstance(st, dict):
            return None
        problems = []
        if st["median_std"] > self.STD_HIGH or 0 < st["median_std"] < self.STD_LOW:
            problems.append(f"the typical feature has standard deviation {fmt_num(st['median_std'])}")
        if st["median_abs_mean"] > self.MEAN_HIGH:
            problems.append(f"the typical feature has mean {fmt_num(st['median_abs_mean'])}")
        if st["std_ratio"] > self.SCALE_SPREAD:
            problems.append(f"feature scales differ by {fmt_num(st['std_ratio'])}x")
        if not problems:
            return None
        seen = "; ".join(problems)
        return self.finding(
            confidence="high",
            severity="warning",
            score=0.8,
            summary=f"inputs are not normalised: {seen} (largest |value| {fmt_num(st['max_abs'])})",
            recommendation=f"The inputs are not normalised ({seen}): standardise each feature with the training "
            "set's mean and std (e.g. `transforms.Normalize(mean, std)` for images, or (x - mean) / std per column), "
            "and apply the same statistics to validation and test data.",
            evidence=[
                Evidence(
                    "input_statistics",
                    schema.DIAGNOSTICS_ARTIFACT,
                    {
                        k: st[k]
                        for k in ("median_std", "median_abs_mean", "std_ratio", "max_abs", "features", "batches")
                    },
                )
            ],
        )
