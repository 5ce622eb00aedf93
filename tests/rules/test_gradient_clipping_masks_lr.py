"""gradient_clipping_masks_lr: the clip bites on most steps, so it sets the step size."""

import numpy as np

from tests.rules.conftest import clip_summary, fires, healthy_diagnostics, healthy_loss, make_view, quiet, rng

CAUSE = "gradient_clipping_masks_lr"


def ratios(median, spread=0.4, calls=300, seed=0):
    """Pre-clip gradient norm / limit per measured call: log-normal around `median`."""
    return median * np.exp(spread * rng(seed).standard_normal(calls))


def run(r, **kw):
    d = healthy_diagnostics(clipping=clip_summary(r, **kw))
    return make_view(healthy_loss(), diagnostics=d, params={"nnaudit.optimizer.lr": "0.1"})


def test_fires_when_every_gradient_is_several_times_the_limit():
    f = fires(CAUSE, run(ratios(5.0)))
    assert f.confidence == "high" and f.severity == "warning"
    assert "clip_grad_norm_" in f.summary and "from 0.1 to about 0.02" in f.recommendation


def test_fires_with_medium_confidence_when_it_bites_on_most_calls_by_a_little():
    f = fires(CAUSE, run(ratios(1.3, spread=0.3)))  # bites on ~80% of the calls, by ~30%
    assert f.confidence == "medium"


def test_fires_on_value_clipping():
    f = fires(CAUSE, run(ratios(5.0), kind="value", limit=0.01))
    assert "clip_grad_value_" in f.summary


def test_quiet_when_the_clip_only_catches_rare_spikes():
    # the healthy run's clipping: typical norm half the limit, bites on well under a fifth of the calls
    quiet(CAUSE, run(ratios(0.5, spread=0.5)))


def test_quiet_on_too_few_measured_calls():
    quiet(CAUSE, run(ratios(5.0, calls=3)))
