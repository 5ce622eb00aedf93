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


def _early_blow_up_with_inputs(mean, std):
    from tests.rules.conftest import input_stats

    # per-step curve: the first steps explode 400x, then the loss sits at ln 10
    train = np.r_[45.0, 2e4, 900.0, np.full(60, np.log(10))]
    d = healthy_diagnostics(inputs={"train": input_stats(np.full(28, mean), np.full(28, std), batches=2)})
    return make_view(train, diagnostics=d, params=recorder_params(d))


def test_a_blow_up_on_inputs_in_the_hundreds_follows_from_the_input_scale():
    # raw 0..255 pixels (f13): the typical feature's RMS is ~110, 10x and more unit scale
    f = fires(CAUSE, _early_blow_up_with_inputs(68.9, 88.9))
    assert f.severity == "failed" and f.follows == ("inputs_not_normalized",)


def test_a_blow_up_on_standardised_or_tiny_inputs_does_not_point_at_them():
    # standardised inputs (f01/f02): the learning rate alone; tiny inputs cannot inflate a step
    for mean, std in ((0.3, 1.3), (0.001, 0.005)):
        f = fires(CAUSE, _early_blow_up_with_inputs(mean, std))
        assert f.follows == (), (mean, std)
