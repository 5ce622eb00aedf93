"""frozen_parameters: trainable parameters that no optimizer group updates."""

from tests.rules.conftest import fires, healthy_diagnostics, healthy_loss, make_view, mlp_model, quiet

CAUSE = "frozen_parameters"


def run(**model_kw):
    # Linear layers 0, 2, 4 (the output layer), ReLU between them
    return make_view(healthy_loss(), diagnostics=healthy_diagnostics(model=mlp_model([8, 32, 16, 3], **model_kw)))


def test_fires_when_the_head_was_left_out_of_the_optimizer():
    f = fires(CAUSE, run(not_in_optimizer=("4.weight", "4.bias")))
    assert f.confidence == "high" and f.severity == "warning"
    assert "2 trainable parameter tensors" in f.summary and "4.weight" in f.summary


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
