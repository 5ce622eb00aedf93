"""`update_ratio_abnormal`: some layers move far too much or too little per step."""

from __future__ import annotations

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Evidence, Finding, Rule, RunView
from mlflow_nnaudit.auditor.rules.helpers import UPDATE_RATIO_HIGH, UPDATE_RATIO_LOW, UPDATE_RATIO_READS


class UpdateRatioAbnormal(Rule):
    """Per layer, the median update/weight ratio ||dW||/||W|| over the second half of the run
    (recorder, sampled steps). ~1e-3 is the usual healthy order; reported when some layer is
    above 1e-1 or below 1e-5 while others are not, and stands apart from them: at least 10x
    from the median of the layers inside the band. When all layers are off together, or one
    just crosses the line next to layers as fast (a whole network moving at 5e-2 with its head at
    1.1e-1 is one learning rate, not one layer's), the learning-rate rules say so instead. Exact
    zeros are left to `frozen_parameters`. When the optimizer's parameter groups were given learning rates 10x
    or more apart (the recorder's `lr_spread`), a layer moving too little must also stand 10x further apart than
    the rates do: a pretrained encoder fine-tuned at a hundredth of its head's rate is slow by design."""

    cause = "update_ratio_abnormal"
    explained_by = ("learning_rate_too_low", "learning_rate_too_high", "frozen_parameters")
    #: upstream causes it follows from, when found too (listed after them)
    consequence_of = ("learning_rate_too_high", "bad_weight_init")
    reads = (*UPDATE_RATIO_READS, ("optimizer", schema.PARAM_OPTIMIZER_LR_SPREAD))

    #: a layer's median ratio above / below these is far from ~1e-3 (shared with the learning-rate rules)
    RATIO_HIGH = UPDATE_RATIO_HIGH
    RATIO_LOW = UPDATE_RATIO_LOW
    #: an off layer must differ from the median of the in-band layers by this factor (an order of magnitude)
    APART = 10.0
    #: layers named in the summary at most
    NAMED_LAYERS = 4

    def applies(self, view: RunView) -> bool:
        """Not on L-BFGS: its steps come from a line search, not from a learning rate, so an
        update/weight ratio says nothing about a setting."""
        return not view.lbfgs()

    def evaluate(self, view: RunView) -> Finding | None:
        ratios = {k: v for k, v in view.update_ratios().items() if v > 0}
        if len(ratios) < 2:
            return None
        high = {k: v for k, v in ratios.items() if v > self.RATIO_HIGH}
        low = {k: v for k, v in ratios.items() if v < self.RATIO_LOW}
        inside = [v for k, v in ratios.items() if k not in high and k not in low]
        if not inside:
            return None
        typical = float(np.median(inside))
        high = {k: v for k, v in high.items() if v >= self.APART * typical}
        low = {k: v for k, v in low.items() if v <= typical / self.APART}
        spread = view.fact("optimizer", schema.PARAM_OPTIMIZER_LR_SPREAD)
        if isinstance(spread, (int, float)) and spread >= self.APART:
            # parameter groups given rates 10x or more apart: a layer as much slower as the rates are is by design
            low = {k: v for k, v in low.items() if v < typical / (self.APART * spread)}
        off = {**high, **low}
        if not off:
            return None
        names = ", ".join(f"{k} ({v:.0e})" for k, v in list(off.items())[: self.NAMED_LAYERS])
        return self.finding(
            confidence="medium",
            severity="warning",
            score=0.5,
            summary=f"update/weight ratio far from ~1e-3 in {names}",
            recommendation=f"Some layers move far too {'much' if high else 'little'} per step (update/weight ratio "
            f"{names}; healthy is ~1e-3): give those layers their own learning rate (optimizer parameter groups), "
            "or check their initialisation and normalisation.",
            evidence=[Evidence("update_ratio", schema.layer_prefix(schema.LAYER_UPDATE_RATIO), {"per_layer": ratios})],
        )
