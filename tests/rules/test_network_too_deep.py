"""network_too_deep: a plain stack of many weight layers that does not train."""

import math

import numpy as np

from tests.rules.conftest import (
    falling,
    fires,
    flat,
    healthy_diagnostics,
    healthy_loss,
    layer_curves,
    layer_names,
    make_view,
    mlp_model,
    quiet,
)

CAUSE = "network_too_deep"
CHANCE = math.log(4)


def deep(norm=None, layers=14):
    return mlp_model([8] + [32] * (layers - 1) + [4], norm=norm)


def grads(model, first_to_last):
    names = layer_names(model)
    return layer_curves("grad_norm", dict(zip(names, np.geomspace(first_to_last, 1.0, len(names)))))


def test_fires_on_decaying_gradients_and_a_stuck_loss():
    model = deep()
    d = healthy_diagnostics(model=model)
    f = fires(CAUSE, make_view(flat(600, CHANCE, noise=0.02), diagnostics=d, extra=grads(model, 1e-4)))
    assert f.confidence == "high" and f.severity == "failed" and "14 weight layers" in f.summary


def test_one_sign_alone_is_medium_confidence():
    model = deep()
    d = healthy_diagnostics(model=model)
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=grads(model, 1e-4)))  # trains, gradients decay
    assert f.confidence == "medium" and f.severity == "warning"


def test_quiet_on_the_same_depth_with_normalisation():
    model = deep(norm="LayerNorm")
    d = healthy_diagnostics(model=model)
    quiet(CAUSE, make_view(flat(600, CHANCE, noise=0.02), diagnostics=d, extra=grads(model, 1e-4)))


def test_quiet_on_a_deep_stack_that_trains_with_even_gradients():
    model = deep()
    d = healthy_diagnostics(model=model)
    quiet(CAUSE, make_view(falling(600, CHANCE, 0.3, knee=0.15, noise=0.02), diagnostics=d, extra=grads(model, 0.5)))
