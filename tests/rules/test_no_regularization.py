"""no_regularization: the model overfits with no weight decay and no dropout."""

import numpy as np

from tests.rules.conftest import (
    falling,
    fires,
    healthy_diagnostics,
    healthy_loss,
    linear,
    make_view,
    mlp_model,
    optimizer_facts,
    quiet,
    rng,
)

CAUSE = "no_regularization"


def overfitting_curves():
    train = falling(600, 1.4, 0.02, knee=0.2, noise=0.01)
    val = np.r_[falling(9, 1.3, 0.5, knee=0.25), linear(21, 0.51, 0.9)] + 0.004 * rng(0).standard_normal(30)
    return train, val


def run(curves, dropout=0.0, weight_decay=0):
    d = healthy_diagnostics(
        model=mlp_model([8, 256, 256, 3], dropout=dropout), optimizer=optimizer_facts(weight_decay=weight_decay)
    )
    return make_view(*curves, diagnostics=d)


def test_fires_on_an_overfitting_model_without_any_regularisation():
    f = fires(CAUSE, run(overfitting_curves()))
    assert f.confidence == "medium" and f.severity == "warning"


def test_quiet_when_there_is_dropout():
    quiet(CAUSE, run(overfitting_curves(), dropout=0.3))


def test_quiet_when_there_is_weight_decay():
    quiet(CAUSE, run(overfitting_curves(), weight_decay=1e-4))


def test_quiet_without_overfitting():
    val = falling(30, 1.3, 0.45, knee=0.2)
    quiet(CAUSE, run((healthy_loss(), val)))


def test_quiet_on_curves_alone():
    # no recorder: the run's regularisation is unknown
    quiet(CAUSE, make_view(*overfitting_curves()))
