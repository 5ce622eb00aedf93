"""oscillating_loss: the loss swings up and down without settling."""

import numpy as np

from tests.rules.conftest import ar1, falling, fires, healthy_loss, make_view, quiet, rng

CAUSE = "oscillating_loss"


def test_fires_on_a_periodic_swing():
    t = np.arange(600)
    y = falling(600, 1.4, 0.5, knee=0.1, noise=0.02) + 0.15 * np.sin(2 * np.pi * t / 25)  # +/-30% of the level
    f = fires(CAUSE, make_view(y))
    assert f.confidence == "low" and f.severity == "warning"  # periodic alone
    assert f.p_value is not None and f.p_value < 0.01 and "every ~25 points" in f.summary


def test_fires_on_swings_larger_than_the_progress():
    y = 0.5 * np.exp(rng(3).standard_normal(600))  # log-normal jumps of the order of the level, no progress
    f = fires(CAUSE, make_view(y))
    assert f.p_value is None and "point-to-point swings" in f.summary


def test_quiet_on_minibatch_noise():
    quiet(CAUSE, make_view(healthy_loss()))


def test_quiet_on_strongly_autocorrelated_wander():
    # red noise (phi 0.9) wanders slowly, with no period: the AR(1) baseline explains it
    quiet(CAUSE, make_view(falling(600, 1.4, 0.5, knee=0.1) + ar1(600, phi=0.9, sd=0.04, seed=4)))
