"""The generated corpus's bookkeeping (benchmarks/corpus): what it enumerates, how sweep runs are
labelled from their outcome, the tune/heldout split and the scorer's figures. The training itself
is exercised by `python -m benchmarks.corpus generate --size small` (minutes), not here."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from benchmarks.corpus.generate import CHANCE, assign_splits, sweep_label
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


def _tags(final, peak=1.4, nonfinite=0):
    return {
        "corpus.outcome.final_val": str(final),
        "corpus.outcome.max_loss": str(peak),
        "corpus.outcome.nonfinite": str(nonfinite),
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
