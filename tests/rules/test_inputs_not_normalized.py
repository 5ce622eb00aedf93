"""inputs_not_normalized: input features far from zero mean and unit scale."""

import numpy as np

from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    input_stats,
    make_view,
    quiet,
    rng,
    standardised_features,
)

CAUSE = "inputs_not_normalized"


def run(mean, std):
    d = healthy_diagnostics()
    d["inputs"]["train"] = input_stats(mean, std, batches=60)
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_on_raw_pixel_values():
    r = rng(0)
    f = fires(CAUSE, run(120 + 10 * r.standard_normal(8), 60 + 5 * r.standard_normal(8)))  # 0..255 scale
    assert f.confidence == "high" and f.severity == "warning"
    assert "standard deviation" in f.summary and "mean" in f.summary


def test_fires_on_features_on_very_different_scales():
    mean, std = standardised_features(8)
    std[0] = 2000.0  # one column in the thousands next to standardised ones
    f = fires(CAUSE, run(mean, std))
    assert "feature scales differ" in f.summary


def test_quiet_on_standardised_inputs():
    quiet(CAUSE, run(*standardised_features(8)))


def test_quiet_on_inputs_scaled_to_the_unit_interval():
    # ToTensor()'s 0..1 pixels without Normalize: mean ~0.45, std ~0.25; off-centre, but in the band
    r = rng(1)
    quiet(CAUSE, run(0.45 + 0.05 * r.standard_normal(3), np.array([0.25, 0.24, 0.26])))
