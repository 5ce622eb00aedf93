"""vanishing_gradients: the first layer's gradients are tiny next to the last layer's."""

import numpy as np

from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    layer_curves,
    layer_names,
    make_view,
    mlp_model,
    quiet,
)

CAUSE = "vanishing_gradients"


def run(model, first_to_last):
    """Per-layer gradient norms falling geometrically from the last layer (1.0) to the first."""
    names = layer_names(model)
    norms = np.geomspace(first_to_last, 1.0, len(names))
    extra = layer_curves("grad_norm", dict(zip(names, norms)))
    return make_view(healthy_loss(), diagnostics=healthy_diagnostics(model=model), extra=extra)


def test_fires_on_a_deep_sigmoid_stack():
    model = mlp_model([8, 64, 64, 64, 64, 3], act="Sigmoid")
    f = fires(CAUSE, run(model, 1e-6))  # three orders of magnitude past the documented 1e-3
    assert f.confidence == "high" and f.severity == "warning" and "0:" in f.summary


def test_quiet_when_the_first_layer_gets_a_tenth_of_the_last():
    quiet(CAUSE, run(mlp_model([8, 64, 64, 3]), 0.1))


def test_quiet_without_the_model_layers():
    model = mlp_model([8, 64, 64, 64, 64, 3], act="Sigmoid")
    v = run(model, 1e-6)
    v.diagnostics.pop("model")  # the recorder never found the model: no layer order to compare
    quiet(CAUSE, v)


def test_advice_names_relu_only_for_a_model_without_it():
    def view(act):
        v = run(mlp_model([8, 64, 64, 64, 64, 3], act=act), 1e-6)
        v.diagnostics["activations"]["layers"] = {"1": act.lower(), "3": act.lower()}
        v.diagnostics["model"].pop("activations", None)
        return v

    assert "ReLU-family" in fires(CAUSE, view("Sigmoid")).recommendation
    # a ReLU model is not told to use ReLU
    assert "ReLU-family" not in fires(CAUSE, view("ReLU")).recommendation
