"""too_much_regularization: the training loss stalls under strong regularisation."""

import math

import numpy as np

from tests.rules.conftest import (
    SEED,
    falling,
    fires,
    healthy_diagnostics,
    healthy_train,
    make_view,
    mlp_model,
    optimizer_facts,
    quiet,
    regression_loss,
    rule_for,
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


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_too_much_regularization_from_curves():
    rng = np.random.default_rng(SEED)
    stuck_ = 1.40 - 0.05 * (1 - np.exp(-np.arange(500) / 30)) + 0.03 * rng.standard_normal(500)
    val_below = 1.27 + 0.001 * rng.standard_normal(8)  # 4% under the training loss: dropout-sized
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(stuck_, val_below))
    assert f and f.confidence == "low"
    assert rule.evaluate(make_view(stuck_, params={"dropout": "0.9"})) is not None
    assert rule.evaluate(make_view(stuck_, val_below + 0.1)) is None  # val above train, no params
    assert rule.evaluate(make_view(healthy_train(), params={"dropout": "0.9"})) is None


def test_two_flat_curves_a_hair_apart_are_no_sign_of_dropout():
    # a StepLR stepped every batch (held-out program f37): training 1.428, validation 1.427, both flat; and a
    # regression that learns only its targets' mean (f35): 1.000 and 0.995. No params: nothing says regularisation
    rng = np.random.default_rng(SEED)
    for train_level, val_level in ((1.428, 1.427), (1.0, 0.995)):
        train = train_level + 0.03 * np.exp(-np.arange(20) / 2) + 0.0005 * rng.standard_normal(20)
        quiet(CAUSE, make_view(train, val_level + 0.0005 * rng.standard_normal(20)))


# --- a classifier stuck at chance under strong regularisation (issue 11: f25, Dropout(0.9)) -----
def inflated_to_chance():
    # dropout 0.9 scales the kept activations by 10: the first losses are twice ln C, and the loss
    # "falls" 48% from there, but only to chance
    return falling(600, 2 * CHANCE, 1.04 * CHANCE, knee=0.1, noise=0.02)


def test_fires_on_heavy_dropout_and_a_loss_that_falls_only_to_chance():
    f = fires(CAUSE, run(inflated_to_chance(), dropout=0.9))
    assert "of chance" in f.summary and "dropout 0.9" in f.summary
    assert f.evidence[0].values["train_end_vs_chance"] > 0.95


def test_quiet_when_heavy_dropout_inflates_the_first_loss_but_the_model_learns():
    quiet(CAUSE, run(falling(600, 2 * CHANCE, 0.4 * CHANCE, knee=0.15, noise=0.02), dropout=0.9))


def test_quiet_on_a_loss_at_chance_with_mild_regularisation():
    # at chance with dropout 0.1: something else is wrong, not the regularisation
    quiet(CAUSE, run(inflated_to_chance(), dropout=0.1))


def test_a_regression_is_judged_by_its_fall_alone():
    # no chance loss for a regression: a loss that fell to half its start is not stalled
    d = healthy_diagnostics(
        model=mlp_model([8, 64, 64, 1], dropout=0.9), optimizer=optimizer_facts(), loss=regression_loss([0.0, 1.0])
    )
    quiet(CAUSE, make_view(falling(600, 2.0, 1.0, knee=0.1, noise=0.02), diagnostics=d))


# --- a penalty added to the loss by hand (the recorder's loss.objective_share) ----------------------
def penalty_run(loss, share, steps=20, start=None, calls=1):
    view = run(loss)
    view.diagnostics["loss"].update(
        objective_share=share,
        objective_share_start=share if start is None else start,
        objective_steps=steps,
        objective_calls=calls,
    )
    return view


def test_fires_on_a_penalty_outweighing_the_loss_on_a_run_that_learned_nothing():
    flat = np.full(600, CHANCE) + 0.002 * np.random.default_rng(SEED).standard_normal(600)
    f = fires(CAUSE, penalty_run(flat, 0.9, start=0.2))  # heavy at the start, then the weights were gone
    assert f.confidence == "high" and f.severity == "failed" and "20%" in f.summary
    assert "learning_rate_too_high" not in f.summary
    quiet(CAUSE, penalty_run(flat, 0.9))  # the loss function was most of the objective throughout
    quiet(CAUSE, penalty_run(flat, 0.2, steps=2))  # too few sampled steps to read it
    # two loss functions per backward (a distillation's weighted KL + cross-entropy): the share says
    # how they were weighted, not that a penalty was added (found by review)
    quiet(CAUSE, penalty_run(flat, 0.04, calls=2))


def test_quiet_on_a_low_share_when_the_loss_blew_up():
    # a penalty pulls weights to zero; it does not make the loss rise tenfold (found by review)
    blown = np.concatenate([[CHANCE, 40 * CHANCE, 30 * CHANCE], np.full(597, CHANCE)])
    quiet(CAUSE, penalty_run(blown, 0.04))
    fires(CAUSE, penalty_run(np.full(600, CHANCE), 0.04))


def test_quiet_on_a_penalty_outweighing_the_loss_of_a_run_that_learned():
    # a healthy run under any penalty ends with the data loss near 0: the penalty is then most of it
    quiet(CAUSE, penalty_run(learning(), 0.02))
