"""oscillating_loss: the loss swings up and down without settling."""

import numpy as np

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from tests.rules.conftest import ar1, falling, fires, healthy_loss, make_view, quiet, rng

CAUSE = "oscillating_loss"


def test_fires_on_a_periodic_swing():
    t = np.arange(600)
    y = falling(600, 1.4, 0.5, knee=0.1, noise=0.02) + 0.15 * np.sin(2 * np.pi * t / 25)  # +/-30% of the level
    f = fires(CAUSE, make_view(y))
    assert f.confidence == "low" and f.severity == "warning"  # periodic alone
    assert f.p_value is not None and f.p_value < 0.01 and "every ~25 points" in f.summary


def test_fires_on_swings_larger_than_the_progress():
    y = 0.5 * np.exp(rng(3).standard_normal(600))  # log-normal jumps of the order of the level, no progress
    f = fires(CAUSE, make_view(y))
    assert f.p_value is None and "point-to-point swings" in f.summary


def test_quiet_on_minibatch_noise():
    quiet(CAUSE, make_view(healthy_loss()))


def test_quiet_on_strongly_autocorrelated_wander():
    # red noise (phi 0.9) wanders slowly, with no period: the AR(1) baseline explains it
    quiet(CAUSE, make_view(falling(600, 1.4, 0.5, knee=0.1) + ar1(600, phi=0.9, sd=0.04, seed=4)))


# --- a learning-rate staircase is not an oscillation ------------------------------------------------
def steplr_staircase(epochs=14, per_epoch=94, seed=5):
    """The shape of the PyTorch MNIST example: Adadelta with StepLR(step_size=1, gamma=0.85), the loss
    logged every 10 batches (94 points an epoch): each epoch's level a step below the last."""
    levels = 0.05 + 0.5 * 0.85 ** np.arange(epochs + 1)
    steps = levels[:-1] - levels[1:]
    # each epoch: a drop when the learning rate steps down, then a slow fall over a third of the next step
    within = np.concatenate([-s * 0.33 * (1 - np.exp(-np.arange(per_epoch) / 20)) for s in steps])
    return np.repeat(levels[:-1], per_epoch) + within + 0.002 * rng(seed).standard_normal(epochs * per_epoch)


def test_quiet_on_a_steplr_staircase():
    y = steplr_staircase()
    from mlflow_nnaudit.auditor import stats

    assert stats.detect_oscillation(y[len(y) // 2 :]).detected  # the spectrum alone sees a period ...
    quiet(CAUSE, make_view(y))  # ... but the loss never climbs back up at that scale


def test_still_fires_on_a_swing_on_top_of_a_staircase():
    y = steplr_staircase()
    t = np.arange(len(y))
    fires(CAUSE, make_view(y + 0.03 * np.sin(2 * np.pi * t / 25)))


def test_quiet_on_a_loss_logged_with_a_step_that_restarts_each_epoch():
    # the MNIST example's loop logs every 10 batches with step = position in the epoch: sorted by step, the
    # 14 epochs interleave into a 14-point saw-tooth; read in logging order it is the staircase it is
    from mlflow_nnaudit.auditor.curves import Curve

    y = steplr_staircase()
    epochs, per_epoch = 14, 94
    steps = np.tile(np.arange(per_epoch) * 10 * 64, epochs)
    times = 1.7e12 + np.arange(len(y)) * 250.0
    c = Curve("loss", steps, y, times)
    assert np.allclose(c.values, y) and np.all(np.diff(c.steps) > 0)
    quiet(CAUSE, make_view(c))
    # resumed once from a checkpoint (one fall back): kept in step order
    once = Curve("loss", np.r_[np.arange(50), np.arange(50)], np.r_[y[:50], y[50:100]], times[:100])
    assert np.all(np.diff(once.steps) >= 0)


def test_wild_swings_on_a_run_that_went_nowhere_are_erratic_even_when_the_last_points_are_low():
    # data sorted by class (f16): each logged batch holds one class, so the loss jumps between ~0 and 20+
    # with no trend at all; the last two logged batches happen to be easy, so the end level (the last
    # blocks) is far below the start and "what the run gained" by the levels alone exceeds the noise
    y = rng(16).exponential(1.6, 48)
    y[0], y[-2:] = 1.6, (0.4, 0.006)
    f = fires(CAUSE, make_view(y))
    assert f.severity == "warning" and "point-to-point swings" in f.summary


def test_quiet_on_a_loss_fitted_to_near_zero():
    # a CNN solved in its first epoch (seen in the corpus): the per-step loss falls from 1.4 to ~1e-4 in 20
    # steps, then sits there, autocorrelated, with minibatch spikes up to 0.2: swings large against its own
    # level, a few thousandths of the start, no trend left to test. Nothing to act on
    r = rng(6)
    tail = 1e-4 * np.exp(ar1(172, phi=0.6, sd=1.6, seed=6))
    tail[r.choice(172, 12, replace=False)] = r.uniform(0.005, 0.2, 12)
    view = make_view(np.concatenate([np.geomspace(1.4, 1e-3, 20), tail]))
    lv = view.levels(TRAIN_LOSS)
    assert lv.noise >= 0.5 * lv.end and view.trend(TRAIN_LOSS).direction == 0  # "erratic" against its own level
    quiet(CAUSE, view)


def test_a_ripple_under_a_tenth_of_the_progress_is_a_risk_not_harm():
    """A healthy LoRA fine-tune (held-out program h70): the loss fell from 2.3 to 0.47 with an epoch-long ripple of
    +/-0.047, a tenth of its level but 3% of what it gained: a set-up risk (an advisory when nothing harmed the
    run). The same ripple on a loss that gained less than ten times it is harm, and so is a swing of a quarter of
    the loss level or more, whatever the gain."""
    t = np.arange(400)
    ripple = 0.08 * np.sin(2 * np.pi * t / 47) + 0.01 * rng(4).standard_normal(400)  # +/-0.07 as measured
    learned = fires(CAUSE, make_view(0.45 + 1.85 * np.exp(-t / 60) + ripple))
    assert learned.effective_kind == "risk" and not learned.harmful
    stalled = fires(CAUSE, make_view(0.45 + 0.2 * np.exp(-t / 60) + ripple))
    assert stalled.effective_kind == "outcome" and stalled.harmful
    # review: a swing of 75% of the level after a large gain (ln 10 down to 0.2, then 0.02..0.39) is no ripple
    big = fires(CAUSE, make_view(0.2 + 2.1 * np.exp(-t / 30) + 0.15 * np.sin(2 * np.pi * t / 47)))
    assert big.effective_kind == "outcome" and big.harmful
    # review: a ripple of +/-0.035 on a loss fitted near 0 (2.3 -> 0.02) stays a ripple: 1.5% of the gain
    small = 0.04 * np.sin(2 * np.pi * t / 47) + 0.003 * rng(4).standard_normal(400)
    assert fires(CAUSE, make_view(0.02 + 2.28 * np.exp(-t / 60) + small)).effective_kind == "risk"
