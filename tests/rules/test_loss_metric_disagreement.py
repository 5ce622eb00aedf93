"""loss_metric_disagreement: the loss improves while the accuracy does not."""

import numpy as np

from tests.rules.conftest import falling, fires, flat, healthy_diagnostics, healthy_loss, linear, make_view, quiet, rng

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


def test_quiet_when_accuracy_is_at_its_ceiling_from_the_start():
    # a task solved in the first epoch (seen on a CNN with early stopping): validation accuracy 0.996 -> 1.0,
    # the loss still falling 99% as the margins grow; an accuracy with no room to rise disagrees with nothing
    acc = np.minimum(1.0, flat(20, 0.998) + 0.002 * rng(3).standard_normal(20))
    loss = falling(20, 0.26, 0.0014, knee=0.1)
    quiet(CAUSE, make_view(healthy_loss(), loss, val_acc=acc))


def test_still_fires_on_a_high_accuracy_that_had_room_to_rise():
    acc = flat(20, 0.95) + 0.002 * rng(4).standard_normal(20)  # 5 points below the ceiling, stuck
    fires(CAUSE, make_view(healthy_loss(), val_loss(), val_acc=acc))


def test_a_metric_stuck_at_100_percent_beside_a_loss_that_starts_at_chance_is_broken():
    # `(pred == pred).float().mean()` reads 1.0 from the first evaluation of an untrained 10-class model
    # (found by review): the ceiling is no excuse when the loss had not left chance, ln 10
    loss = falling(20, np.log(10), 0.4, knee=0.3)
    fires(CAUSE, make_view(healthy_loss(), loss, val_acc=np.ones(20), params={"n_classes": "10"}))


def recorded_loss(fn, shape):
    return healthy_diagnostics(loss={"loss_function": fn, "n_classes": None, "input_shape": shape})


def test_a_short_curve_with_a_frozen_accuracy_the_loss_contradicts():
    # one logit, accuracy from torch.max(z, 1): always class 0, 0.5 at all 5 epochs while the BCE fell to 0.045
    loss = np.array([0.16, 0.0895, 0.0714, 0.0534, 0.0446])
    d = recorded_loss("binary_cross_entropy_with_logits", [1])
    f = fires(CAUSE, make_view(healthy_loss(), loss, val_acc=np.full(5, 0.5), diagnostics=d))
    assert "did not improve (0.5 -> 0.5)" in f.summary
    quiet(CAUSE, make_view(healthy_loss(), loss, val_acc=np.full(5, 0.5)))  # no recorder: the loss's kind unknown


def test_a_short_curve_of_an_exact_match_accuracy_over_many_tags_is_quiet():
    # 60 tags under a per-tag BCE: the exact-match accuracy stays at 0 while the loss falls (found by review)
    loss = np.array([0.58, 0.45, 0.36, 0.30, 0.26])
    d = recorded_loss("binary_cross_entropy_with_logits", [60])
    quiet(CAUSE, make_view(healthy_loss(), loss, val_acc=np.full(5, 0.0), diagnostics=d))
    quiet(CAUSE, make_view(healthy_loss(), loss, val_acc=np.full(5, 0.2), diagnostics=d))


def test_a_short_curve_whose_steady_accuracy_the_loss_allows_is_quiet():
    # a small validation set at 95% while the margins grow: a loss of 0.15+ allows any accuracy above 0.78
    loss = np.array([0.3, 0.25, 0.2, 0.17, 0.15])
    quiet(CAUSE, make_view(healthy_loss(), loss, val_acc=np.full(5, 0.95)))
