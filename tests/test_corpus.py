"""The generated corpus's bookkeeping (benchmarks/corpus): what it enumerates, how sweep runs are
labelled from their outcome, the tune/heldout split and the scorer's figures. The training itself
is exercised by `python -m benchmarks.corpus generate --size small` (minutes), not here."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from benchmarks.corpus.generate import CHANCE, assign_splits, fault_label, imperfect_label, sweep_label
from benchmarks.corpus.score import Row, scores, wilson
from benchmarks.corpus.specs import FAMILIES, enumerate_specs
from mlflow_nnaudit.auditor.catalog import BY_ID


@pytest.mark.parametrize("size", ["small", "full"])
def test_every_family_is_swept_over_six_orders_of_magnitude(size):
    specs = enumerate_specs(size)
    assert len({s.key for s in specs}) == len(specs)
    for family in FAMILIES:
        lrs = [s.lr for s in specs if s.kind == "sweep" and s.family == family]
        assert math.log10(max(lrs) / min(lrs)) >= 6 - 1e-9, family
    assert {s.truth for s in specs if s.kind == "fault"} <= set(BY_ID)
    assert {s.style for s in specs} == {"plain", "lightning", "hf"}
    if size == "full":
        assert {"sgd", "momentum", "adam", "adamw", "lbfgs"} <= {s.optimizer for s in specs if s.kind == "sweep"}
        assert len(specs) >= 300
        assert Counter(s.kind for s in specs)["imperfect"] >= 50


def _tags(final, peak=1.4, nonfinite=0, best_val=None, final_train=None, first=1.4):
    return {
        "corpus.outcome.final_val": str(final),
        "corpus.outcome.max_loss": str(peak),
        "corpus.outcome.nonfinite": str(nonfinite),
        "corpus.outcome.best_val": str(final if best_val is None else best_val),
        "corpus.outcome.final_train": str(final if final_train is None else final_train),
        "corpus.outcome.first_loss": str(first),
    }


def test_sweep_labels_come_from_the_outcome_against_the_best_run():
    best, best_lr = 0.4, 1e-2
    assert sweep_label(1e-2, _tags(0.4), best, best_lr)[0] == "healthy"
    assert sweep_label(1e-3, _tags(0.6), best, best_lr)[0] == "healthy"  # a mediocre member
    assert sweep_label(1e-5, _tags(CHANCE - 0.01), best, best_lr)[0] == "learning_rate_too_low"
    # barely moved above the best learning rate: too high, not too low
    assert sweep_label(1.0, _tags(CHANCE), best, best_lr)[0] == "learning_rate_too_high"
    # exploded: too high whatever the learning rate says, unless it recovered
    assert sweep_label(1e-3, _tags(float("nan"), nonfinite=1), best, best_lr)[0] == "learning_rate_too_high"
    assert sweep_label(10.0, _tags(1.2, peak=50.0), best, best_lr)[0] == "learning_rate_too_high"
    assert sweep_label(0.1, _tags(0.45, peak=50.0), best, best_lr)[0] == "borderline"
    assert sweep_label(1e-3, _tags(0.9), best, best_lr)[0] == "borderline"  # between stalled and healthy
    # a sweep where nothing learned has no stable range
    assert sweep_label(1e-3, _tags(1.35), 1.33, 1e-3)[0] == "borderline"


def test_a_run_that_overfit_is_labelled_overfitting_not_by_its_final_loss_alone():
    """LBFGS at lr 1 fits the training set to 1e-8 while the validation loss goes 0.76 -> 23: by its
    final loss alone it 'barely moved'; it learned, then overfit."""
    best, best_lr = 0.76, 1e-2
    truth, why, also = sweep_label(1.0, _tags(23.2, best_val=0.759, final_train=1e-8), best, best_lr)
    assert (truth, also) == ("overfitting", "learning_rate_too_high") and "overfit" in why
    # at or below the sweep's best rate there is no second answer
    assert sweep_label(1e-3, _tags(1.6, best_val=0.77, final_train=0.1), best, best_lr)[::2] == ("overfitting", "")
    # a small rise (GL under 50%), a negligible absolute one, or a best that was never good: not overfit
    assert sweep_label(1e-2, _tags(0.9, best_val=0.76, final_train=0.1), best, best_lr)[0] == "healthy"
    assert sweep_label(1e-2, _tags(0.004, best_val=0.001, final_train=1e-5), 0.004, best_lr)[0] == "healthy"
    assert sweep_label(1.0, _tags(3.0, best_val=1.3, final_train=0.1), best, best_lr)[0] == "learning_rate_too_high"
    # the training loss must have ended below the best validation loss (a generalisation gap)
    assert sweep_label(1.0, _tags(2.0, best_val=0.77, final_train=1.0), best, best_lr)[0] != "overfitting"


def test_imperfect_runs_are_labelled_by_outcome():
    sweeps = {"mlp/plain/momentum/s0": (0.78, 1e-2), "mlp/plain/adam/s0": (0.70, 1e-3)}
    spec = {"family": "mlp", "seed": 0, "optimizer": "momentum", "lr": 3e-3}
    assert imperfect_label(spec, _tags(0.85), sweeps)[0] == "healthy"
    # barely moved at a rate 3x under its sweep's best: too low
    assert imperfect_label(spec, _tags(1.27), sweeps)[0] == "learning_rate_too_low"
    # barely moved at its sweep's best rate (a short budget): no fault of the rate, stays healthy
    assert imperfect_label({**spec, "lr": 1e-2}, _tags(1.27), sweeps)[0] == "healthy"
    # no sweep with its optimiser: the family's best run is the reference, for overfitting only
    lbfgs = {"family": "mlp", "seed": 0, "optimizer": "lbfgs", "lr": 1.0}
    assert imperfect_label(lbfgs, _tags(19.4, best_val=0.82, final_train=1e-8), sweeps)[::2] == ("overfitting", "")
    assert imperfect_label(lbfgs, _tags(1.3), sweeps)[0] == "healthy"
    adam = {"family": "mlp", "seed": 0, "optimizer": "adam", "lr": 1e-2}
    assert imperfect_label(adam, _tags(2.6, best_val=0.83, final_train=0.02), sweeps)[::2] == (
        "overfitting",
        "learning_rate_too_high",
    )


def test_an_injected_initial_loss_mismatch_that_did_not_show_is_borderline():
    spec = {"truth": "initial_loss_mismatch"}
    assert fault_label(spec, _tags(0.8, first=CHANCE + 0.02))[0] == "borderline"
    assert fault_label(spec, _tags(0.8, first=4.5))[0] == "initial_loss_mismatch"
    assert fault_label({"truth": "dead_relu"}, _tags(0.8, first=CHANCE))[0] == "dead_relu"


def test_an_injected_fast_decay_on_a_run_that_still_learned_is_borderline():
    """The catalog's lr_decay_too_fast takes the rate away before the model has learned: a run that
    still got within a tenth of ln 4 of its sweep's best validation loss had learned (a CNN at 100%)."""
    spec = {"truth": "lr_decay_too_fast", "family": "cnn", "optimizer": "adam", "seed": 0}
    sweeps = {"cnn/plain/adam/s0": (0.01, 1e-3)}
    assert fault_label(spec, _tags(0.05), sweeps)[0] == "borderline"
    assert fault_label(spec, _tags(0.9), sweeps)[0] == "lr_decay_too_fast"  # stopped far above the best
    assert fault_label(spec, _tags(0.05))[0] == "lr_decay_too_fast"  # no sweep to compare with: as injected
    assert fault_label({**spec, "truth": "dead_relu"}, _tags(0.05), sweeps)[0] == "dead_relu"


def test_split_is_deterministic_stratified_and_half_half():
    truth = {f"k{i}": ("healthy" if i % 3 else "learning_rate_too_high") for i in range(300)}
    a, b = assign_splits(truth), assign_splits(dict(reversed(list(truth.items()))))
    assert a == b
    for t in set(truth.values()):
        sides = Counter(a[k] for k, v in truth.items() if v == t)
        assert abs(sides["tune"] - sides["heldout"]) <= 1


def test_wilson_interval():
    lo, hi = wilson(0, 63)
    assert lo == 0.0 and hi == pytest.approx(0.0571, abs=1e-3)
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)


def test_scores():
    rows = [
        Row("a", "learning_rate_too_high", "tune", "failed", ["learning_rate_too_high"]),
        Row("b", "learning_rate_too_high", "tune", "failed", ["dead_relu", "learning_rate_too_low"]),
        Row(
            "c",
            "learning_rate_too_low",
            "tune",
            "warning",
            ["plateau", "insufficient_capacity", "learning_rate_too_low"],
        ),
        Row("d", "healthy", "tune", "healthy", []),
        Row("e", "healthy", "tune", "warning", ["dead_relu"]),
        Row("f", "borderline", "tune", "failed", ["dead_relu"]),
    ]
    s = scores(rows)
    assert (s["runs"], s["faulty"], s["healthy"]) == (5, 3, 2)
    assert s["top1"] == pytest.approx(1 / 3) and s["top3"] == pytest.approx(2 / 3)
    assert s["per_cause"]["dead_relu"]["precision"] == 0.0 and s["per_cause"]["dead_relu"]["named_first"] == 2
    assert s["per_cause"]["learning_rate_too_high"]["precision"] == 1.0
    assert s["per_cause"]["learning_rate_too_high"]["recall"] == 0.5
    assert s["healthy_warning"]["k"] == 1 and s["healthy_failed"]["k"] == 0
    assert s["lr_direction_errors"]["too_high_named_too_low"] == 1
    assert s["lr_direction_errors"]["too_high_named_too_low_first"] == 0
    assert s["confusion"]["healthy"] == {"(healthy)": 1, "dead_relu": 1}


def test_an_accepted_alternative_counts_as_right():
    rows = [
        Row(
            "a",
            "overfitting",
            "tune",
            "warning",
            ["learning_rate_too_high", "overfitting"],
            [],
            ("learning_rate_too_high",),
        ),
        Row("b", "overfitting", "tune", "warning", ["learning_rate_too_high"]),
        Row(
            "c",
            "overfitting",
            "tune",
            "warning",
            ["plateau", "learning_rate_too_low", "overfitting"],
            [],
            ("learning_rate_too_high",),
        ),
    ]
    s = scores(rows)
    assert s["top1"] == pytest.approx(1 / 3) and s["top3"] == pytest.approx(2 / 3)
    assert s["with_alternatives"] == 2
    assert s["per_cause"]["learning_rate_too_high"]["precision"] == 0.5
    assert s["per_cause"]["overfitting"]["recall"] == pytest.approx(1 / 3)
    assert s["lr_direction_errors"]["too_high_named_too_low"] == 1


def test_other_seeds_give_the_same_runs_with_new_seeds_only():
    """`generate --seeds 2,3` (a population no rule was tuned on) trains the full corpus's runs, each
    with the new seeds instead of 0 and 1."""
    base = enumerate_specs("full")
    fresh = enumerate_specs("full", (2, 3))
    assert {s.seed for s in base} == {0, 1} and {s.seed for s in fresh} == {2, 3}
    assert len(fresh) == len(base)
    strip = lambda specs: sorted(s.key.replace(f"/s{s.seed}", f"/s{s.seed % 2}") for s in specs)  # noqa: E731
    assert strip(fresh) == strip(base)
    assert not {s.key for s in fresh} & {s.key for s in base}
