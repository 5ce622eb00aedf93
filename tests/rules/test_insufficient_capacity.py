"""insufficient_capacity: too small a model for the task."""

import numpy as np

from tests.rules.conftest import (
    SEED,
    falling,
    fires,
    healthy_diagnostics,
    healthy_loss,
    healthy_train,
    make_view,
    mlp_model,
    quiet,
    rule_for,
)

CAUSE = "insufficient_capacity"


def underfitting():
    """1.386 -> 0.95, flat by a fifth of the run; validation right on it (no gap)."""
    train = falling(600, 1.386, 0.95, knee=0.05, noise=0.02)
    val = falling(10, 1.3, 0.96, knee=0.1)
    return train, val


def test_fires_on_a_bottleneck_narrower_than_the_output():
    d = healthy_diagnostics(model=mlp_model([8, 2, 4]))
    f = fires(CAUSE, make_view(*underfitting(), diagnostics=d))
    assert f.confidence == "medium" and f.severity == "warning" and "2 units for 4 outputs" in f.summary


def test_fires_on_a_model_without_a_hidden_layer():
    d = healthy_diagnostics(model=mlp_model([8, 4]))
    f = fires(CAUSE, make_view(*underfitting(), diagnostics=d))
    assert "no hidden layer" in f.summary


def test_from_the_curves_alone_it_is_low_confidence():
    f = fires(CAUSE, make_view(*underfitting()))
    assert f.confidence == "low"


def test_quiet_on_a_wide_model():
    d = healthy_diagnostics(model=mlp_model([8, 64, 64, 4]))
    quiet(CAUSE, make_view(*underfitting(), diagnostics=d))


def test_quiet_on_a_bottleneck_that_still_fits():
    d = healthy_diagnostics(model=mlp_model([8, 2, 4]))
    quiet(CAUSE, make_view(healthy_loss(), falling(10, 1.3, 0.35, knee=0.2), diagnostics=d))


def test_quiet_with_a_generalisation_gap():
    # validation well above training: more capacity would not help
    train, _ = underfitting()
    d = healthy_diagnostics(model=mlp_model([8, 2, 4]))
    quiet(CAUSE, make_view(train, np.full(10, 1.3), diagnostics=d))


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_insufficient_capacity_bottleneck_vs_wide_model():
    rng = np.random.default_rng(SEED)
    t = np.arange(600)
    train = 0.95 + 0.42 * np.exp(-t / 60) + 0.05 * rng.standard_normal(600)
    val = 0.95 + 0.4 * np.exp(-np.arange(10) / 1.0)
    diag = {"model": {"widths": [1, 4], "depth": 2}}
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(train, val, diagnostics=diag))
    assert f and f.confidence == "medium" and "1 units for 4 outputs" in f.summary
    assert rule.evaluate(make_view(train, val, diagnostics={"model": {"widths": [64, 64, 4]}})) is None
    # a healthy run with a bottleneck-free model: nothing
    assert rule.evaluate(make_view(healthy_train(), diagnostics=diag)) is None


def test_quiet_on_an_lstm_before_a_linear_head():
    # an LSTM's 32 units are a hidden layer: the recorder's widths list only the linear head
    # ([4]), which is no "model without a hidden layer" (a 2-epoch run, the loss still falling)
    import torch

    from tests.rules.test_bad_weight_init import recorded_model

    class LSTMClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(6, 32, batch_first=True)
            self.head = torch.nn.Linear(32, 4)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    torch.manual_seed(0)
    facts = recorded_model(LSTMClassifier())
    assert facts["widths"] == [4]
    quiet(CAUSE, make_view(*underfitting(), diagnostics=healthy_diagnostics(model=facts)))
    # records from before the recorder named each weight's module: the same answer, by name
    for w in facts["init"]:
        w.pop("module", None), w.pop("layer_weight", None)
    quiet(CAUSE, make_view(*underfitting(), diagnostics=healthy_diagnostics(model=facts)))
    # the same head alone is a model without a hidden layer
    fires(CAUSE, make_view(*underfitting(), diagnostics=healthy_diagnostics(model=mlp_model([32, 4]))))


def test_a_linear_head_after_a_non_linear_body_is_no_linear_model():
    """Two linear layers in a row at the end of a ReLU network (a projection then the classifier) is a
    design, found by review: on an underfitting run whose widths pass, nothing is said of it, nor when
    the body's activations are functional (no activation module); linear layers chaining the whole
    model with no activation are one linear map."""
    from tests.rules.conftest import falling

    d = healthy_diagnostics()
    d["model"]["widths"] = [64, 64, 64, 4]
    d["model"]["linear_stacks"] = [["4", "6"]]
    train = falling(600, 1.4, 1.1, knee=0.3, noise=0.01)  # 21% progress: underfits, no gap
    view = make_view(train, train[::30] + 0.01, diagnostics=d)
    quiet("insufficient_capacity", view)
    d["model"]["activations"] = []  # its body's activations may be F.relu calls the facts do not show
    quiet("insufficient_capacity", make_view(train, train[::30] + 0.01, diagnostics=d))
    d["model"]["widths"], d["model"]["depth"] = [64, 64, 4], 3  # a stack chaining every layer: one linear map
    d["model"]["linear_stacks"] = [["0", "1"], ["1", "2"]]
    f = fires("insufficient_capacity", make_view(train, train[::30] + 0.01, diagnostics=d))
    assert "no activation" in f.summary and "nn.ReLU()" in f.recommendation
