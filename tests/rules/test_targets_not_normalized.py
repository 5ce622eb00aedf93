"""targets_not_normalized: regression targets far from unit scale."""

from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    healthy_train,
    make_view,
    mlp_model,
    quiet,
    regression_loss,
    rng,
    rule_for,
)

CAUSE = "targets_not_normalized"


def run(targets):
    d = healthy_diagnostics(model=mlp_model([8, 32, 1]), loss=regression_loss(targets))
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_on_targets_in_the_thousands():
    f = fires(CAUSE, run(2000 + 500 * rng(0).standard_normal(640)))
    assert f.confidence == "high" and f.severity == "warning" and "std" in f.summary


def test_quiet_on_standardised_targets():
    quiet(CAUSE, run(rng(1).standard_normal(640)))


def test_quiet_on_nan_targets():
    """NaN targets (an autoencoder fed inputs with a NaN column) have NaN statistics: they say
    nothing about scale (it read "targets have mean NaN and std NaN")."""
    targets = rng(3).standard_normal(640)
    targets[::7] = float("nan")
    quiet(CAUSE, run(targets))


def test_quiet_on_targets_of_a_few_units():
    quiet(CAUSE, run(4 + 2 * rng(2).standard_normal(640)))  # mean 4, std 2: fine for a network


def test_quiet_on_a_classifier():
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics()))


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_target_scale_from_curves():
    mse = 1e5 * healthy_train()
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(mse))
    assert f and f.confidence == "low"
    assert rule.evaluate(make_view(healthy_train())) is None
    assert rule.evaluate(make_view(mse, params={"n_classes": "10"})) is None
