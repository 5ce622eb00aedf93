"""loss_input_mismatch: the loss function gets the wrong kind of input."""

from tests.rules.conftest import classification_loss, fires, healthy_diagnostics, healthy_loss, make_view, quiet

CAUSE = "loss_input_mismatch"
#: what the recorder writes (recorder/probes/loss.py)
SOFTMAX_TWICE = {
    "loss": "cross_entropy",
    "problem": "probabilities",
    "detail": "its input rows are probabilities (each in [0, 1], summing to 1): softmax was applied "
    "before a loss that applies log-softmax itself",
}
LOGITS_TO_NLL = {
    "loss": "nll_loss",
    "problem": "not_log_probabilities",
    "detail": "its input is not log-probabilities (positive values, or rows whose exp does not sum to "
    "1): raw logits were fed to nll_loss without log_softmax",
}


def run(mismatch, fn="cross_entropy"):
    return make_view(
        healthy_loss(), diagnostics=healthy_diagnostics(loss=classification_loss(3, mismatch=mismatch, fn=fn))
    )


def test_fires_on_softmax_before_cross_entropy():
    f = fires(CAUSE, run(SOFTMAX_TWICE))
    assert f.confidence == "high" and f.severity == "warning" and "remove the softmax" in f.recommendation


def test_logits_fed_to_nll_loss_fail_the_run():
    f = fires(CAUSE, run(LOGITS_TO_NLL, fn="nll_loss"))
    assert f.severity == "failed" and "log_softmax" in f.recommendation


def test_quiet_when_the_input_was_fine():
    quiet(CAUSE, run(None))
