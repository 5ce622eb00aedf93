"""nonfinite_inputs: NaN or Inf in the input batches."""

from tests.rules.conftest import fires, healthy_diagnostics, healthy_loss, make_view, quiet

CAUSE = "nonfinite_inputs"


def run(train_share=0.0, eval_share=0.0):
    d = healthy_diagnostics()
    d["inputs"]["train"]["nonfinite_share"] = train_share
    d["inputs"]["eval"]["nonfinite_share"] = eval_share
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_on_a_few_nan_in_training_inputs():
    f = fires(CAUSE, run(train_share=1 / 2560))  # one value in 320 batches of 8 features
    assert f.confidence == "high" and f.severity == "failed" and "train input" in f.summary


def test_fires_on_nan_only_in_evaluation_inputs():
    f = fires(CAUSE, run(eval_share=0.01))
    assert "eval input" in f.summary and "train" not in f.summary


def test_quiet_on_clean_inputs():
    quiet(CAUSE, run())


def test_quiet_without_input_statistics():
    # integer inputs (token ids) are not summarised: nothing to say
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics(inputs=None)))
