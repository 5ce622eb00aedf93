"""network_too_deep: a plain stack of many weight layers that does not train."""

import math

import numpy as np

from tests.rules.conftest import (
    SEED,
    curve,
    falling,
    fires,
    flat,
    healthy_diagnostics,
    healthy_loss,
    healthy_train,
    layer_curves,
    layer_names,
    make_view,
    mlp_model,
    quiet,
    rule_for,
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


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_network_too_deep_needs_depth_and_a_sign():
    layers = {str(i): [[32, 32]] for i in range(14)}
    grads = {
        f"nnaudit/grad_norm/{i}": curve(f"nnaudit/grad_norm/{i}", np.full(10, 10.0 ** (i - 14))) for i in range(14)
    }
    flat_ = 1.386 + 0.02 * np.random.default_rng(SEED).standard_normal(300)
    diag = {"model": {"depth": 14, "normalization": [], "layers": layers}}
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(flat_, diagnostics=diag, extra=grads))
    assert f and f.confidence == "high" and "14 weight layers" in f.summary
    # the same depth with normalisation, or a shallow net, is not reported
    assert (
        rule.evaluate(
            make_view(flat_, diagnostics={"model": dict(diag["model"], normalization=["LayerNorm"])}, extra=grads)
        )
        is None
    )
    assert rule.evaluate(make_view(flat_, diagnostics={"model": dict(diag["model"], depth=3)})) is None
    # deep but training fine, gradients even: not reported
    even = {k: curve(k, np.ones(10)) for k in grads}
    assert rule.evaluate(make_view(healthy_train(), diagnostics=diag, extra=even)) is None


def _lstm_model(num_layers, recorded=True):
    """A one-module LSTM stack under a linear head (held-out program f92: `nn.LSTM(2, 16,
    num_layers=16)`); `recorded=False`: a recording from before `num_layers`, its weights' names only."""
    model = mlp_model([16, 2])
    entry = {"name": "cell", "type": "LSTM", "batch_first": True}
    if recorded:
        entry["num_layers"] = num_layers
    model["recurrent"] = [entry]
    model["init"] = list(model.get("init", [])) + [
        {"param": f"cell.weight_{kind}_l{k}", "shape": [64, 16]} for k in range(num_layers) for kind in ("ih", "hh")
    ]
    return model


def test_recurrent_layers_stacked_in_one_module_count_as_depth():
    for recorded in (True, False):
        d = healthy_diagnostics(model=_lstm_model(16, recorded))
        f = fires(CAUSE, make_view(flat(600, 1.0, noise=0.02), diagnostics=d))
        assert "16 of them recurrent" in f.summary, f.summary
        quiet(
            CAUSE,
            make_view(flat(600, 1.0, noise=0.02), diagnostics=healthy_diagnostics(model=_lstm_model(2, recorded))),
        )


def test_a_usual_recurrent_stack_under_a_deeper_head_is_not_counted():
    """6 conv and linear layers and a 4-layer GRU, stuck on noisy labels (found by review: it read as
    a plain stack of 10)."""
    model = _lstm_model(4)
    model["depth"] = 6
    quiet(CAUSE, make_view(flat(600, 1.0, noise=0.02), diagnostics=healthy_diagnostics(model=model)))
