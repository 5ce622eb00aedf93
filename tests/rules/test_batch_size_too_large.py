"""batch_size_too_large: each batch is a large share of the data, and the run pays for it."""

import math

import numpy as np

from tests.rules.conftest import (
    SEED,
    check,
    data_loader_section,
    fires,
    healthy_diagnostics,
    healthy_train,
    linear,
    loader,
    make_view,
    quiet,
    rng,
    rule_for,
)

CAUSE = "batch_size_too_large"
CHANCE = math.log(3)


def slow(n=40):
    """40 updates (20 epochs of 2 batches), still falling at the end."""
    return linear(n, CHANCE, 0.6 * CHANCE) + 0.005 * rng(0).standard_normal(n)


def with_loader(dataset_size, batch_size):
    return healthy_diagnostics(data_loader=data_loader_section(loader(dataset_size, batch_size, epochs=20)))


def test_fires_on_half_the_data_per_batch_from_the_loader():
    f = fires(CAUSE, make_view(slow(), diagnostics=with_loader(512, 256)))
    assert f.confidence == "medium" and f.severity == "warning"
    assert "2 updates per epoch, 40 in the whole run" in f.summary


def test_quiet_on_small_batches_from_the_loader():
    quiet(CAUSE, make_view(slow(), diagnostics=with_loader(512, 32)))


def test_quiet_on_a_training_set_no_larger_than_the_smallest_batch_advised():
    # a Dataset whose __len__ says 2 (held-out f140) under batch_size=16: "batches of 16 out of 2 samples,
    # 800%, use batches of 32-256" was nonsense; no smaller batch gives more updates there
    quiet(CAUSE, make_view(slow(), diagnostics=with_loader(2, 16)))
    quiet(CAUSE, make_view(slow(), diagnostics=with_loader(32, 16)))
    # a batch size over the data: each batch is the whole data, said as such
    f = fires(CAUSE, make_view(slow(), diagnostics=with_loader(48, 64)))
    assert "batches of 48 (" in f.summary and "100%" in f.summary


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_batch_size_too_large_from_params_is_low_confidence():
    t = np.arange(40)
    slow_ = 1.39 - 0.01 * t + 0.005 * np.random.default_rng(SEED).standard_normal(40)
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(slow_, params={"batch_size": "1000", "n_train": "4000"}))
    assert f and f.confidence == "low" and "only 4 updates" in f.recommendation
    assert rule.evaluate(make_view(slow_, params={"batch_size": "64", "n_train": "4000"})) is None
    # a large batch on a run that converged is fine
    assert rule.evaluate(make_view(healthy_train(), params={"batch_size": "1000", "n_train": "4000"})) is None


def test_explained_by_a_training_set_the_model_runs_out_of():
    # 60 samples in two hand-sliced batches of 30 (f26): each batch is half the data and the
    # training loss is still falling, but the model overfits early: more data is the fix, not a
    # smaller batch, so the verdict names dataset_too_small and leaves this one out
    from mlflow_nnaudit.auditor.rules import ALL_RULES
    from mlflow_nnaudit.auditor.verdict import Links, judge
    from tests.rules.conftest import falling, fingerprint_summary, rng

    d = healthy_diagnostics(data_loader=None)
    d["inputs"]["fingerprints"] = fingerprint_summary([i % 2 for i in range(40)], batch_size=30)
    d["inputs"]["train"]["median_batch_size"] = 30
    train = falling(600, 1.4, 0.0, knee=1.0, noise=0.002)
    val = np.r_[falling(6, 1.3, 0.6, knee=0.2), linear(24, 0.62, 0.96)] + 0.003 * rng(0).standard_normal(30)
    view = make_view(train, val, diagnostics=d)
    found = [f for f in (check(c, view) for c in ("batch_size_too_large", "dataset_too_small")) if f]
    assert {f.cause for f in found} == {"batch_size_too_large", "dataset_too_small"}
    kept, _, notes = judge(found, Links.of(ALL_RULES))
    assert [f.cause for f in kept] == ["dataset_too_small"]
    assert any("batch_size_too_large not reported: explained by dataset_too_small" in n for n in notes)


def test_batches_accumulated_into_one_update_count_as_one_large_batch():
    # HF Trainer: batches of 16 accumulated 16 times over 2,000 samples: 8 updates an epoch, 24 in three
    d = healthy_diagnostics(data_loader=data_loader_section(loader(2000, 16, epochs=3)))
    flat_at_chance = np.full(24, CHANCE) + 0.01 * rng(1).standard_normal(24)
    f = fires(CAUSE, make_view(flat_at_chance, params={"gradient_accumulation_steps": "16"}, diagnostics=d))
    assert "accumulated 16 times (256 out of 2,000" in f.summary and "Accumulate fewer" in f.recommendation
    quiet(CAUSE, make_view(flat_at_chance, diagnostics=d))  # the loader's batches alone: 1% of the data
