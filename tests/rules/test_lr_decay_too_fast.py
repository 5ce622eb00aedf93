"""lr_decay_too_fast: the learning rate is gone early and progress stops with it."""

import numpy as np

from mlflow_nnaudit.auditor.curves import Curve
from tests.rules.conftest import SEED, fires, make_view, quiet


def lr_schedule_run(decay_epoch_gamma: float, epochs=12, per_epoch=60, seed=1):
    """Per-step loss of a model whose progress is proportional to the learning rate."""
    rng = np.random.default_rng([SEED, seed])
    lrs = np.array([1e-3 * decay_epoch_gamma**e for e in range(epochs)])
    step_lr = np.repeat(lrs, per_epoch)
    progress = np.cumsum(step_lr) / 1e-3 / per_epoch  # epochs' worth of full-rate training
    loss = 0.4 + 1.0 * np.exp(-progress / 3.0) + 0.04 * rng.standard_normal(len(step_lr))
    lr = Curve("lr", np.arange(epochs) * per_epoch, lrs)
    return loss, lr


CAUSE = "lr_decay_too_fast"


def test_fires_when_the_rate_is_cut_tenfold_within_two_epochs():
    loss, lr = lr_schedule_run(0.3)
    f = fires(CAUSE, make_view(loss, lr=lr))
    assert f.p_value is not None and f.p_value < 0.05
    assert f.confidence == "medium" and f.severity == "warning"


def test_quiet_on_a_schedule_that_reaches_a_tenth_only_at_the_end():
    loss, lr = lr_schedule_run(0.85)
    quiet(CAUSE, make_view(loss, lr=lr))


def test_quiet_on_a_constant_rate():
    loss, lr = lr_schedule_run(1.0)
    quiet(CAUSE, make_view(loss, lr=lr))
