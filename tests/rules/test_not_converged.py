"""not_converged: the loss is still falling clearly when training stops."""

from tests.rules.conftest import falling, fires, healthy_loss, make_view, quiet, rng

CAUSE = "not_converged"


def test_fires_on_a_validation_loss_still_falling_at_the_end():
    train = falling(600, 1.4, 0.2, knee=1.5, noise=0.03)  # not even one e-fold over the run
    val = falling(40, 1.4, 0.25, knee=1.5) + 0.003 * rng(0).standard_normal(40)  # 40 evaluations
    f = fires(CAUSE, make_view(train, val))
    assert f.severity == "warning" and f.confidence == "high"
    assert "validation loss" in f.summary and f.p_value is not None and f.p_value < 1e-3


def test_fires_on_the_training_loss_without_validation():
    f = fires(CAUSE, make_view(falling(600, 1.4, 0.2, knee=1.5, noise=0.03)))
    assert "training loss" in f.summary


def test_quiet_on_a_converged_run():
    val = falling(20, 1.4, 0.35, knee=0.12) + 0.003 * rng(1).standard_normal(20)
    quiet(CAUSE, make_view(healthy_loss(), val))


def test_quiet_on_a_tail_that_still_creeps_down_a_little():
    # converged by mid-run; the last 30% brings ~1% of the progress (a decelerating healthy curve)
    quiet(CAUSE, make_view(falling(600, 1.4, 0.3, knee=0.2, noise=0.03)))


def test_fires_on_twelve_evaluations_still_falling():
    # 12 per-epoch evaluations (held-out program f69, curves only): the last 30% is 4 points, whose
    # Mann-Kendall test can never reach p < 0.05 (2/4! = 0.083); read on the last 5 it does (2/5!)
    import numpy as np

    val = np.linspace(1.78e5, 1.45e5, 12) + 50 * rng(2).standard_normal(12)
    f = fires(CAUSE, make_view(np.linspace(1.83e5, 1.49e5, 12), val))
    assert "validation loss" in f.summary and f.p_value < 0.05
    # the same 12 evaluations levelling off onto a floor are not still falling
    quiet(CAUSE, make_view(np.linspace(1.83e5, 1.49e5, 12), 1.45e5 + 3.3e4 * np.exp(-np.arange(12) / 1.5)))
