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


def moment(inputs=0.0, targets=0.0, previous=0.0, step=40):
    """`diagnostics.moments.first_nonfinite_loss` as the recorder writes it."""

    def stats(share):
        return {
            "numel": 256,
            "dtype": "float32",
            "nonfinite_share": share,
            "min": -2.0,
            "max": 2.0,
            "mean": 0.0,
            "std": 1.0,
        }

    return {
        "first_nonfinite_loss": {
            "step": step,
            "loss": None,
            "previous_loss": 0.7,
            "loss_median": 0.8,
            "inputs": stats(inputs),
            "targets": stats(targets),
            "previous": {"inputs": stats(previous), "targets": stats(0.0)},
            "nonfinite_grads": 4,
            "nonfinite_weights": 4,
        }
    }


def test_fires_on_the_batch_at_the_first_nan_loss_when_sampling_missed_it():
    # the sampled input statistics are clean: only the batch that made the loss NaN holds the NaN
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics(moments=moment(inputs=1 / 256))))
    assert f.severity == "failed" and "step 40" in f.summary and "0.39% NaN/Inf inputs" in f.summary
    assert "not from the learning rate" in f.recommendation


def test_fires_on_nan_targets_at_the_first_nan_loss():
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics(moments=moment(targets=0.01))))
    assert "targets" in f.summary


def test_quiet_when_the_batch_at_the_first_nan_loss_was_clean():
    # a learning-rate explosion: the loss went NaN on finite data
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=healthy_diagnostics(moments=moment())))
