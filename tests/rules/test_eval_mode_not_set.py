"""eval_mode_not_set: evaluation ran with the model in training mode."""

from tests.rules.conftest import fires, healthy_diagnostics, healthy_loss, make_view, quiet

CAUSE = "eval_mode_not_set"


def test_fires_when_dropout_was_on_during_evaluation():
    d = healthy_diagnostics(eval_in_train_mode={"step": 16, "mode_dependent_layers": ["Dropout"]})
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=d))
    assert f.confidence == "high" and f.severity == "warning" and "Dropout" in f.summary


def test_quiet_when_model_eval_was_called():
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics()))


def test_quiet_when_the_model_has_no_mode_dependent_layers():
    # training mode during evaluation changes nothing without dropout or batch norm
    d = healthy_diagnostics(eval_in_train_mode={"step": 16, "mode_dependent_layers": []})
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d))
