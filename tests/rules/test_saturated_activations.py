"""saturated_activations: sigmoid/tanh outputs sit on the rails."""

import numpy as np

from tests.rules.conftest import (
    fires,
    healthy_diagnostics,
    healthy_loss,
    layer_curves,
    make_view,
    mlp_model,
    quiet,
    rng,
)

CAUSE = "saturated_activations"


def run(share_1, share_3):
    # Linear 0, Tanh 1, Linear 2, Tanh 3, Linear 4
    d = healthy_diagnostics(
        model=mlp_model([8, 32, 16, 3], act="Tanh"), activations={"layers": {"1": "tanh", "3": "tanh"}}
    )
    r = rng(0)
    per_layer = {
        "1": np.clip(share_1 + 0.02 * r.standard_normal(60), 0, 1),
        "3": np.clip(share_3 + 0.02 * r.standard_normal(60), 0, 1),
    }
    return make_view(healthy_loss(), diagnostics=d, extra=layer_curves("saturated", per_layer))


def test_fires_on_a_tanh_layer_on_its_rails():
    f = fires(CAUSE, run(0.85, 0.2))
    assert f.confidence == "high" and f.severity == "warning" and " 1 " in f.summary


def test_quiet_on_activations_in_their_working_range():
    quiet(CAUSE, run(0.05, 0.1))


def test_quiet_on_a_minority_of_saturated_outputs():
    quiet(CAUSE, run(0.1, 0.05))  # a tenth beyond +/-5: about a third past |tanh| = 0.99, not most


def tanh_mlp_rail_shares(scale):
    """Share of each Tanh's pre-activations beyond +/-5 (the recorder's rail) in a real 20-64-64-4 tanh MLP
    at PyTorch's default init with its weights multiplied by `scale`, on standardised inputs."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(scale)
        h, shares = torch.randn(1024, 20), []
        for m in model:
            if isinstance(m, nn.Tanh):
                shares.append(float((h.abs() >= 5).float().mean()))
            h = m(h)
    return shares


def test_fires_on_tanh_weights_ten_times_their_default():
    # weights 10x PyTorch's default put about a third of each layer beyond +/-5 (and about two thirds past
    # |tanh| = 0.99, gradient under 2%): most of the layer learns almost nothing, though under half is beyond +/-5
    shares = tanh_mlp_rail_shares(10.0)
    assert all(0.2 < s < 0.5 for s in shares)
    f = fires(CAUSE, run(*shares))
    assert f.confidence == "high" and (" 1 " in f.summary or " 3 " in f.summary)


def test_quiet_on_a_tanh_mlp_at_three_times_its_default_init():
    quiet(CAUSE, run(*tanh_mlp_rail_shares(3.0)))  # under 1% beyond +/-5


# --- applicability: a transformer's pooler ----------------------------------------------------------
def test_quiet_on_a_bert_pooler_tanh():
    d = healthy_diagnostics(activations={"layers": {"bert.pooler.activation": "tanh"}})
    per_layer = {"bert.pooler.activation": np.full(60, 0.9)}
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=layer_curves("saturated", per_layer)))
    # a saturated hidden tanh elsewhere in the same model is still reported
    per_layer["bert.encoder.layer.0.act"] = np.full(60, 0.9)
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=layer_curves("saturated", per_layer)))
    assert "pooler" not in f.summary


# --- the model's output activation --------------------------------------------------------------------
def binary_sigmoid_rail_share():
    """Share of a real binary classifier's output sigmoid on the rails (beyond +/-5 before it) after it
    learned a separable task to about 90%+ training accuracy (Linear-ReLU-Linear-Sigmoid, BCELoss, Adam)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    x = torch.randn(512, 10)
    y = ((x[:, 0] + 0.5 * x[:, 1]) > 0).float().unsqueeze(1)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.binary_cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        logits = model[:3](x)
        acc = float(((logits > 0).float() == y).float().mean())
    return float((logits.abs() >= 5).float().mean()), acc


def test_quiet_on_the_output_sigmoid_of_a_confident_binary_classifier():
    """Found by review: a binary classifier's output sigmoid before BCELoss sits on the rails when it is
    confident (the premise is measured on a real model below); that is no vanishing gradient of a hidden
    layer. The same share on a hidden sigmoid is still reported."""
    share, acc = binary_sigmoid_rail_share()
    assert acc > 0.9 and share >= 0.2
    d = healthy_diagnostics(
        model=mlp_model([10, 32, 1], act="ReLU", last="Sigmoid"), activations={"layers": {"3": "sigmoid"}}
    )
    assert d["model"]["last_module_name"] == "3"
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=layer_curves("saturated", {"3": np.full(60, share)})))
    hidden = healthy_diagnostics(model=mlp_model([10, 32, 1], act="Sigmoid"), activations={"layers": {"1": "sigmoid"}})
    fires(
        CAUSE, make_view(healthy_loss(), diagnostics=hidden, extra=layer_curves("saturated", {"1": np.full(60, share)}))
    )
