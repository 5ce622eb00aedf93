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


# --- through time: a plain nn.RNN on a run that learned nothing (held-out program f71) ---------------
def _recurrent(module: str, learned: bool, steps: int = 70):
    import math

    d = healthy_diagnostics()
    d["model"]["recurrent"] = [{"name": "rnn", "type": module, "batch_first": True}]
    d["inputs"]["train"]["features"] = steps  # (batch, time, symbols): dimension 1 is the time
    chance = math.log(3)
    if learned:
        return make_view(healthy_loss(), diagnostics=d)
    gen = np.random.default_rng(0)
    train, val = chance + 0.01 * gen.standard_normal(600), chance + 0.002 * gen.standard_normal(20)
    return make_view(train, val, diagnostics=d)


def test_a_plain_rnn_over_long_sequences_that_learned_nothing_is_vanishing_through_time():
    from mlflow_nnaudit.auditor.rules import ALL_RULES
    from mlflow_nnaudit.auditor.verdict import judge

    view = _recurrent("RNN", learned=False)
    f = fires(CAUSE, view)
    # (the smaller of the input's first two dimensions: 32 in a batch, 70 steps, which is which unknown)
    assert "rnn" in f.summary and "sequences of 32 steps or more" in f.summary and "nn.LSTM" in f.recommendation
    found = [g for r in ALL_RULES if r.applies(view) and (g := r.evaluate(view)) is not None]
    kept, status, _ = judge(found, harm=view.outcome_harm())
    assert status == "failed" and kept[0].cause == CAUSE, [g.cause for g in kept]


def test_a_gated_rnn_short_sequences_or_a_plain_rnn_that_learned_are_not_read_so():
    quiet(CAUSE, _recurrent("LSTM", learned=False))  # gated: its gradient does not vanish so
    quiet(CAUSE, _recurrent("RNN", learned=False, steps=5))  # 5 steps: nothing far back (found by review)
    quiet(CAUSE, _recurrent("RNN", learned=True))  # it learned: whatever its gradients do through time
