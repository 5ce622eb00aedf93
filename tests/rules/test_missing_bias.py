"""missing_bias: weight layers without bias and without a normalisation after them."""

from tests.rules.conftest import fires, healthy_diagnostics, healthy_loss, make_view, mlp_model, quiet

CAUSE = "missing_bias"


def run(model):
    return make_view(healthy_loss(), diagnostics=healthy_diagnostics(model=model))


def test_fires_on_a_plain_stack_without_biases():
    f = fires(CAUSE, run(mlp_model([8, 32, 16, 3], bias=False)))
    assert f.confidence == "low" and f.severity == "warning" and "0, 2, 4" in f.summary


def test_quiet_on_the_default_layers():
    quiet(CAUSE, run(mlp_model([8, 32, 16, 3])))


def test_quiet_on_bias_free_layers_before_batchnorm():
    # the usual Linear(bias=False) -> BatchNorm pattern; the head keeps its bias
    model = mlp_model([8, 32, 16, 3], bias=False, head_bias=True, norm="BatchNorm1d")
    assert model["no_bias_layers"] and not model["no_bias_without_norm"]
    quiet(CAUSE, run(model))


def test_quiet_on_a_language_models_bias_free_lm_head():
    # GPT-2, nanoGPT, LLaMA: the head's weight is tied to the token embedding, bias-free by design
    d = healthy_diagnostics()
    d["model"]["no_bias_without_norm"] = ["lm_head"]
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d))
    d["model"]["no_bias_without_norm"] = ["lm_head", "fc1"]
    assert "lm_head" not in fires(CAUSE, make_view(healthy_loss(), diagnostics=d)).summary
