"""gradients_not_zeroed: gradients from the previous step are still there before backward."""

import numpy as np

from tests.rules.conftest import (
    SEED,
    curve,
    fires,
    healthy_diagnostics,
    healthy_loss,
    healthy_train,
    make_view,
    quiet,
    rule_for,
    sampled_curve,
)

CAUSE = "gradients_not_zeroed"
KEY = "nnaudit/grad_present_before_backward"


def recorded(present_on_sampled_steps):
    return make_view(
        healthy_loss(), diagnostics=healthy_diagnostics(), extra=sampled_curve(KEY, present_on_sampled_steps)
    )


def test_fires_when_gradients_are_never_reset():
    f = fires(CAUSE, recorded(np.ones(60)))
    assert f.confidence == "high" and f.severity == "failed" and "100% of 60" in f.summary


def test_quiet_when_zero_grad_is_called_every_step():
    quiet(CAUSE, recorded(np.zeros(60)))


def test_quiet_on_deliberate_accumulation_over_two_steps():
    # zero_grad every other step (gradient accumulation on purpose): present on half the samples
    quiet(CAUSE, recorded(np.tile([1.0, 0.0], 30)))


def test_quiet_on_a_recorded_run_without_the_curve():
    # the recorder wrote its facts but sampled no step with a backward after it: nothing to judge,
    # and the curve-only reading is not used on recorded runs
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics(), grad_norm=np.geomspace(0.3, 30, 600)))


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_gradients_not_zeroed_from_a_steadily_growing_grad_norm():
    rng = np.random.default_rng(SEED)
    t = np.arange(400)
    growing = 0.3 * (1 + t / 6.0) * np.exp(0.05 * rng.standard_normal(400))
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(healthy_train(400), grad_norm=curve("grad_norm", growing)))
    assert f and f.confidence == "low" and f.p_value is not None
    healthy = 0.4 * (1 + 1.5 * (1 - np.exp(-t / 80))) * np.exp(0.2 * rng.standard_normal(400))
    assert rule.evaluate(make_view(healthy_train(400), grad_norm=curve("grad_norm", healthy))) is None


def test_two_stale_samples_count_when_the_gradient_norm_grows_like_a_running_sum():
    # a short run the recorder sampled twice, stale both times, its gradient norm 0.3 -> 36 (the
    # corpus's Adam without zero_grad); the same two samples with a steady gradient norm are too few
    stale = sampled_curve(KEY, np.ones(2), every=100)
    d = healthy_diagnostics()
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=stale, grad_norm=np.geomspace(0.3, 36, 600)))
    assert "100% of 2" in f.summary
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=stale, grad_norm=np.full(600, 0.5)))
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=sampled_curve(KEY, np.zeros(2), every=100)))


def at_steps(steps, values):
    return make_view(healthy_loss(), diagnostics=healthy_diagnostics(), extra={KEY: curve(KEY, values, steps)})


def test_stale_from_the_first_step_with_one_clean_sample_later_is_never_reset():
    # a Lightning manual-optimisation loop without zero_grad(): stale on steps 1-5, clean once at an epoch boundary
    f = fires(CAUSE, at_steps([1, 2, 3, 4, 5, 10, 63, 96], [1, 1, 1, 1, 1, 1, 1, 0]))
    assert "88% of 8" in f.summary


def test_a_reset_among_the_first_steps_keeps_the_ninety_percent():
    quiet(CAUSE, at_steps([1, 2, 3, 4, 5, 10, 63, 96], [1, 0, 1, 1, 1, 1, 1, 1]))


CLOSURE_KEY = "nnaudit/grad_present_in_closure"


def closure_steps(step_check, closure_check):
    extra = {**sampled_curve(KEY, step_check), **sampled_curve(CLOSURE_KEY, closure_check)}
    return make_view(healthy_loss(), diagnostics=healthy_diagnostics(), extra=extra)


def test_fires_when_an_lbfgs_closure_never_zeroes_its_own_gradients():
    # zero_grad() once a step, before optimizer.step(closure): each step's first closure call is
    # clean, its second finds the first one's gradients
    f = fires(CAUSE, closure_steps(np.zeros(30), np.ones(30)))
    assert "closure's previous call" in f.summary and "inside the closure" in f.recommendation
    quiet(CAUSE, closure_steps(np.zeros(30), np.zeros(30)))  # zero_grad() inside the closure
