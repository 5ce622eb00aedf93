"""train_val_preprocessing_mismatch: evaluation inputs preprocessed differently from training inputs."""

import numpy as np

from tests.rules.conftest import (
    falling,
    fires,
    healthy_diagnostics,
    healthy_loss,
    input_stats,
    make_view,
    quiet,
    standardised_features,
)

CAUSE = "train_val_preprocessing_mismatch"


def run(eval_mean, eval_std):
    d = healthy_diagnostics()
    d["inputs"]["eval"] = input_stats(eval_mean, eval_std, batches=6, batch_size=64)
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_when_only_the_training_split_was_standardised():
    mean, std = standardised_features(8, seed=1, batches=2, batch_size=64)
    f = fires(CAUSE, run(mean * 5 + 3, std * 5))  # validation left raw: x * 5 + 3
    assert f.confidence == "high" and f.severity == "warning"


def test_fires_on_a_scale_difference_alone():
    mean, std = standardised_features(8, seed=1, batches=2, batch_size=64)
    fires(CAUSE, run(mean, std / 10))  # evaluation inputs divided once more


def test_quiet_on_the_same_preprocessing():
    # the few evaluation batches differ from training only by sampling error
    quiet(CAUSE, run(*standardised_features(8, seed=1, batches=2, batch_size=64)))


def test_quiet_without_evaluation_inputs():
    d = healthy_diagnostics()
    del d["inputs"]["eval"]
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d))


def test_fires_when_both_changes_sit_just_inside_their_own_limits():
    # validation inputs x * 2.8 + 0.9 (a corpus fault adds x * 3 + 1, which sampling puts either side of
    # each limit): neither the shift nor the scale alone passes its limit, together they are far
    mean, std = standardised_features(8, seed=1, batches=2, batch_size=64)
    f = fires(CAUSE, run(mean * 2.8 + 0.9, std * 2.8))
    assert "shifted by 0.9" in f.summary


def test_quiet_on_a_mild_difference_of_both():
    mean, std = standardised_features(8, seed=1, batches=2, batch_size=64)
    quiet(CAUSE, run(mean * 1.3 + 0.3, std * 1.3))


def image_run(val, train_end=1e-4):
    # three channels, two of them 0.62 training std apart in evaluation (validation images read BGR)
    d = healthy_diagnostics()
    d["inputs"]["train"] = input_stats([0.18, 0.18, 0.08], [0.70, 0.67, 0.69], batches=6, batch_size=32)
    d["inputs"]["eval"] = input_stats([-0.26, 0.19, 0.51], [0.69, 0.66, 0.72], batches=6, batch_size=100)
    return make_view(falling(600, 1.1, train_end), val=np.asarray(val), diagnostics=d)


def test_half_the_distance_is_read_where_training_fit_and_validation_stayed_at_chance():
    f = fires(CAUSE, image_run([1.41, 12.9, 13.5, 13.8, 13.3, 13.3]))
    assert f.confidence == "medium" and "channel order" in f.recommendation


def test_half_the_distance_is_quiet_on_a_run_that_generalised():
    quiet(CAUSE, image_run([0.9, 0.5, 0.3, 0.2, 0.15, 0.12]))  # a forecaster validated on a later window
