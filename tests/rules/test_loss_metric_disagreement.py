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


def test_quiet_on_an_accuracy_a_tenth_of_the_way_from_its_ceiling_after_the_first_epoch():
    # GraphSAGE on 6 classes (benchmarks/programs h83): 0.96 at the first evaluation (95% of the way from chance,
    # 1/6, to 1), 0.967 at the end, the loss 1.04 -> 0.12 (it had left ln 6 = 1.79): the margins grew
    acc = flat(12, 0.965) + 0.004 * rng(5).standard_normal(12)
    loss, params = falling(12, 1.04, 0.12, knee=0.2), {"n_classes": "6"}
    quiet(CAUSE, make_view(healthy_loss(), loss, val_acc=acc, params=params))
    # stuck at 0.90 (88% of the way) it had room enough for a 1-point change to mean something
    fires(CAUSE, make_view(healthy_loss(), loss, val_acc=acc - 0.065, params=params))


def test_on_imbalanced_labels_the_way_from_chance_starts_at_the_majoritys_share():
    # a fraud model at 0.9885 every epoch on 98% legitimate labels (benchmarks/programs f27): 0.99 is 99% of the
    # way from 1/2 to 1, but no way at all from the majority's share: it names no fraud while the loss falls
    from tests.rules.conftest import classification_loss

    d = healthy_diagnostics(loss=classification_loss(2, label_counts=[628, 12]))
    loss = falling(10, 0.27, 0.074, knee=0.3)
    fires(CAUSE, make_view(healthy_loss(), loss, val_acc=np.full(10, 0.9885), diagnostics=d))
    # a model at 0.98 on 94% majority labels whose accuracy moves (0.9835 -> 0.9815) learned: its room is counted
    # from 1/2, and it has none (found by review: a healthy imbalanced classifier got a warning)
    d = healthy_diagnostics(loss=classification_loss(2, label_counts=[602, 38]))
    moving = 0.9825 + 0.001 * np.cos(np.arange(10))
    quiet(CAUSE, make_view(healthy_loss(), falling(10, 0.089, 0.044, knee=0.3), val_acc=moving, diagnostics=d))


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


def _tagger(val_acc, class_weighted=False, shape=(5,)):
    """A tagger whose cross-entropy fell from 0.6 to under 0.01 over 12 evaluations, its accuracy `val_acc`."""
    d = recorded_loss("cross_entropy", list(shape))
    d["loss"]["class_weighted"] = class_weighted
    loss = falling(12, 0.6, 0.002, knee=0.2)
    return make_view(healthy_loss(), loss, val_acc=val_acc, diagnostics=d)


def test_an_accuracy_under_the_least_its_loss_allows_is_a_metric_bug():
    """A BiLSTM tagger whose F1/accuracy flattens (seq, batch) predictions against (batch, seq) tags (held-out
    program f142): the cross-entropy ends at 0.002, which allows no accuracy under 99.7%, while val_acc falls
    0.74 -> 0.58. A definite bug in the metric, at high confidence, and no skewed label histogram's doing."""
    f = fires(CAUSE, _tagger(np.r_[0.74, np.full(11, 0.58)]))
    assert f.confidence == "high" and f.effective_kind == "bug" and f.rules_out == ("class_imbalance",)
    floor = f.evidence[0].values["least_accuracy_the_loss_allows"]
    assert floor > 0.95 and f"under the {floor:.1%} its loss allows" in f.summary
    assert "computed wrongly" in f.recommendation
    # an accuracy that rose, but still ends far under what the loss allows, is the same bug
    assert fires(CAUSE, _tagger(np.linspace(0.3, 0.6, 12))).effective_kind == "bug"


def test_an_accuracy_the_loss_allows_or_a_loss_the_bound_does_not_hold_for_is_no_metric_bug():
    # an accuracy that rose to what the loss allows: healthy
    quiet(CAUSE, _tagger(np.linspace(0.7, 0.999, 12)))
    # a class-weighted cross-entropy (a weighted mean can hide many cheap mistakes) or many labels per sample
    # (an exact-match accuracy over tags): the bound does not hold, and a rising accuracy is no disagreement
    quiet(CAUSE, _tagger(np.linspace(0.3, 0.6, 12), class_weighted=True))
    quiet(CAUSE, _tagger(np.linspace(0.3, 0.6, 12), shape=(60, 5)))


def test_the_floor_is_read_on_the_validation_pair_only():
    """Found by review: a healthy run accumulating gradients over 8 batches backpropagates the loss over 8, which
    the recorder's training loss is; its training accuracy read against that loss broke the floor."""
    d = recorded_loss("cross_entropy", [5])
    train, train_acc = falling(12, 1.4 / 8, 0.95 / 8, knee=0.2), np.linspace(0.3, 0.61, 12)
    quiet(CAUSE, make_view(train, train_acc=train_acc, diagnostics=d))
