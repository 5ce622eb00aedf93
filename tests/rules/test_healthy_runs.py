"""The builder's healthy runs are healthy: no rule fires on them. Every fault test starts from
these and changes one thing, so a finding there is the fault's, not the baseline's."""

import numpy as np

from mlflow_nnaudit.auditor.rules import ALL_RULES
from tests.rules.conftest import (
    falling,
    healthy_diagnostics,
    healthy_loss,
    layer_curves,
    layer_names,
    make_view,
    recorder_params,
    rng,
    sampled_curve,
)


def findings(view):
    return [(r.cause, f.summary) for r in ALL_RULES if (f := r.evaluate(view)) is not None]


def test_no_rule_fires_on_the_healthy_recorded_run():
    d = healthy_diagnostics()
    names = layer_names(d["model"])
    r = rng(9)
    extra = {
        **layer_curves("update_ratio", {n: 1e-3 * np.exp(0.3 * r.standard_normal(60)) for n in names}),
        **layer_curves("grad_norm", {n: 0.3 * np.exp(0.3 * r.standard_normal(60)) for n in names}),
        **layer_curves("dead_relu", {"1": 0.1, "4": 0.15}),
        **sampled_curve("nnaudit/labels_per_batch", np.full(60, 3.0)),
        **sampled_curve("nnaudit/grad_present_before_backward", np.zeros(60)),
    }
    grad_norm = falling(600, 1.0, 0.6, knee=0.3) * np.exp(0.2 * r.standard_normal(600))
    view = make_view(
        healthy_loss(),
        falling(10, 1.3, 0.36, knee=0.15),
        lr=np.full(60, 0.1),
        grad_norm=grad_norm,
        params=recorder_params(d),
        extra=extra,
        diagnostics=d,
    )
    assert findings(view) == []


def test_no_rule_fires_on_the_healthy_curves_alone():
    view = make_view(
        healthy_loss(),
        falling(10, 1.3, 0.36, knee=0.15),
        params={"lr": "0.1", "batch_size": "32", "n_train": "512", "num_classes": "3"},
    )
    assert findings(view) == []
