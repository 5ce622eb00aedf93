"""dataset_suspect: the validation loss improves while the training loss stays flat."""

from tests.rules.conftest import falling, fires, flat, healthy_loss, make_view, quiet, rng

CAUSE = "dataset_suspect"


def test_fires_when_only_validation_improves():
    val = falling(20, 1.0, 0.6, knee=0.3) + 0.003 * rng(0).standard_normal(20)
    f = fires(CAUSE, make_view(flat(600, 1.0, noise=0.02), val))
    assert f.confidence == "medium" and f.severity == "failed"


def test_quiet_when_both_improve():
    val = falling(20, 1.3, 0.4, knee=0.2)
    quiet(CAUSE, make_view(healthy_loss(), val))


def test_quiet_when_training_improves_less_but_clearly():
    # training 15% down (three times the flat band), validation 40%: unusual, not suspect
    val = falling(20, 1.0, 0.6, knee=0.3)
    quiet(CAUSE, make_view(falling(600, 1.0, 0.85, knee=0.3, noise=0.02), val))
