"""bad_weight_init: constant, symmetric or badly scaled initial weights."""

import math

import torch

from mlflow_nnaudit.recorder.probes.base import ModelInfo
from mlflow_nnaudit.recorder.probes.model import ModelFactsProbe
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


# --- what the recorder writes for real models ------------------------------------------------
class PositionsModel(torch.nn.Module):
    """A transformer classifier the way ViT/GPT-2 write one: learned positions and a cls token as the
    model's own `nn.Parameter(torch.zeros(...))`, an embedding table, a LayerNorm over (seq, dim)."""

    def __init__(self, vocab: int = 50, seq: int = 6, dim: int = 16):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Parameter(torch.zeros(1, seq, dim))
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, dim))
        layer = torch.nn.TransformerEncoderLayer(dim, 2, 32, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 1)
        self.norm = torch.nn.LayerNorm([seq + 1, dim])
        self.head = torch.nn.Linear(dim, 3)

    def forward(self, x):
        h = torch.cat([self.cls_token.expand(len(x), -1, -1), self.emb(x) + self.pos], 1)
        return self.head(self.norm(self.encoder(h))[:, 0])


def recorded_model(model: torch.nn.Module) -> dict:
    """The `model` section the recorder's probe writes for a real module (initial weights read
    when the optimizer's parameters are known, as in training)."""
    probe = ModelFactsProbe()
    params = list(model.parameters())
    probe.on_parameters(torch.optim.SGD(params, lr=0.1), params)
    probe.attach(ModelInfo(root=model))
    return probe.summary()


def test_quiet_on_zero_positions_cls_token_embeddings_and_norms():
    torch.manual_seed(0)
    facts = recorded_model(PositionsModel())
    init = {w["param"]: w for w in facts["init"]}
    # the recorder measured them all, constant ones included, and knows which are a layer's weights
    assert init["pos"]["constant"] and init["cls_token"]["constant"] and init["norm.weight"]["constant"]
    assert not any(init[n]["layer_weight"] for n in ("pos", "cls_token", "emb.weight", "norm.weight"))
    assert init["head.weight"]["layer_weight"] and init["encoder.layers.0.self_attn.in_proj_weight"]["layer_weight"]
    quiet(CAUSE, run(facts))
    # records from before `layer_weight`: judged by name, with the same answer
    for w in facts["init"]:
        del w["layer_weight"]
    quiet(CAUSE, run(facts))


def test_fires_on_a_real_zero_initialised_mlp_and_a_zero_layer_among_positions():
    mlp = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))
    for m in (mlp[0], mlp[2]):
        torch.nn.init.zeros_(m.weight)
    f = fires(CAUSE, run(recorded_model(mlp)))
    assert f.effective_kind == "bug" and "constant weights in 0.weight, 2.weight" in f.summary
    model = PositionsModel()
    torch.nn.init.zeros_(model.encoder.layers[0].linear1.weight)
    f = fires(CAUSE, run(recorded_model(model)))
    assert f.evidence[0].values["constant"] == ["encoder.layers.0.linear1.weight"]


def test_a_custom_layers_weight_is_judged_but_not_its_other_parameters():
    class Custom(torch.nn.Module):  # a layer from outside torch.nn (GPT-2's Conv1D style)
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(8, 16))
            self.scale = torch.nn.Parameter(torch.ones(8, 16))

    model = torch.nn.Sequential(torch.nn.Linear(4, 16), Custom())
    f = fires(CAUSE, run(recorded_model(model)))
    assert "1.weight" in f.summary and "1.scale" not in f.summary


def learning_facts(stuck: list[str], parameters: int = 6, cut: bool = False) -> dict:
    """The recorder's `learning` section: these parameters never got a gradient nor changed."""
    listed = stuck[:1] if cut else stuck
    return {
        "optimizer": {
            "parameters": parameters,
            "sampled_steps": 3,
            "never_grad": len(stuck),
            "never_grad_names": listed,
            "requires_grad_false": 0,
            "inputs_are_parameters": False,
            "never_changed": len(stuck),
            "never_changed_names": listed,
            "learning": parameters - len(stuck),
        }
    }


def test_constant_weights_that_moved_in_training_are_a_risk_those_that_never_moved_a_bug():
    mlp = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    torch.nn.init.zeros_(mlp[2].weight)  # a zero-initialised output layer (Fixup, adaLN-Zero style)
    facts = recorded_model(mlp)

    def judged(learning):
        return fires(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics(model=facts, learning=learning)))

    moved = judged(learning_facts([]))  # it got gradients and changed: its rows learned apart
    assert moved.effective_kind == "risk" and "changed in training" in moved.summary
    assert judged(learning_facts(["2.weight", "2.bias"])).effective_kind == "bug"  # never moved
    assert judged(learning_facts(["0.bias", "2.weight", "2.bias"], cut=True)).effective_kind == "bug"  # cut list
    assert judged(None).effective_kind == "bug"  # not recorded: the symmetry argument stands


def test_constant_weights_stay_a_bug_when_every_layer_is_constant_or_the_constant_is_not_zero():
    """The textbook bug: every Linear set to one constant. Each weight gets a gradient and
    changes, but the rows get identical gradients and stay copies: that it moved says nothing.
    Only zero layers among layers initialised normally (Fixup, adaLN-Zero) can be deliberate."""

    def judged(mlp):
        d = healthy_diagnostics(model=recorded_model(mlp), learning=learning_facts([]))  # all moved
        return fires(CAUSE, make_view(healthy_loss(), diagnostics=d))

    every = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    for layer in (every[0], every[2]):
        torch.nn.init.constant_(layer.weight, 0.0)
    assert judged(every).effective_kind == "bug"
    nonzero = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    torch.nn.init.constant_(nonzero[2].weight, 0.05)
    assert judged(nonzero).effective_kind == "bug"


def test_a_parametrised_layers_stored_weight_is_found_without_computing_the_parametrisation():
    """Weight norm stores a magnitude (`original0`) and a direction (`original1`, the weight's
    shape); the direction is the layer's weight. The recorder finds it from the stored tensors,
    never by evaluating the parametrisation (inside `parametrize.cached()` that would cache a
    tensor made without autograd in the user's training, and a random one would draw numbers)."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import weight_norm

    class Counted(torch.nn.Module):
        calls = 0

        def forward(self, w):
            Counted.calls += 1
            return w

    model = torch.nn.Sequential(weight_norm(torch.nn.Linear(20, 64)), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    parametrize.register_parametrization(model[2], "weight", Counted())
    before = Counted.calls
    init = {w["param"]: w for w in recorded_model(model)["init"]}
    assert Counted.calls == before
    assert init["0.parametrizations.weight.original1"]["layer_weight"]
    assert not init["0.parametrizations.weight.original0"]["layer_weight"]
    assert init["2.parametrizations.weight.original"]["layer_weight"]


def test_quiet_on_a_hugging_face_models_own_init():
    # GPT-2 draws its weights from normal(0, initializer_range = 0.02) and its residual projections
    # from 0.02 / sqrt(2 n_layer): 0.08x LeCun's 1/sqrt(fan_in) at n_embd 64, by design (Radford et al.
    # 2019); the Trainer's MLflow callback logs initializer_range with the config
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=48, n_layer=2, n_head=2, n_embd=64, n_positions=24)
    facts = recorded_model(GPT2LMHeadModel(config))
    d = healthy_diagnostics(model=facts)
    quiet(CAUSE, make_view(healthy_loss(), params={"initializer_range": "0.02"}, diagnostics=d))
    assert "c_proj" in fires(CAUSE, make_view(healthy_loss(), diagnostics=d)).summary  # without the config
    # weights set by hand far from the config's range are still judged
    model = GPT2LMHeadModel(config)
    torch.nn.init.normal_(model.transformer.h[0].mlp.c_fc.weight, std=1.0)
    d = healthy_diagnostics(model=recorded_model(model))
    f = fires(CAUSE, make_view(healthy_loss(), params={"initializer_range": "0.02"}, diagnostics=d))
    assert "c_fc" in f.summary and "c_proj" not in f.summary
