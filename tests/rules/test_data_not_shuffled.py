"""data_not_shuffled: the data arrives sorted by label."""

import numpy as np
import pytest

from mlflow_nnaudit.auditor import stats as S
from tests.rules.conftest import (
    SEED,
    ar1_noise,
    classification_loss,
    curve,
    data_loader_section,
    fires,
    healthy_diagnostics,
    healthy_loss,
    healthy_train,
    loader,
    make_view,
    quiet,
    rng,
    rule_for,
    sampled_curve,
)

CAUSE = "data_not_shuffled"
KEY = "nnaudit/labels_per_batch"


def recorded(labels_per_batch, n_classes=3):
    d = healthy_diagnostics(loss=classification_loss(n_classes, label_counts=[2000] * n_classes))
    return make_view(healthy_loss(), diagnostics=d, extra=sampled_curve(KEY, labels_per_batch))


def test_fires_when_every_sampled_batch_holds_one_class():
    f = fires(CAUSE, recorded(np.ones(60)))
    assert f.confidence == "high" and f.severity == "failed" and "3 classes" in f.summary


def test_quiet_when_batches_mix_the_classes():
    quiet(CAUSE, recorded(np.full(60, 3.0)))


def test_quiet_on_small_shuffled_batches_of_many_classes():
    # batches of 8 over 10 classes hold ~5 distinct labels each, never 1 as a rule
    quiet(CAUSE, recorded(rng(0).integers(3, 8, 60), n_classes=10))


def test_quiet_on_a_single_class_task():
    # one class occurs: one label per batch is all there is
    d = healthy_diagnostics(loss=classification_loss(3, label_counts=[6000, 0, 0]))
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=sampled_curve(KEY, np.ones(60))))


def test_quiet_on_batches_of_one_sample():
    d = healthy_diagnostics(
        loss=classification_loss(10, label_counts=[60] * 10), data_loader=data_loader_section(loader(600, 1))
    )
    d["inputs"]["train"]["median_batch_size"] = 1
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, extra=sampled_curve(KEY, np.ones(60))))


def sampled_batches(labels, batch_size=32, epochs=4, every=5, shuffle=True, seed=0):
    """What the recorder counts on every `every`-th training batch of a DataLoader over these
    labels: the distinct labels of each sampled batch and the label histogram summed over them."""
    gen = rng(seed)
    per_batch, counts, step = [], np.zeros(int(labels.max()) + 1, dtype=int), 0
    for _ in range(epochs):
        order = gen.permutation(len(labels)) if shuffle else np.arange(len(labels))
        for i in range(0, len(labels), batch_size):
            if step % every == 0:
                batch = labels[order[i : i + batch_size]]
                c = np.bincount(batch, minlength=len(counts))
                per_batch.append(int((c > 0).sum()))
                counts += c
            step += 1
    return np.array(per_batch, dtype=float), counts


def imbalanced_run(shuffle, majority=0.97, n=2048, classes=4, batch_size=16, seed=0, epochs=4):
    # a 97% majority class, the rest spread over the other classes, sorted by label as datasets often come
    rest = n - int(majority * n)
    labels = np.sort(np.concatenate([np.zeros(n - rest, dtype=int), 1 + np.arange(rest) % (classes - 1)]))
    per_batch, counts = sampled_batches(labels, batch_size=batch_size, epochs=epochs, shuffle=shuffle, seed=seed)
    d = healthy_diagnostics(
        loss=classification_loss(classes, label_counts=counts),
        data_loader=data_loader_section(loader(n, batch_size)),
    )
    return make_view(healthy_loss(), diagnostics=d, extra=sampled_curve(KEY, per_batch))


def test_quiet_on_shuffled_batches_of_a_97_percent_majority():
    # a shuffled batch of 16 is all majority class 61% of the time (0.97^16), so the median sampled
    # batch holds one class: that is the imbalance (class_imbalance), not an order
    for seed in range(3):
        v = imbalanced_run(shuffle=True, seed=seed)
        assert np.median(v.extra_curves[KEY].values) == 1
        quiet(CAUSE, v)


def test_fires_on_the_same_imbalanced_data_sorted_by_label():
    f = fires(CAUSE, imbalanced_run(shuffle=False))
    assert f.evidence[0].values["p_value"] < 1e-3 and f.evidence[0].values["one_class_if_shuffled"] > 0.5


def test_a_long_run_of_imbalanced_batches_is_read_too():
    """Found by review: the binomial tail summed math.comb terms, which overflow a float from about a
    thousand sampled batches (OverflowError: the rule was skipped on long runs). 1,280 sampled batches."""
    assert 0.45 < S.binomial_tail(700, 1400, 0.5) < 0.55 and 0 < S.binomial_tail(780, 1400, 0.5) < 1e-4
    quiet(CAUSE, imbalanced_run(shuffle=True, epochs=50))
    fires(CAUSE, imbalanced_run(shuffle=False, epochs=50))


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def sawtooth_run(epochs=10, per_epoch=60, amp=0.4, seed=2):
    rng_ = np.random.default_rng([SEED, seed])
    t = np.arange(epochs * per_epoch)
    phase = (t % per_epoch) / per_epoch
    tooth = amp * ((phase * 4) % 1.0)  # four classes per epoch, each a rising tooth
    return 0.6 + 0.8 * np.exp(-t / 200) + tooth + 0.05 * rng_.standard_normal(len(t))


def test_data_not_shuffled_from_the_epoch_sawtooth():
    loss = sawtooth_run()
    params = {"n_train": "3840", "batch_size": "64"}  # 60 steps per epoch
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(loss, params=params))
    assert f and f.p_value < 1e-3 and f.confidence in ("low", "medium") and "60 steps" in f.summary
    # without an epoch length there is nothing to line the pattern up with
    assert rule.evaluate(make_view(loss)) is None
    # an epoch curve logged against the step gives the length too (Lightning, HF)
    ep = curve("epoch", np.arange(len(loss)) / 60.0)
    assert rule.evaluate(make_view(loss, extra={"epoch": ep})) is not None
    # a shuffled run's loss has no per-epoch pattern
    assert rule.evaluate(make_view(healthy_train(600), params=params)) is None


# the statistic behind the curve-only reading (stats.epoch_periodicity), pinned here with its rule
@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_epoch_periodicity_false_positives_on_autocorrelated_noise(phi):
    # 200 decaying curves with AR(1) noise, 10 epochs of 50 steps, no per-epoch pattern.
    # Measured: 1/200 at each phi (p < 0.001 and a 10% swing by chance); bound 4/200.
    hits = 0
    for i in range(200):
        rng_ = np.random.default_rng([SEED, 11, int(phi * 10), i])
        t = np.arange(500, dtype=float)
        y = 0.5 + np.exp(-t / 100) + ar1_noise(rng_, 500, phi, 0.1)
        hits += S.epoch_periodicity(t, y, 50.0).detected
    assert hits <= 4


def test_epoch_periodicity_finds_a_sawtooth_and_its_size():
    t = np.arange(600, dtype=float)
    per = S.epoch_periodicity(t, sawtooth_run(), 60.0)
    assert per.detected and per.p_value < 1e-6 and per.epochs >= 8
    assert 0.25 < per.amplitude < 0.45  # the tooth is 0.4 high; bin means shave a little off
    assert not S.epoch_periodicity(t, sawtooth_run(amp=0.0), 60.0).detected
