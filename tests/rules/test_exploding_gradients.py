"""exploding_gradients: the gradient norm grows by orders of magnitude."""

import numpy as np

from tests.rules.conftest import fires, healthy_loss, make_view, nan_from, quiet, rng

CAUSE = "exploding_gradients"


def grad_norm(start, end, n=600, seed=0):
    """A gradient norm growing geometrically from `start` to `end`, with log-normal jitter."""
    return np.geomspace(start, end, n) * np.exp(0.2 * rng(seed).standard_normal(n))


def test_fires_on_a_thousandfold_growth():
    f = fires(CAUSE, make_view(healthy_loss(), grad_norm=grad_norm(0.5, 500.0)))
    assert f.confidence == "high" and f.severity == "failed"


def test_fires_on_a_gradient_norm_that_turns_nan():
    f = fires(CAUSE, make_view(healthy_loss(), grad_norm=nan_from(grad_norm(0.5, 1.5), 500)))
    assert "NAN" in f.summary


def test_quiet_on_a_gradient_norm_that_rises_as_the_loss_sharpens():
    quiet(CAUSE, make_view(healthy_loss(), grad_norm=grad_norm(0.5, 1.5)))


def test_quiet_on_a_single_spike():
    g = grad_norm(0.5, 1.5)
    g[300] = 1e4
    quiet(CAUSE, make_view(healthy_loss(), grad_norm=g))
