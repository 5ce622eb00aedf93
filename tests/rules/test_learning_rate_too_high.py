"""learning_rate_too_high: steps too large for the loss surface."""

import numpy as np

from tests.rules.conftest import (
    falling,
    fires,
    healthy_diagnostics,
    healthy_loss,
    layer_curves,
    layer_names,
    make_view,
    nan_from,
    quiet,
    recorder_params,
)

CAUSE = "learning_rate_too_high"
#: ||dW||/||W|| per step: ~1e-3 is healthy; the rule's documented limit is 1e-1
HEALTHY_RATIO, HUGE_RATIO = 1e-3, 0.4


def blow_up_then_nan():
    """Falls for a while, then grows ~20x in 100 steps and turns NaN."""
    y = np.concatenate(
        [falling(300, 1.4, 0.3, knee=0.1, noise=0.02), 0.3 * np.exp(np.linspace(0, 3, 100)), np.zeros(50)]
    )
    return nan_from(y, 400)


def recorded(ratio):
    d = healthy_diagnostics()
    return d, layer_curves("update_ratio", {n: ratio for n in layer_names(d["model"])})


def test_fires_on_a_loss_that_grows_before_turning_nan():
    f = fires(CAUSE, make_view(blow_up_then_nan()))
    assert f.severity == "failed" and f.confidence == "medium"  # curves alone
    assert "grew" in f.summary


def test_huge_update_ratios_with_a_curve_sign_are_high_confidence():
    d, ratios = recorded(HUGE_RATIO)
    f = fires(CAUSE, make_view(blow_up_then_nan(), diagnostics=d, extra=ratios, params=recorder_params(d)))
    assert f.confidence == "high" and f.severity == "failed"
    assert "0.1" in f.recommendation  # says the lr the recorder saw


def test_huge_update_ratios_alone_are_medium_confidence():
    d, ratios = recorded(HUGE_RATIO)
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=ratios))
    assert f.confidence == "medium" and f.severity == "warning"


def test_quiet_on_a_healthy_recorded_run():
    d, ratios = recorded(HEALTHY_RATIO)
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=ratios))


def test_quiet_on_lively_but_sane_updates():
    d, ratios = recorded(HEALTHY_RATIO * 20)  # 20x the usual, still well under the limit
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=ratios))


def test_fires_high_and_failed_on_an_early_blow_up_that_leaves_the_loss_at_chance():
    import math

    import numpy as np

    from tests.rules.conftest import fires, make_view

    # per-epoch curve: the first epoch averages an explosion, then the loss sits at ln 4
    train = np.r_[3e13, 5.0, np.full(18, math.log(4))]
    f = fires("learning_rate_too_high", make_view(train, params={"lr": "10", "n_classes": "4"}))
    assert f.confidence == "high" and f.severity == "failed" and f.kind == "outcome"
    assert "blew up at step 0" in f.summary and "to 1)" in f.recommendation
