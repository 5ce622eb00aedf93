"""learning_rate_too_low: the loss falls steadily but far too slowly."""

import math

from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    layer_curves,
    layer_names,
    linear,
    make_view,
    quiet,
)

CAUSE = "learning_rate_too_low"
CHANCE = math.log(4)
#: ||dW||/||W|| per step: ~1e-3 is healthy; the rule's documented limit is 1e-5
HEALTHY_RATIO, TINY_RATIO = 1e-3, 1e-7


def slow_loss():
    """10% down over the whole run, at a steady rate."""
    return linear(600, CHANCE, 0.9 * CHANCE, noise=0.005)


def recorded(ratio):
    d = healthy_diagnostics()
    return d, layer_curves("update_ratio", {n: ratio for n in layer_names(d["model"])})


def test_fires_on_a_slow_steady_decline():
    f = fires(CAUSE, make_view(slow_loss()))
    assert f.confidence == "medium" and f.severity == "warning"
    assert f.p_value is not None and f.p_value < 0.05


def test_tiny_update_ratios_with_the_slow_curve_are_high_confidence():
    d, ratios = recorded(TINY_RATIO)
    f = fires(CAUSE, make_view(slow_loss(), diagnostics=d, extra=ratios))
    assert f.confidence == "high" and f.p_value is None  # decided on the recorder's measurement


def test_tiny_update_ratios_on_a_loss_that_does_not_move_fail_the_run():
    d, ratios = recorded(TINY_RATIO)
    f = fires(CAUSE, make_view(linear(600, CHANCE, CHANCE, noise=0.005), diagnostics=d, extra=ratios))
    assert f.confidence == "medium" and f.severity == "failed"


def test_quiet_on_a_healthy_recorded_run():
    d, ratios = recorded(HEALTHY_RATIO)
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=ratios))


def test_quiet_on_a_steady_decline_that_makes_real_progress():
    # still falling steadily, but 50% down: not converged (another cause), not too slow
    quiet(CAUSE, make_view(linear(600, CHANCE, 0.5 * CHANCE, noise=0.005)))


def test_quiet_on_a_run_whose_loss_blew_up():
    import math

    import numpy as np

    from tests.rules.conftest import make_view, quiet

    # the explosion's peak is no start to measure a slow decline from
    quiet(
        "learning_rate_too_low",
        make_view(np.r_[3e13, np.linspace(5.0, math.log(4), 39)], params={"lr": "10", "n_classes": "4"}),
    )


def test_quiet_when_healthy_steps_shrank_as_the_loss_reached_its_minimum():
    # a loss converging to ~1e-11 (h04, a polynomial fit): the gradient vanishes, and with it the
    # updates (from ~1e-2 of the weights at first to ~1e-7): a minimum reached, not a small rate
    import numpy as np

    d = healthy_diagnostics()
    shrinking = np.geomspace(1e-2, 1e-7, 60)
    extra = layer_curves("update_ratio", {n: shrinking for n in layer_names(d["model"])})
    loss = CHANCE * np.exp(-np.arange(600) / 20.0) + 1e-11
    quiet(CAUSE, make_view(loss, diagnostics=d, extra=extra))


def test_tiny_steps_from_the_first_one_are_still_reported():
    import numpy as np

    d = healthy_diagnostics()
    extra = layer_curves("update_ratio", {n: np.full(60, TINY_RATIO) for n in layer_names(d["model"])})
    fires(CAUSE, make_view(linear(600, CHANCE, CHANCE, noise=0.005), diagnostics=d, extra=extra))


def test_the_curves_say_nothing_of_the_set_rate_after_an_early_decay():
    # the same slow decline, but the logged rate was cut 10x a fifth into the run (StepLR, f31):
    # the slowness is the schedule's (lr_decay_too_fast), not the set rate's
    import numpy as np

    from mlflow_nnaudit.auditor.curves import Curve

    lr = Curve("lr", np.array([0.0, 60.0, 120.0, 180.0, 300.0, 599.0]), np.array([0.1, 0.1, 0.01, 1e-3, 1e-4, 1e-5]))
    quiet(CAUSE, make_view(slow_loss(), lr=lr))
    # a rate cut only late in the run leaves the slow stretch to judge
    late = Curve("lr", np.array([0.0, 200.0, 400.0, 500.0, 599.0]), np.array([0.1, 0.1, 0.1, 0.01, 0.01]))
    fires(CAUSE, make_view(slow_loss(), lr=late))
