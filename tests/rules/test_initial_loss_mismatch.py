"""initial_loss_mismatch: the first loss is far from ln C."""

import math

from mlflow_nnaudit.auditor.rules import ALL_RULES
from mlflow_nnaudit.auditor.verdict import judge
from tests.rules.conftest import (
    classification_loss,
    falling,
    fires,
    flat,
    healthy_diagnostics,
    healthy_loss,
    healthy_train,
    make_view,
    mlp_model,
    quiet,
    recorder_params,
    rule_for,
)

CAUSE = "initial_loss_mismatch"
CHANCE = math.log(3)


def run(first_loss):
    return make_view(
        healthy_loss(), diagnostics=healthy_diagnostics(loss=classification_loss(3, first_loss=first_loss))
    )


def test_fires_on_logits_that_start_huge():
    f = fires(CAUSE, run(25 * CHANCE))
    assert f.confidence == "medium" and f.severity == "warning" and "ln 3" in f.summary
    assert "above" in f.recommendation


def test_fires_on_a_first_loss_far_below_chance():
    f = fires(CAUSE, run(CHANCE / 20))
    assert "below" in f.recommendation


def test_quiet_on_a_first_loss_near_ln_c():
    quiet(CAUSE, run(0.97 * CHANCE))


def test_quiet_on_a_first_loss_somewhat_above_ln_c():
    quiet(CAUSE, run(1.8 * CHANCE))  # a slightly confident start is normal


def he_head_first_loss(n_classes):
    """The first cross-entropy of a real output layer at He's init (`kaiming_normal_`, the broadest usual
    one) over layer-normalised features, on random labels."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    head = nn.Linear(64, n_classes)
    nn.init.kaiming_normal_(head.weight)
    nn.init.zeros_(head.bias)
    x = nn.functional.layer_norm(torch.randn(4096, 64), (64,))
    y = torch.randint(0, n_classes, (4096,))
    with torch.no_grad():
        return float(nn.functional.cross_entropy(head(x), y))


def test_quiet_on_the_first_loss_of_a_he_initialised_head():
    # a usual init spreads the logits by up to about a nat (0.6 above ln 4, 0.8 above ln 10): not a mismatch
    for n in (4, 10):
        first = he_head_first_loss(n)
        assert 0.4 < first - math.log(n) < 1.0
        view = make_view(healthy_loss(), diagnostics=healthy_diagnostics(loss=classification_loss(n, first_loss=first)))
        quiet(CAUSE, view)


def test_quiet_on_a_regression():
    d = healthy_diagnostics(loss={"loss_function": "mse_loss", "n_classes": None, "first_loss": 1.1})
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d))


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_initial_loss_from_curves():
    big = healthy_train()
    big[:3] = [6.0, 5.9, 5.5]
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(big, params={"num_classes": "4"}))
    assert f and f.confidence == "low" and "ln 4" in f.summary
    assert rule.evaluate(make_view(healthy_train() + 1.1, params={"num_classes": "4"})) is None
    assert rule.evaluate(make_view(big)) is None  # no class count: no ln C to compare with


# --- the excess in nats, and the order next to bad_weight_init (issue 11, the corpus's x10/x40 heads) --
def test_fires_a_nat_above_ln_c_though_under_three_times_it():
    # logits spread far from zero (an output layer scaled up): 1.3 nats above ln 3 is 2.2x ln 3
    f = fires(CAUSE, run(CHANCE + 1.3))
    assert "nats above" in f.summary and "above" in f.recommendation


def test_the_excess_does_not_grow_with_the_class_count():
    # 1000 classes: the same confidently wrong start (3 nats above ln C) is only 1.4x ln 1000
    d = healthy_diagnostics(loss=classification_loss(1000, first_loss=math.log(1000) + 3.0))
    fires(CAUSE, make_view(healthy_loss(), diagnostics=d))
    d = healthy_diagnostics(loss=classification_loss(1000, first_loss=math.log(1000) + 0.5))
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d))


def verdict(model, first_loss):
    """The verdict on a run that recovered (a healthy loss curve) from the given start."""
    d = healthy_diagnostics(model=model, loss=classification_loss(3, first_loss=first_loss))
    view = make_view(healthy_loss(), diagnostics=d, params=recorder_params(d))
    findings = [f for r in ALL_RULES if r.applies(view) for f in [r.evaluate(view)] if f is not None]
    return judge(findings, harm=view.outcome_harm())


def test_an_output_layer_scaled_up_alone_is_named_by_the_first_loss_first():
    # only the output layer starts 25x LeCun: the harm it does is the first loss, which names it
    # first; bad_weight_init is listed too, after it; the run recovered, so both are advisories
    model = mlp_model([8, 32, 16, 3])
    model["init"][-1].update(scale_vs_lecun=25.0, std=25.0 / 4)
    ordered, status, _ = verdict(model, CHANCE + 4.0)
    causes = [f.cause for f in ordered]
    assert causes.index(CAUSE) < causes.index("bad_weight_init"), causes
    assert status == "healthy" and all(f.advisory for f in ordered)
    assert "(the output layer)" in next(f for f in ordered if f.cause == "bad_weight_init").summary


def test_hidden_layers_scaled_up_lead_and_the_first_loss_follows_them():
    # every layer 25x LeCun: the hidden layers shape the logits from upstream, bad_weight_init is first
    ordered, _, _ = verdict(mlp_model([8, 32, 16, 3], init_scale=25.0), CHANCE + 4.0)
    causes = [f.cause for f in ordered]
    assert causes.index("bad_weight_init") < causes.index(CAUSE), causes
    assert next(f for f in ordered if f.cause == CAUSE).upstream == "bad_weight_init"


def test_a_first_loss_inflated_by_strong_dropout_follows_the_regularisation():
    # dropout 0.9 scales the surviving units 10x in training mode: the first logits spread far from
    # zero (f25: 2.76 for ln 4) and the loss stays at chance; the regularisation is the cause
    d = healthy_diagnostics(model=mlp_model([8, 32, 16, 3], dropout=0.9), loss=classification_loss(3, first_loss=2.6))
    view = make_view(falling(600, 2.2, 1.12, knee=0.2, noise=0.03), diagnostics=d, params=recorder_params(d))
    findings = [f for r in ALL_RULES if r.applies(view) for f in [r.evaluate(view)] if f is not None]
    ordered, _, _ = judge(findings, harm=view.outcome_harm())
    mismatch = next(f for f in ordered if f.cause == CAUSE)
    assert ordered[0].cause == "too_much_regularization" and mismatch.upstream == "too_much_regularization"


# --- below a nat: the first loss and a scaled-up output layer together (issue 11, the corpus's x10 heads) --
def real_run(head_scale=1.0, train=None, he_head=False, input_std=1.0, seed=0):
    """A real MLP (20 -> 32 -> 32 -> 4, PyTorch's default init) with its output layer multiplied by
    `head_scale` (or at He's init): the `model` section the recorder's probe writes for it, and its
    first cross-entropy on inputs of std `input_std` and random labels, as the recorder notes it."""
    import torch
    from torch import nn

    from tests.rules.test_bad_weight_init import recorded_model

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        if he_head:
            nn.init.kaiming_normal_(model[-1].weight)
        model[-1].weight.mul_(head_scale)
        first = float(nn.functional.cross_entropy(model(input_std * torch.randn(256, 20)), torch.randint(0, 4, (256,))))
    d = healthy_diagnostics(model=recorded_model(model), loss=classification_loss(4, first_loss=first))
    train = healthy_loss() if train is None else train
    return make_view(train, diagnostics=d, params=recorder_params(d)), first - math.log(4)


def verdict_of(view):
    findings = [f for r in ALL_RULES if r.applies(view) for f in [r.evaluate(view)] if f is not None]
    return judge(findings, harm=view.outcome_harm())


def test_a_head_scaled_10x_that_shows_in_the_first_loss_is_an_advisory_on_a_run_that_trained_well():
    # x10 of PyTorch's default: 5.8x LeCun, inside bad_weight_init's 10x band; its logits start
    # 0.39 nats above ln 4, under the nat a curve alone needs; the two together name it
    view, excess = real_run(10.0)
    assert 0.25 < excess < 1.0
    f = fires(CAUSE, view)
    assert "with the output layer 4.weight at" in f.summary and "4.weight" in f.recommendation
    scale = next(e for e in f.evidence if e.test == "output_layer_init").values["scale_vs_lecun"]
    assert 4.0 < scale < 8.0
    quiet("bad_weight_init", view)  # the head's scale alone is left to the first loss, which sees its effect
    ordered, status, _ = verdict_of(view)
    assert status == "healthy" and [g.cause for g in ordered] == [CAUSE] and ordered[0].advisory


def test_a_head_scaled_10x_on_a_run_that_never_learned_is_a_cause():
    view, _ = real_run(10.0, train=flat(600, level=math.log(4), noise=0.03))
    ordered, status, _ = verdict_of(view)
    mismatch = next(f for f in ordered if f.cause == CAUSE)
    assert status in ("warning", "failed") and not mismatch.advisory


def test_quiet_below_a_nat_without_a_scaled_up_head_or_without_a_first_loss_that_shows_it():
    # PyTorch's default and He's init of the head: the first loss near ln C, or a He-sized spread
    for kwargs in ({}, {"he_head": True}):
        quiet(CAUSE, real_run(**kwargs)[0])
    view, excess = real_run(he_head=True, input_std=4.0)  # a He head over large features: a broad start
    assert 0.25 < excess < 1.0
    quiet(CAUSE, view)
    # a head scaled 10x whose logits still start near zero (small features): nothing showed
    view, _ = real_run(10.0)
    view.diagnostics["loss"]["first_loss"] = math.log(4) + 0.1
    quiet(CAUSE, view)
    # curves alone: the same 0.4-nat start is not named (a usual init can give it)
    quiet(CAUSE, make_view(healthy_loss() + 0.39, params={"num_classes": "4"}))
