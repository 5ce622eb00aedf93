"""loss_metric_disagreement: the loss improves while the accuracy does not."""

from tests.rules.conftest import falling, fires, flat, healthy_loss, linear, make_view, quiet, rng

CAUSE = "loss_metric_disagreement"


def val_loss():
    return falling(20, 1.1, 0.6, knee=0.3)  # 45% down


def test_fires_when_accuracy_stays_at_chance():
    acc = flat(20, 0.34) + 0.002 * rng(0).standard_normal(20)
    f = fires(CAUSE, make_view(healthy_loss(), val_loss(), val_acc=acc))
    assert f.confidence == "medium" and f.severity == "warning" and "val_acc" in f.summary


def test_fires_on_accuracy_logged_in_percent():
    acc = flat(20, 34.0) + 0.2 * rng(1).standard_normal(20)
    fires(CAUSE, make_view(healthy_loss(), val_loss(), val_acc=acc))


def test_quiet_when_accuracy_rises_with_the_loss():
    quiet(CAUSE, make_view(healthy_loss(), val_loss(), val_acc=linear(20, 0.34, 0.8)))


def test_quiet_on_a_small_but_steady_accuracy_gain():
    # 5 points up with a clear upward trend: the metric agrees, if modestly
    acc = linear(20, 0.34, 0.39) + 0.002 * rng(2).standard_normal(20)
    quiet(CAUSE, make_view(healthy_loss(), val_loss(), val_acc=acc))
