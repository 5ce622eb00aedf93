"""final_layer_activation: the output activation cannot reach part of the target range."""

from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    make_view,
    mlp_model,
    quiet,
    regression_loss,
    rng,
)

CAUSE = "final_layer_activation"


def run(last, targets):
    d = healthy_diagnostics(model=mlp_model([8, 32, 1], last=last), loss=regression_loss(targets))
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_on_a_relu_output_with_negative_targets():
    f = fires(CAUSE, run("ReLU", rng(0).standard_normal(640)))  # half the targets are negative
    assert f.confidence == "high" and f.severity == "failed" and "ReLU" in f.summary


def test_a_sigmoid_output_missing_a_sliver_of_the_range_is_a_warning():
    t = rng(1).uniform(0.0, 1.1, 640)  # a tenth of the range above 1
    f = fires(CAUSE, run("Sigmoid", t))
    assert f.severity == "warning"


def test_quiet_on_a_relu_output_with_non_negative_targets():
    quiet(CAUSE, run("ReLU", rng(2).uniform(0.0, 5.0, 640)))


def test_quiet_on_a_linear_output():
    quiet(CAUSE, run(None, rng(3).standard_normal(640)))
