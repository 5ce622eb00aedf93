"""nonfinite_loss: the loss curve holds NaN or Inf."""

import numpy as np

from tests.rules.conftest import falling, fires, healthy_loss, make_view, nan_from, quiet

CAUSE = "nonfinite_loss"
MLFLOW_INF = 1.7976931348623157e308  # how MLflow stores +Inf


def test_fires_on_a_sudden_nan_from_a_calm_curve():
    f = fires(CAUSE, make_view(nan_from(healthy_loss(), 400)))
    assert f.confidence == "high" and f.severity == "failed"
    assert "NAN at step 400" in f.summary and "inputs" in f.recommendation  # calm before: look at the data


def test_fires_on_a_blow_up_then_inf_as_mlflow_stores_it():
    blow_up = 0.3 * np.exp(np.linspace(0, 4, 100))  # 55x in 100 steps
    y = np.concatenate([falling(300, 1.4, 0.3, knee=0.1), blow_up, np.full(50, MLFLOW_INF)])
    f = fires(CAUSE, make_view(y, params={"lr": "2.0"}))
    assert "Inf at step 400" in f.summary and "after rising" in f.summary
    assert "lower the learning rate" in f.recommendation


def test_fires_on_the_validation_loss_too():
    val = nan_from(falling(10, 1.3, 0.4, knee=0.3), 7)
    f = fires(CAUSE, make_view(healthy_loss(), val))
    assert "validation loss" in f.summary


def test_quiet_on_a_finite_curve_with_a_huge_spike():
    y = healthy_loss()
    y[300] = 1e6  # one bad batch, still a number
    quiet(CAUSE, make_view(y))
