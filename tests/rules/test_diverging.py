"""diverging: the training loss climbs back after its best point."""

import numpy as np

from tests.rules.conftest import N, falling, fires, healthy_loss, linear, make_view, quiet

CAUSE = "diverging"


def diverging_loss(n=N, seed=0):
    """Falls 1.4 -> ~0.3 over the first 40%, then climbs back to 1.2: most of the progress lost."""
    k = int(0.4 * n)
    down = falling(k, 1.4, 0.3, knee=0.1)
    up = linear(n - k, down[-1], 1.2)
    return np.concatenate([down, up]) + falling(n, 0, 0, noise=0.03, seed=seed)


def test_fires_when_the_loss_climbs_back():
    f = fires(CAUSE, make_view(diverging_loss(), params={"lr": "0.3"}))
    assert f.severity == "failed" and f.confidence == "medium"  # the training curve alone
    assert f.p_value is not None and f.p_value < 0.05
    assert "from 0.3" in f.recommendation


def test_a_validation_loss_rising_with_it_makes_it_high_confidence():
    val = np.concatenate([falling(8, 1.35, 0.4, knee=0.2), linear(12, 0.45, 1.2)])
    f = fires(CAUSE, make_view(diverging_loss(), val))
    assert f.confidence == "high" and "validation loss rose too" in f.summary


def test_quiet_on_a_converged_noisy_loss():
    quiet(CAUSE, make_view(healthy_loss()))


def test_quiet_on_a_late_uptick_that_gives_back_a_tenth_of_the_progress():
    # converged to 0.3 from 1.4, then creeps up by 0.1 (a tenth of the gain) over the last 30%
    n = N
    k = int(0.7 * n)
    y = np.concatenate([falling(k, 1.4, 0.3, knee=0.1), linear(n - k, 0.3, 0.41)])
    quiet(CAUSE, make_view(y + falling(n, 0, 0, noise=0.03, seed=1)))
