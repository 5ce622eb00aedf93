"""initial_loss_mismatch: the first loss is far from ln C."""

import math

from tests.rules.conftest import (
    classification_loss,
    fires,
    healthy_diagnostics,
    healthy_loss,
    healthy_train,
    make_view,
    quiet,
    rule_for,
)

CAUSE = "initial_loss_mismatch"
CHANCE = math.log(3)


def run(first_loss):
    return make_view(
        healthy_loss(), diagnostics=healthy_diagnostics(loss=classification_loss(3, first_loss=first_loss))
    )


def test_fires_on_logits_that_start_huge():
    f = fires(CAUSE, run(25 * CHANCE))
    assert f.confidence == "medium" and f.severity == "warning" and "ln 3" in f.summary
    assert "above" in f.recommendation


def test_fires_on_a_first_loss_far_below_chance():
    f = fires(CAUSE, run(CHANCE / 20))
    assert "below" in f.recommendation


def test_quiet_on_a_first_loss_near_ln_c():
    quiet(CAUSE, run(0.97 * CHANCE))


def test_quiet_on_a_first_loss_somewhat_above_ln_c():
    quiet(CAUSE, run(1.8 * CHANCE))  # a slightly confident start is normal


def test_quiet_on_a_regression():
    d = healthy_diagnostics(loss={"loss_function": "mse_loss", "n_classes": None, "first_loss": 1.1})
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d))


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_initial_loss_from_curves():
    big = healthy_train()
    big[:3] = [6.0, 5.9, 5.5]
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(big, params={"num_classes": "4"}))
    assert f and f.confidence == "low" and "ln 4" in f.summary
    assert rule.evaluate(make_view(healthy_train() + 1.1, params={"num_classes": "4"})) is None
    assert rule.evaluate(make_view(big)) is None  # no class count: no ln C to compare with
