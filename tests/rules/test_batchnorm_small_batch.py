"""batchnorm_small_batch: batch normalisation over batches of a handful of samples."""

from tests.rules.conftest import fires, healthy_diagnostics, healthy_loss, make_view, mlp_model, quiet

CAUSE = "batchnorm_small_batch"


def run(norm, batch_size):
    d = healthy_diagnostics(model=mlp_model([8, 32, 16, 3], norm=norm))
    d["inputs"]["train"]["median_batch_size"] = batch_size
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_on_batchnorm_with_batches_of_two():
    f = fires(CAUSE, run("BatchNorm1d", 2))
    assert f.confidence == "high" and f.severity == "warning" and "batches of 2" in f.summary


def test_quiet_on_batchnorm_with_ordinary_batches():
    quiet(CAUSE, run("BatchNorm1d", 32))


def test_quiet_on_layernorm_with_tiny_batches():
    quiet(CAUSE, run("LayerNorm", 2))  # does not depend on the batch
