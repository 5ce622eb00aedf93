"""frozen_parameters: trainable parameters that no optimizer group updates."""

import numpy as np
import pytest

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules import helpers
from tests.rules.conftest import (
    falling,
    fires,
    flat,
    healthy_diagnostics,
    healthy_loss,
    make_view,
    mlp_model,
    quiet,
    regression_loss,
    rng,
)

CAUSE = "frozen_parameters"


def run(**model_kw):
    # Linear layers 0, 2, 4 (the output layer), ReLU between them
    return make_view(healthy_loss(), diagnostics=healthy_diagnostics(model=mlp_model([8, 32, 16, 3], **model_kw)))


def test_fires_when_the_head_was_left_out_of_the_optimizer():
    f = fires(CAUSE, run(not_in_optimizer=("4.weight", "4.bias")))
    assert f.confidence == "high" and f.severity == "warning"
    assert "2 trainable parameter tensors" in f.summary and "4.weight" in f.summary


def test_a_head_left_out_of_the_optimizer_is_no_consequence_of_dead_units():
    """Held-out VAE (f127): a decoder in no optimizer group beside dead ReLUs was listed as "a consequence of
    dead_relu": a missing gradient can follow from dead units, a parameter the optimizer never holds cannot."""
    from mlflow_nnaudit.auditor.verdict import default_links, rank_findings
    from tests.rules.conftest import Finding

    left_out = fires(CAUSE, run(not_in_optimizer=("4.weight", "4.bias")))
    dead = Finding("dead_relu", "high", "warning", "dead units", "Fix them.", score=0.95)
    ranked = rank_findings([dead, left_out], default_links().consequence_of)
    # a definite bug ranks before a set-up risk found as surely (and it is nobody's consequence here)
    assert [(f.cause, f.upstream) for f in ranked] == [("frozen_parameters", None), ("dead_relu", None)]
    # a gradient that never arrives may follow from them
    never = fires(CAUSE, learning_view(learning(parameters=2, never_grad=1, never_changed=1), module=False))
    assert "dead_relu" in never.follows
    assert [(f.cause, f.upstream) for f in rank_findings([dead, never], default_links().consequence_of)] == [
        ("dead_relu", None),
        ("frozen_parameters", "dead_relu"),
    ]


def test_quiet_when_every_parameter_is_in_the_optimizer():
    quiet(CAUSE, run())


def test_quiet_on_deliberately_frozen_layers():
    quiet(CAUSE, run(frozen=("0.weight", "0.bias")))  # requires_grad=False: fine-tuning the head only


def learning(parameters=6, never_grad=0, never_changed=0, frozen=0, inputs_are_parameters=False, names=()):
    """`diagnostics.learning.optimizer` as the recorder writes it (10 sampled steps)."""
    return {
        "parameters": parameters,
        "sampled_steps": 10,
        "never_grad": never_grad,
        "never_grad_names": list(names)[:10],
        "never_changed": never_changed,
        "never_changed_names": list(names)[:10],
        "learning": parameters - max(never_grad, never_changed),
        "requires_grad_false": frozen,
        "inputs_are_parameters": inputs_are_parameters,
    }


def learning_view(opt, outside=None, module=True):
    d = healthy_diagnostics(learning={"optimizer": opt, **({"model_outside_optimizer": outside} if outside else {})})
    if not module:
        d.pop("model")
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_failed_when_the_optimizer_was_given_the_data():
    f = fires(
        CAUSE,
        learning_view(
            learning(parameters=1, inputs_are_parameters=True),
            outside={"class": "Linear", "parameters": 9, "trainable": 9},
            module=False,
        ),
    )
    assert f.severity == "failed" and f.confidence == "high"
    assert "data" in f.summary and "model.parameters()" in f.recommendation


def test_fires_failed_when_every_parameter_is_frozen():
    f = fires(CAUSE, learning_view(learning(never_grad=6, never_changed=6, frozen=6)))
    assert f.severity == "failed" and "No parameter learns" in f.summary
    assert "requires_grad=False" in f.recommendation and "loss.requires_grad = True" in f.recommendation


def test_fires_warning_on_a_hand_written_parameter_without_gradient():
    f = fires(
        CAUSE, learning_view(learning(parameters=2, never_grad=1, never_changed=1, names=["param[1] ()"]), module=False)
    )
    assert f.severity == "warning" and f.score >= 0.9 and "param[1] ()" in f.summary
    assert "a.item()" in f.recommendation


def test_quiet_when_every_parameter_learns():
    quiet(CAUSE, learning_view(learning()))


def test_quiet_on_an_unused_module_branch():
    # a pretrained model's pooler that the task head does not use: 2 of 40 tensors without gradient
    quiet(
        CAUSE,
        learning_view(
            learning(parameters=40, never_grad=2, never_changed=2, names=["pooler.dense.weight", "pooler.dense.bias"])
        ),
    )


# --- frozen parameters that explain a run that learned nothing


def recommender(frozen_values, learned, total=3150):
    """A matrix-factorisation recommender (f40's shape): user and item embeddings with biases, the
    item table loaded with `nn.Embedding.from_pretrained` (frozen: `frozen_values` of `total`), an
    MSE on standardised ratings; per-epoch validation MSE at 96% of their variance when it learned
    nothing, else down to 10% of it."""
    targets = rng(9).standard_normal(2560)
    var = float(np.var(targets))
    model = {
        "class": "MF",
        "layers": {"user": [[200, 8]], "item": [[150, 8]], "user_bias": [[200, 1]], "item_bias": [[150, 1]]},
        "parameters": total,
        "trainable_not_in_optimizer": [],
        "requires_grad_false": ["item.weight"] if frozen_values else [],
        "frozen_parameters": frozen_values,
        "frozen_largest": [["item.weight", frozen_values]] if frozen_values else [],
    }
    if learned:
        train, val = falling(940, 1.03 * var, 0.08 * var, knee=0.1, noise=0.03), np.linspace(0.6, 0.1, 12) * var
    else:
        train, val = falling(940, 1.03 * var, 0.84 * var, knee=0.2, noise=0.11), flat(12, 0.975 * var, 0.002)
    d = healthy_diagnostics(model=model, loss=regression_loss(targets))
    d["learning"] = {"optimizer": learning(parameters=3)}
    return make_view(train, val, diagnostics=d)


def test_frozen_embeddings_that_explain_a_run_that_learned_nothing_are_named():
    f = fires(CAUSE, recommender(1200, learned=False))  # 38% of the model, validation MSE at the variance
    assert f.confidence == "medium" and f.severity == "failed"
    assert "item.weight (1,200 parameters, 38% of the model)" in f.summary and "freeze=False" in f.recommendation


def test_quiet_on_a_frozen_share_of_a_run_that_learned():
    quiet(CAUSE, recommender(1200, learned=True))  # a deliberately frozen table, and the model fits: fine-tuning


def test_a_few_frozen_values_do_not_explain_a_run_that_learned_nothing():
    quiet(CAUSE, recommender(300, learned=False))  # 10% of the model: the rest could fit something


def test_the_frozen_tensor_count_is_not_capped_by_the_listed_names():
    # `requires_grad_false` lists 20 names at most; the recorder's `frozen_tensors` counts them all (review)
    view = recommender(1200, learned=False)
    model = view.diagnostics["model"]
    model["requires_grad_false"] = [f"block.{i}.weight" for i in range(20)]
    model["frozen_largest"] = [[f"block.{i}.weight", 60] for i in range(5)]
    model["frozen_tensors"] = 30
    f = fires(CAUSE, view)
    assert "(30 tensors)" in f.summary, f.summary


def _rate_zero_view(rate: str, logged=None, user_lr=None):
    d = healthy_diagnostics(learning={"optimizer": learning(never_changed=6)})
    d["optimizer"][schema.PARAM_OPTIMIZER_LR] = float(rate) if logged is None else float(logged[-1])  # at the end
    params = {schema.PARAM_OPTIMIZER_LR: rate, **({"lr": user_lr} if user_lr else {})}
    return make_view(flat(60, 1.386), params=params, lr=logged, diagnostics=d)


def test_a_learning_rate_of_zero_is_named_not_frozen_parameters():
    # every tensor gets its gradient, none moves, and the optimizer's rate is 0: `0.1 * 64 // 256`
    view = _rate_zero_view("0.0", logged=np.zeros(10), user_lr="0.1")
    quiet(CAUSE, view)
    f = fires("learning_rate_too_low", view)
    assert f.severity == "failed" and f.confidence == "high"
    assert "learning rate is 0" in f.summary and "`lr` param says 0.1" in f.summary and "//" in f.recommendation


@pytest.mark.parametrize("rate, logged", [("0.0", np.linspace(0.0, 1e-3, 10)), ("0.01", None)])
def test_weights_that_never_move_under_a_rate_above_zero_stay_frozen_parameters(rate, logged):
    # a warm-up from 0 (the rate read when the optimizer was first seen) rose: not a rate of 0
    view = _rate_zero_view(rate, logged=logged)
    assert helpers.learning_rate_zero(view) is None
    assert fires(CAUSE, view).severity == "failed"
