"""too_much_regularization: the training loss stalls under strong regularisation."""

import math

from tests.rules.conftest import (
    falling,
    fires,
    healthy_diagnostics,
    make_view,
    mlp_model,
    optimizer_facts,
    quiet,
)

CAUSE = "too_much_regularization"
CHANCE = math.log(3)


def stuck():
    return falling(600, CHANCE, 0.9 * CHANCE, knee=0.1, noise=0.02)  # ends at 90% of its start


def learning():
    return falling(600, CHANCE, 0.3 * CHANCE, knee=0.15, noise=0.02)


def run(loss, dropout=0.0, optimizer=None):
    d = healthy_diagnostics(model=mlp_model([8, 64, 64, 3], dropout=dropout), optimizer=optimizer or optimizer_facts())
    return make_view(loss, diagnostics=d)


def test_fires_on_heavy_dropout_and_a_stuck_loss():
    f = fires(CAUSE, run(stuck(), dropout=0.9))
    assert f.confidence == "medium" and f.severity == "warning" and "dropout 0.9" in f.summary


def test_fires_on_strong_coupled_weight_decay():
    f = fires(CAUSE, run(stuck(), optimizer=optimizer_facts("SGD", weight_decay=0.1)))
    assert "weight decay 0.1" in f.summary


def test_quiet_when_the_loss_falls_despite_heavy_dropout():
    quiet(CAUSE, run(learning(), dropout=0.9))


def test_quiet_on_a_stuck_loss_with_mild_regularisation():
    quiet(CAUSE, run(stuck(), dropout=0.1))


def test_quiet_on_decoupled_weight_decay():
    # AdamW's decoupled decay of 0.01 is its default, not strong regularisation
    quiet(CAUSE, run(stuck(), optimizer=optimizer_facts("AdamW", lr=1e-3, weight_decay=0.01, momentum=None)))
