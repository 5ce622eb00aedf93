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


def test_fires_on_a_functional_dropout_left_on_in_an_eval_mode_model():
    # F.dropout(x, p) in the forward: the model was in eval mode, its dropout was not
    d = healthy_diagnostics(eval_in_train_mode={"step": 30, "functional_dropout_calls": 12})
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=d))
    assert f.kind == "bug" and "training=self.training" in f.recommendation and "12 calls" in f.summary
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics(eval_in_train_mode={"step": 30})))
