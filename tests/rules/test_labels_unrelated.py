"""labels_unrelated: training memorises while validation never improves on its start."""

import numpy as np

from tests.rules.conftest import falling, fires, linear, make_view, quiet, rng

CAUSE = "labels_unrelated"


def memorising_train():
    return falling(600, 1.1, 0.05, knee=0.2, noise=0.02)


def test_fires_when_validation_never_improves():
    val = linear(15, 1.1, 1.3) + 0.003 * rng(0).standard_normal(15)
    f = fires(CAUSE, make_view(memorising_train(), val))
    assert f.confidence == "medium" and f.severity == "failed"


def test_quiet_when_validation_improves_before_overfitting():
    # validation gets 15% better (several times the rule's margin), then rises: overfitting, not noise labels
    val = np.concatenate([falling(5, 1.1, 0.93, knee=0.3), linear(10, 0.95, 1.2)])
    quiet(CAUSE, make_view(memorising_train(), val))


def test_quiet_when_training_does_not_memorise():
    val = linear(15, 1.1, 1.1) + 0.003 * rng(1).standard_normal(15)
    quiet(CAUSE, make_view(falling(600, 1.1, 0.9, knee=0.2, noise=0.02), val))
