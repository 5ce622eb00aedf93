"""final_layer_activation: the output activation cannot reach part of the target range."""

from tests.rules.conftest import (
    classification_loss,
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


def classifier(activation, loss=None):
    section = classification_loss(3) | ({"input_activation": activation} if activation else {})
    d = healthy_diagnostics(loss=section)
    return make_view(healthy_loss() if loss is None else loss, diagnostics=d)


def test_fires_on_logits_through_a_relu_into_cross_entropy():
    """Read from the loss input's autograd graph: a definite bug, a warning on a run that still learned
    (a held-out Lightning CNN ended in ReLU: validation accuracy 0.45 where its fix reached 0.92)."""
    f = fires(CAUSE, classifier("ReLU"))
    assert f.confidence == "high" and f.effective_kind == "bug" and f.severity == "warning"
    assert "ReLU" in f.summary and "Linear" in f.recommendation


def test_a_sigmoid_on_logits_that_learned_nothing_fails_the_run():
    f = fires(CAUSE, classifier("Sigmoid", loss=rng(5).normal(1.0986, 0.01, 600)))  # stuck at ln 3
    assert f.severity == "failed" and "[0, 1]" in f.summary


def test_quiet_on_raw_logits_and_on_other_losses():
    quiet(CAUSE, classifier(None))
    d = healthy_diagnostics(loss=classification_loss(3, fn="nll_loss") | {"input_activation": "ReLU"})
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d))
