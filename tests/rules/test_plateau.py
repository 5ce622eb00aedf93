"""plateau: the loss goes flat early, well above a good loss."""

import math

import numpy as np

from tests.rules.conftest import falling, fires, flat, healthy_loss, linear, make_view, quiet, rng

CAUSE = "plateau"
CHANCE = math.log(4)  # an untrained 4-class model's loss


def test_fires_on_a_loss_stuck_at_chance_from_the_start():
    f = fires(CAUSE, make_view(flat(600, CHANCE, noise=0.02)))
    assert f.confidence == "medium" and f.severity == "failed"  # no learning at all


def test_a_small_early_gain_then_flat_is_low_confidence():
    y = falling(600, CHANCE, 0.85 * CHANCE, knee=0.03, noise=0.02)  # 15% down, flat by 10% of the run
    val = falling(10, CHANCE, 0.86 * CHANCE, knee=0.05) + 0.002 * rng(0).standard_normal(10)
    f = fires(CAUSE, make_view(y, val))
    assert f.confidence == "low" and f.severity == "warning"


def test_quiet_on_a_healthy_run():
    quiet(CAUSE, make_view(healthy_loss()))


def test_quiet_on_a_slow_steady_decline():
    # 15% down at a steady rate: slow, not stuck
    quiet(CAUSE, make_view(linear(600, CHANCE, 0.85 * CHANCE, noise=0.01)))


def test_quiet_when_validation_keeps_improving():
    val = np.linspace(CHANCE, 0.6 * CHANCE, 10)
    quiet(CAUSE, make_view(flat(600, CHANCE, noise=0.02), val))
