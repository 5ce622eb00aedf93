"""batch_size_too_large: each batch is a large share of the data, and the run pays for it."""

import math

from tests.rules.conftest import (
    data_loader_section,
    fires,
    healthy_diagnostics,
    linear,
    loader,
    make_view,
    quiet,
    rng,
)

CAUSE = "batch_size_too_large"
CHANCE = math.log(3)


def slow(n=40):
    """40 updates (20 epochs of 2 batches), still falling at the end."""
    return linear(n, CHANCE, 0.6 * CHANCE) + 0.005 * rng(0).standard_normal(n)


def with_loader(dataset_size, batch_size):
    return healthy_diagnostics(data_loader=data_loader_section(loader(dataset_size, batch_size, epochs=20)))


def test_fires_on_half_the_data_per_batch_from_the_loader():
    f = fires(CAUSE, make_view(slow(), diagnostics=with_loader(512, 256)))
    assert f.confidence == "medium" and f.severity == "warning"
    assert "2 updates per epoch, 40 in the whole run" in f.summary


def test_quiet_on_small_batches_from_the_loader():
    quiet(CAUSE, make_view(slow(), diagnostics=with_loader(512, 32)))
