"""exploding_gradients: the gradient norm grows by orders of magnitude."""

import numpy as np

from tests.rules.conftest import fires, healthy_loss, make_view, nan_from, quiet, rng

CAUSE = "exploding_gradients"


def grad_norm(start, end, n=600, seed=0):
    """A gradient norm growing geometrically from `start` to `end`, with log-normal jitter."""
    return np.geomspace(start, end, n) * np.exp(0.2 * rng(seed).standard_normal(n))


def test_fires_on_a_thousandfold_growth():
    # beside a loss that stopped falling and rose again: harm seen, failed
    worse = np.r_[np.linspace(2.0, 1.0, 300), np.linspace(1.0, 1.6, 300)] + 0.02 * rng(4).standard_normal(600)
    f = fires(CAUSE, make_view(worse, grad_norm=grad_norm(0.5, 500.0)))
    assert f.confidence == "high" and f.severity == "failed"


def test_a_growth_beside_a_loss_that_fell_throughout_is_a_warning():
    # f169 (a price regressor on raw dollars, MAPE written by hand): the norm grew 216x as the outputs grew towards
    # targets in the hundred thousands, while the loss fell from 100 to 28 without a jump: no harm seen in it
    f = fires(CAUSE, make_view(healthy_loss(), grad_norm=grad_norm(0.5, 500.0)))
    assert f.confidence == "medium" and f.severity == "warning" and "still fell" in f.summary
    # found by review: late spikes 40x the level, or a validation loss that rose, are harm beside the growth
    spiky = healthy_loss()
    spiky[250:400:15] *= 40
    assert fires(CAUSE, make_view(spiky, grad_norm=grad_norm(0.5, 500.0))).severity == "failed"
    rising_val = np.linspace(1.7, 3.5, 10)
    assert fires(CAUSE, make_view(healthy_loss(), rising_val, grad_norm=grad_norm(0.5, 500.0))).severity == "failed"
    # found by the third review: a first loss far above the rest (before any update), or a validation loss ending a
    # hair above its first point, is no harm
    high_first = healthy_loss()
    high_first[0] = 3.5
    assert fires(CAUSE, make_view(high_first, grad_norm=grad_norm(0.5, 500.0))).severity == "warning"
    flat_val = np.r_[0.40, 0.37, np.full(7, 0.36), 0.401]
    assert fires(CAUSE, make_view(healthy_loss(), flat_val, grad_norm=grad_norm(0.5, 500.0))).severity == "warning"


def test_fires_on_a_gradient_norm_that_turns_nan():
    f = fires(CAUSE, make_view(healthy_loss(), grad_norm=nan_from(grad_norm(0.5, 1.5), 500)))
    assert "NAN" in f.summary


def test_quiet_on_a_gradient_norm_that_rises_as_the_loss_sharpens():
    quiet(CAUSE, make_view(healthy_loss(), grad_norm=grad_norm(0.5, 1.5)))


def test_quiet_on_a_single_spike():
    g = grad_norm(0.5, 1.5)
    g[300] = 1e4
    quiet(CAUSE, make_view(healthy_loss(), grad_norm=g))


def test_a_gradient_norm_nan_with_the_loss_and_no_growth_follows_the_nonfinite_loss():
    # log(1 - sigmoid) in a hand-written BCE (held-out program f45): the loss turns NaN at step 157, the gradient
    # norm with it, never having grown: the NaN gradient is the loss's, listed after nonfinite_loss
    from tests.rules.test_learning_rate_too_high import _ranked

    view = make_view(nan_from(healthy_loss(), 400), grad_norm=nan_from(grad_norm(0.5, 1.5), 400))
    f = fires(CAUSE, view)
    assert f.confidence == "medium" and "nonfinite_loss" in f.follows
    causes = _ranked(view)
    assert causes.index("nonfinite_loss") < causes.index(CAUSE)


def test_a_gradient_norm_nan_before_the_loss_is_still_high():
    f = fires(CAUSE, make_view(nan_from(healthy_loss(), 500), grad_norm=nan_from(grad_norm(0.5, 1.5), 400)))
    assert f.confidence == "high" and not f.follows


def test_a_norm_that_blew_up_early_and_stayed_high_is_still_upstream_of_the_nan_loss():
    # found by review: the norm explodes 0.5 -> 300 over the first 150 steps and sits there until loss and norm
    # turn NaN at step 500; and a linear 0.05 -> 200 growth: real explosions, listed before nonfinite_loss
    from tests.rules.conftest import linear
    from tests.rules.test_learning_rate_too_high import _ranked

    r = rng(11)
    early = np.r_[np.geomspace(0.5, 300, 150), np.full(450, 300.0)] * np.exp(0.05 * r.standard_normal(600))
    steady = linear(600, 0.05, 200.0) * np.exp(0.05 * r.standard_normal(600))
    for g in (early, steady):
        view = make_view(nan_from(healthy_loss(), 500), grad_norm=nan_from(g, 500))
        assert fires(CAUSE, view).confidence == "high"
        causes = _ranked(view)
        assert causes.index(CAUSE) < causes.index("nonfinite_loss"), causes
