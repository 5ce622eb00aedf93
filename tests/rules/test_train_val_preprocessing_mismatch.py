"""train_val_preprocessing_mismatch: evaluation inputs preprocessed differently from training inputs."""

from tests.rules.conftest import (
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
