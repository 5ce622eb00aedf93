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
