"""bad_weight_init: constant, symmetric or badly scaled initial weights."""

import math

from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    make_view,
    mlp_model,
    optimizer_facts,
    quiet,
    recorder_params,
)

CAUSE = "bad_weight_init"


def run(model):
    return make_view(healthy_loss(), diagnostics=healthy_diagnostics(model=model))


def test_fires_on_weights_initialised_to_zero():
    model = mlp_model([8, 32, 16, 3])
    for w in model["init"]:
        w.update(std=0.0, scale_vs_lecun=0.0, constant=True, identical_rows_share=1.0)
    f = fires(CAUSE, run(model))
    assert f.confidence == "high" and f.severity == "warning" and "constant weights" in f.summary


def test_fires_on_identical_rows():
    model = mlp_model([8, 32, 16, 3])
    model["init"][0]["identical_rows_share"] = 1.0  # every unit of the first layer a copy of the first
    f = fires(CAUSE, run(model))
    assert f.confidence == "high" and "identical rows in 0.weight" in f.summary


def test_weights_scaled_far_off_alone_are_medium_confidence():
    f = fires(CAUSE, run(mlp_model([8, 32, 16, 3], init_scale=0.58 * 40)))  # scaled up 40x
    assert f.confidence == "medium" and "scaled far" in f.summary


def test_quiet_on_pytorch_default_and_he_init():
    quiet(CAUSE, run(mlp_model([8, 32, 16, 3])))
    quiet(CAUSE, run(mlp_model([8, 32, 16, 3], init_scale=1.41)))


def test_quiet_on_a_two_row_output_layer():
    # the recorder's share counts the first row itself: 1/2 for any 2-row matrix, which is no symmetry
    model = mlp_model([8, 32, 2])
    assert model["init"][-1]["identical_rows_share"] == 0.5
    quiet(CAUSE, run(model))


def test_quiet_on_a_default_embedding():
    model = mlp_model([512, 64, 3])
    dim = 512
    model["init"].insert(
        0,
        {
            "param": "emb.weight",
            "shape": [30000, dim],
            "std": 1.0,
            "lecun_std": 1 / math.sqrt(dim),
            "scale_vs_lecun": math.sqrt(dim),
            "constant": False,
            "identical_rows_share": 1 / 30000,
        },
    )
    quiet(CAUSE, run(model))


def test_quiet_on_lstm_weights_at_pytorch_default_init():
    # nn.LSTM(1, 51): weight_ih_l0 is [204, 1] at U(-1/sqrt(51), 1/sqrt(51)): 0.08x LeCun for fan_in 1
    model = mlp_model([51, 16, 1])
    hidden = 51
    for name, fan_in in (("lstm1.weight_ih_l0", 1), ("lstm1.weight_hh_l0", hidden)):
        std = 1 / math.sqrt(3 * hidden)
        model["init"].insert(
            0,
            {
                "param": name,
                "shape": [4 * hidden, fan_in],
                "std": std,
                "lecun_std": 1 / math.sqrt(fan_in),
                "scale_vs_lecun": std * math.sqrt(fan_in),
                "constant": False,
                "identical_rows_share": 1 / (4 * hidden),
            },
        )
    quiet(CAUSE, run(model))
    # a hundred times that scale is not PyTorch's default: the recurrent matrix is reported
    for w in model["init"][:2]:
        w["std"] *= 100
        w["scale_vs_lecun"] = w["std"] * math.sqrt(w["shape"][1])
    f = fires(CAUSE, run(model))
    assert "lstm1.weight_hh_l0" in f.summary


def test_the_scale_is_not_judged_on_lbfgs_but_constant_weights_are():
    model = mlp_model([8, 32, 16, 3], init_scale=40.0)
    fires(CAUSE, run(model))
    d = healthy_diagnostics(model=model, optimizer=optimizer_facts("LBFGS", lr=1.0, momentum=None))
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, params=recorder_params(d)))
    model["init"][0] = {**model["init"][0], "constant": True, "std": 0.0, "scale_vs_lecun": 0.0}
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=d, params=recorder_params(d)))
    assert f.effective_kind == "bug" and "constant" in f.summary


def test_a_bad_scale_is_a_risk_and_a_constant_init_a_bug():
    assert fires(CAUSE, run(mlp_model([8, 32, 16, 3], init_scale=40.0))).effective_kind == "risk"
