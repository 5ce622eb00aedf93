"""data_not_shuffled: the data arrives sorted by label."""

import numpy as np
import pytest

from tests.rules.conftest import (
    classification_loss,
    data_loader_section,
    fires,
    healthy_diagnostics,
    healthy_loss,
    loader,
    make_view,
    quiet,
    rng,
    sampled_curve,
)

CAUSE = "data_not_shuffled"
KEY = "nnaudit/labels_per_batch"


def recorded(labels_per_batch, n_classes=3):
    d = healthy_diagnostics(loss=classification_loss(n_classes, label_counts=[2000] * n_classes))
    return make_view(healthy_loss(), diagnostics=d, extra=sampled_curve(KEY, labels_per_batch))


def test_fires_when_every_sampled_batch_holds_one_class():
    f = fires(CAUSE, recorded(np.ones(60)))
    assert f.confidence == "high" and f.severity == "failed" and "3 classes" in f.summary


def test_quiet_when_batches_mix_the_classes():
    quiet(CAUSE, recorded(np.full(60, 3.0)))


def test_quiet_on_small_shuffled_batches_of_many_classes():
    # batches of 8 over 10 classes hold ~5 distinct labels each, never 1 as a rule
    quiet(CAUSE, recorded(rng(0).integers(3, 8, 60), n_classes=10))


def test_quiet_on_a_single_class_task():
    # one class occurs: one label per batch is all there is
    d = healthy_diagnostics(loss=classification_loss(3, label_counts=[6000, 0, 0]))
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=sampled_curve(KEY, np.ones(60))))


@pytest.mark.xfail(
    strict=True,
    reason="suspected rule bug: with batches of one sample every batch holds one "
    "class, so plain per-sample SGD is reported as sorted data (high, failed)",
)
def test_quiet_on_batches_of_one_sample():
    d = healthy_diagnostics(
        loss=classification_loss(10, label_counts=[60] * 10), data_loader=data_loader_section(loader(600, 1))
    )
    d["inputs"]["train"]["median_batch_size"] = 1
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=sampled_curve(KEY, np.ones(60))))
