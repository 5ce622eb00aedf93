"""dead_relu: most units after a ReLU layer never activate."""

import numpy as np

from tests.rules.conftest import fires, healthy_diagnostics, healthy_loss, layer_curves, make_view, quiet, rng

CAUSE = "dead_relu"


def shares(first_half, second_half, samples=60, seed=0):
    """A dead-unit share per sampled step: one level in the first half of the run, another after."""
    k = samples // 2
    v = np.r_[np.full(k, first_half), np.full(samples - k, second_half)]
    return np.clip(v + 0.02 * rng(seed).standard_normal(samples), 0, 1)


def run(per_layer):
    # the healthy model's ReLU layers are modules 1 and 4
    return make_view(healthy_loss(), diagnostics=healthy_diagnostics(), extra=layer_curves("dead_relu", per_layer))


def test_fires_when_units_die_during_training():
    f = fires(CAUSE, run({"1": shares(0.1, 0.8), "4": shares(0.1, 0.15, seed=1)}))
    assert f.confidence == "high" and f.severity == "warning" and "layer 1" in f.summary


def test_nearly_all_units_dead_fails_the_run():
    f = fires(CAUSE, run({"1": shares(0.98, 0.98), "4": shares(0.97, 0.97, seed=1)}))
    assert f.severity == "failed" and "1 more layers" in f.summary


def test_quiet_on_a_healthy_share_of_inactive_units():
    quiet(CAUSE, run({"1": shares(0.15, 0.2), "4": shares(0.1, 0.2, seed=1)}))


def test_quiet_when_units_dead_early_revive():
    # the second half of the run is what counts
    quiet(CAUSE, run({"1": shares(0.8, 0.1), "4": shares(0.1, 0.1, seed=1)}))
