"""overfitting: the validation loss rises after its best evaluation while training keeps falling."""

import numpy as np

from tests.rules.conftest import falling, fires, flat, healthy_loss, linear, make_view, quiet, rng

CAUSE = "overfitting"


def train_to_zero():
    return falling(600, 1.4, 0.02, knee=0.2, noise=0.01)


def val_rising_after(best_eval, end_factor, evals=30, best=0.5, seed=0):
    """Per-epoch validation loss: falls to `best` at eval `best_eval`, then rises steadily to
    `end_factor` x best."""
    down = falling(best_eval + 1, 1.3, best, knee=0.25)
    down[-1] = best
    up = linear(evals - best_eval - 1, best * 1.02, best * end_factor)
    return np.concatenate([down, up]) + 0.004 * rng(seed).standard_normal(evals)


def test_fires_with_a_large_generalization_loss():
    f = fires(CAUSE, make_view(train_to_zero(), val_rising_after(8, 1.8)))  # ends 80% above its best
    assert f.confidence == "high" and f.severity == "warning"
    assert f.p_value is not None and f.p_value < 0.05


def test_a_moderate_rise_is_medium_confidence():
    f = fires(CAUSE, make_view(train_to_zero(), val_rising_after(8, 1.25)))  # 25% above its best
    assert f.confidence == "medium"


def test_quiet_when_validation_converges_with_training():
    val = falling(30, 1.3, 0.45, knee=0.2) + 0.004 * rng(1).standard_normal(30)
    quiet(CAUSE, make_view(healthy_loss(), val))


def test_quiet_on_a_small_rise_over_the_last_evaluations():
    # flat at its best, then 12% up over the last two evaluations: early stopping's business
    val = np.concatenate([falling(28, 1.3, 0.5, knee=0.15), [0.53, 0.56]])
    quiet(CAUSE, make_view(train_to_zero(), val))


def test_quiet_when_training_rises_with_validation():
    # both climb back together: divergence, not overfitting
    train = np.concatenate([falling(240, 1.4, 0.3, knee=0.1), linear(360, 0.3, 1.2)])
    val = np.concatenate([falling(12, 1.3, 0.4, knee=0.2), linear(18, 0.42, 1.25)])
    quiet(CAUSE, make_view(train + flat(600, 0, noise=0.01), val))


def test_a_sustained_small_rise_far_above_a_training_loss_near_zero_is_overfitting():
    # the same batch every step (f32): the training loss goes to ~0.01 on that batch, the validation loss
    # bottoms out at 0.83 and rises at each of the last 5 evaluations, 7% so far
    train = falling(320, 1.3, 0.01, knee=0.15, noise=0.002)
    val = np.array([1.24, 1.02, 0.88, 0.84, 0.8325, 0.84, 0.852, 0.865, 0.879, 0.892])
    f = fires(CAUSE, make_view(train, val))
    assert f.severity == "warning" and "7% above it" in f.summary
    # the same rise next to a training loss that stays close to it is under Prechelt's 10%: not reported
    quiet(CAUSE, make_view(falling(320, 1.3, 0.55, knee=0.15, noise=0.002), val))


def test_quiet_on_a_few_percent_creep_at_the_end_of_a_converged_run():
    # a CIFAR-style cosine run: training loss near zero (10x under validation, normal at convergence), the
    # validation loss up 3% over its best across the last 5 evaluations: noise around its best
    train = falling(320, 1.3, 0.01, knee=0.15, noise=0.002)
    val = np.array([1.24, 1.02, 0.88, 0.84, 0.8325, 0.835, 0.838, 0.842, 0.852, 0.8575])
    quiet(CAUSE, make_view(train, val))


def solved_to_zero(n=192):
    """A 4-class CNN solved within an epoch: per-step training loss from ln 4 down to ~1e-4 (log-linear,
    with multiplicative noise, as a loss near zero varies)."""
    gen = rng(7)
    logs = np.concatenate(
        [np.linspace(np.log(1.375), np.log(2e-3), 32), np.linspace(np.log(2e-3), np.log(1e-4), n - 32)]
    )
    return np.exp(logs + 0.8 * gen.standard_normal(n) * (np.arange(n) > 32))


def test_quiet_on_a_tiny_rise_of_a_validation_loss_solved_to_near_zero():
    # issue 11: a healthy Lightning CNN (AdamW 1e-2) at 100% validation accuracy whose validation loss moves
    # 0.0008 -> 0.0013 nats over its last 3 epochs: GL 62%, a rise of 0.0005 nats on a task that started at
    # ln 4 = 1.39, under 1% of that start (0.014 nats)
    val = np.array([0.002392, 0.003538, 0.0008038, 0.001218, 0.001295, 0.001304])
    acc = np.array([0.998, 0.998, 1.0, 1.0, 1.0, 1.0])
    quiet(CAUSE, make_view(solved_to_zero(), val, val_acc=acc))
    # the same relative shape at a best of 0.3 (a rise of 0.19 nats, 14% of the start) is overfitting
    f = fires(CAUSE, make_view(solved_to_zero(), val / 0.0008038 * 0.3, val_acc=acc))
    assert f.evidence[0].values["rise"] > f.evidence[0].values["least_rise"]


def test_a_regression_that_started_high_still_overfits():
    """Found by review: the floor first scaled by the first training loss, which on a regression is set
    by the untrained outputs and the targets' units (MSE from 1e4): a validation MSE whose best is 25 and
    that ends at 88 was silenced. A regression (no accuracy, no class count) has no floor."""
    train = falling(600, 1e4, 2.0, knee=0.2, noise=0.01)
    val = val_rising_after(8, 3.5, best=25.0)
    f = fires(CAUSE, make_view(train, val))
    assert f.confidence == "high"
    # the same curves in other units: the same verdict
    fires(CAUSE, make_view(train / 1e4, val / 1e4))


def test_a_jump_that_never_came_back_needs_no_trend():
    # validation images read BGR: 1.41 before training, then 12.9-13.8 at every epoch, flat (no trend in 7 points)
    val = np.array([1.41, 12.85, 13.5, 13.78, 13.28, 13.31, 13.49])
    f = fires(CAUSE, make_view(falling(300, 1.37, 1e-4, knee=0.05), val, params={"n_classes": "4"}))
    assert "never improved on its first evaluation" in f.summary and "carries to the validation set" in f.recommendation
    assert f.p_value is None  # no trend test to rest on


def test_a_fine_tune_best_at_its_first_evaluation_gets_the_usual_advice():
    # the first evaluation came after an epoch of learning, far under chance (found by review)
    val = np.array([0.5, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1])
    f = fires(CAUSE, make_view(falling(300, 1.37, 1e-3, knee=0.05), val, params={"n_classes": "4"}))
    assert "carries to the validation set" not in f.recommendation and "keep the best checkpoint" in f.recommendation


def test_a_jump_that_came_back_within_half_of_the_best_is_not_held():
    val = np.array([0.5, 0.9, 0.95, 0.6, 0.62, 0.6, 0.61])  # back to 20% above the best: no trend, no UP_3
    quiet(CAUSE, make_view(falling(300, 1.37, 0.2, knee=0.05), val))


def test_a_jump_of_a_few_hundredths_on_a_solved_task_is_not_held():
    # best 0.0013 at val accuracy 1.0, then 0.025-0.032: a GL of 2,000%, a rise of 2% of ln 4 (a corpus run)
    val = np.array([0.0013, 0.03, 0.032, 0.025, 0.03, 0.028])
    quiet(CAUSE, make_view(falling(200, 1.39, 1e-5, knee=0.05), val, params={"n_classes": "4"}))
