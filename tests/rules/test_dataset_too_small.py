"""dataset_too_small: the model overfits early, on a small training set."""

import numpy as np

from tests.rules.conftest import (
    data_loader_section,
    falling,
    fires,
    healthy_diagnostics,
    linear,
    loader,
    make_view,
    quiet,
    rng,
    rule_for,
)

CAUSE = "dataset_too_small"


def early_overfit(best_eval=5, evals=30):
    """Training memorises; validation is best a sixth into the run, then rises 60%."""
    train = falling(600, 1.4, 0.01, knee=0.1, noise=0.005)
    val = np.r_[falling(best_eval + 1, 1.3, 0.6, knee=0.2), linear(evals - best_eval - 1, 0.62, 0.96)]
    return train, val + 0.003 * rng(0).standard_normal(evals)


def with_loader(n):
    return healthy_diagnostics(data_loader=data_loader_section(loader(n, 32)))


def test_fires_on_early_overfitting_with_a_small_loader_dataset():
    f = fires(CAUSE, make_view(*early_overfit(), diagnostics=with_loader(96)))
    assert f.confidence == "medium" and f.severity == "warning" and "96 training samples" in f.summary


def test_quiet_on_early_overfitting_with_plenty_of_data():
    quiet(CAUSE, make_view(*early_overfit(), diagnostics=with_loader(200_000)))


def test_quiet_when_overfitting_starts_late():
    # on a small set (not a tiny one, under 100 samples: see below)
    quiet(CAUSE, make_view(*early_overfit(best_eval=20), diagnostics=with_loader(480)))


def test_a_set_known_to_be_small_explains_an_overfit_from_a_third_of_the_run():
    """A CLIP-style model on 480 pairs (held-out program f130): validation best a third into the run, then up
    25%. Known small, the data running out explains it; not known, a third is too late to say so from the curves."""
    f = fires(CAUSE, make_view(*early_overfit(best_eval=10), diagnostics=with_loader(480)))
    assert f.confidence == "medium" and "480 training samples" in f.summary
    quiet(CAUSE, make_view(*early_overfit(best_eval=10)))


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_dataset_too_small_is_early_overfitting():
    n = 60
    t = np.arange(n)
    train = 0.01 + 1.4 * np.exp(-t / 6)
    val = 1.2 - 0.1 * np.minimum(t, 8) / 8 + 0.02 * np.maximum(0, t - 8)
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(train, val, params={"n_train": "96"}))
    assert f and f.confidence == "medium" and "96 training samples" in f.summary
    f = rule.evaluate(make_view(train, val))
    assert f and f.confidence == "low"
    assert rule.evaluate(make_view(train, val, params={"n_train": "500000"})) is None
    # overfitting that starts late is not a lack of data
    late = 1.2 - 0.5 * np.minimum(t, 40) / 40 + 0.03 * np.maximum(0, t - 40)
    assert rule.evaluate(make_view(train, late)) is None


def test_the_recorder_s_batch_cycle_gives_the_size_without_a_loader():
    # 60 samples sliced into batches by hand (f26): no DataLoader, but the recorder saw the same
    # two batches fed in turn from the first step, so the training set is those two batches
    from tests.rules.conftest import fingerprint_summary

    d = healthy_diagnostics(data_loader=None)
    d["inputs"]["fingerprints"] = fingerprint_summary([i % 2 for i in range(40)], batch_size=30)
    f = fires(CAUSE, make_view(*early_overfit(), diagnostics=d))
    assert f.confidence == "medium" and "60 training samples" in f.summary
    assert "cycle of 2 batches" in f.evidence[1].values["source"]


def test_quiet_when_validation_only_wanders_above_one_low_point():
    # a noisy validation curve (SGD at a high rate) with one lucky dip early: every later
    # evaluation is above it, 20% at the end, but with no upward trend and no 3 rises in a row
    train = falling(320, 1.4, 0.5, knee=0.4, noise=0.03)
    wandering = np.array([0.94, 0.97, 0.77, 0.93, 0.88, 0.95, 0.90, 0.96, 0.89, 0.93])
    quiet(CAUSE, make_view(train, wandering))
    quiet(CAUSE, make_view(train, wandering, diagnostics=with_loader(96)))
    # a near-zero validation loss: 0.001 -> 0.004 is +300%, yet a flat, perfect model
    near_zero = np.array([0.00096, 0.0076, 0.0030, 0.0046, 0.0046, 0.0039])
    quiet(CAUSE, make_view(falling(192, 1.4, 0.0001, knee=0.05), near_zero))
    # the same level reached by a steady climb is data running out
    climbing = np.array([0.94, 0.85, 0.77, 0.80, 0.83, 0.86, 0.88, 0.90, 0.92, 0.93])
    fires(CAUSE, make_view(train, climbing, diagnostics=with_loader(96)))


def _lbfgs_full_batch(n):
    """Full-batch L-BFGS (a corpus run): a batch of n samples every step, no DataLoader, the model
    of 5,764 parameters fits the training set; validation best early, then 20x up."""
    from tests.rules.conftest import fingerprint_summary, optimizer_facts

    d = healthy_diagnostics(data_loader=None, optimizer=optimizer_facts("LBFGS", 1.0, momentum=None))
    d["inputs"]["fingerprints"] = fingerprint_summary([0] * 25, batch_size=n)
    d["model"]["parameters"] = 5764
    params = {"nnaudit.optimizer": "LBFGS", "batch_size": str(n), "nnaudit.model.parameters": "5764"}
    return make_view(*early_overfit(), diagnostics=d, params=params)


def test_a_batch_that_is_not_small_says_the_training_set_is_not_small():
    # a training set holds at least one batch: 1,024 samples a step for 5,764 parameters (full-batch
    # L-BFGS, no DataLoader) is no small set, and the overfitting rules say what to do
    quiet(CAUSE, _lbfgs_full_batch(1024))
    # a small batch says nothing of the set's size: the curves alone decide, at low confidence
    f = fires(CAUSE, _lbfgs_full_batch(200))
    assert f.confidence == "low" and f.evidence[1].values["samples"] is None


def _large_steps(ratio, diagnostics):
    from tests.rules.conftest import layer_curves, layer_names

    return layer_curves("update_ratio", {n: ratio for n in layer_names(diagnostics["model"])})


def test_early_overfitting_under_steps_10x_the_usual_follows_the_learning_rate():
    d = healthy_diagnostics(data_loader=None)
    f = fires(CAUSE, make_view(*early_overfit(), diagnostics=d, extra=_large_steps(0.02, d)))
    assert f.follows == ("learning_rate_too_high",) and f.confidence == "low"
    # steps of a usual size: the data is the suspect
    assert fires(CAUSE, make_view(*early_overfit(), diagnostics=d, extra=_large_steps(2e-3, d))).follows == ()
    # a set known to be small stays the first suspect whatever the steps
    d = with_loader(96)
    assert fires(CAUSE, make_view(*early_overfit(), diagnostics=d, extra=_large_steps(0.02, d))).follows == ()


def _one_small_batch(n, batch, val, drop_last=False):
    """A training DataLoader of `n` samples and batches of `batch`: one batch an epoch, 25 epochs."""
    diagnostics = healthy_diagnostics(data_loader=data_loader_section(loader(n, batch, drop_last=drop_last)))
    return make_view(falling(25, 1.4, 0.9), val, diagnostics=diagnostics)


def test_a_loader_dataset_under_one_batch_that_learned_little_is_named():
    """A Dataset whose `__len__` counts the wrong thing (held-out program f140: 2 of 320 images, batches of 16):
    the validation loss fell 6%. Named from the loader's own figures, with where to look, at high confidence."""
    f = fires(CAUSE, _one_small_batch(2, 16, linear(25, 0.146, 0.137, noise=0.0005)))
    assert f.confidence == "high" and f.severity == "warning"
    assert "holds 2 samples, fewer than one batch of 16" in f.summary and "__len__" in f.recommendation
    assert f.recommendation.startswith("Every step trained on the same 2 samples")
    # with drop_last the only batch is dropped: no step trained, and it says so
    f = fires(CAUSE, _one_small_batch(2, 16, linear(25, 0.146, 0.146), drop_last=True))
    assert f.recommendation.startswith("No step trained (`drop_last=True`")


def test_quiet_on_a_tiny_set_that_learned_or_a_set_of_at_least_one_batch():
    # a toy set smaller than its batch that learned (XOR-sized data fitted on purpose): the validation loss fell 80%
    quiet(CAUSE, _one_small_batch(4, 32, falling(25, 0.7, 0.14)))
    # a set as large as its batch (full-batch training by design), however little it learned
    quiet(CAUSE, _one_small_batch(16, 16, linear(25, 0.146, 0.137)))
    # no validation loss to say it learned little
    quiet(
        CAUSE,
        make_view(
            falling(25, 1.4, 0.9), diagnostics=healthy_diagnostics(data_loader=data_loader_section(loader(2, 16)))
        ),
    )


def test_a_set_known_to_hold_under_100_samples_explains_an_overfit_wherever_it_starts():
    """An event-sequence LSTM of ~1M parameters on 16 performances (held-out program f137): validation best two
    thirds into the run, then up. Under 100 samples no network has enough data, so the late overfit is the data
    running out; a small set that is not tiny, or one not known, leaves a late overfit to the overfitting rules."""
    curves = early_overfit(best_eval=20)
    f = fires(CAUSE, make_view(*curves, diagnostics=with_loader(16)))
    assert f.confidence == "medium" and "only 16 training samples" in f.summary
    assert f.recommendation.startswith("The model runs out of data:")
    quiet(CAUSE, make_view(*curves, diagnostics=with_loader(480)))
    quiet(CAUSE, make_view(*curves))
