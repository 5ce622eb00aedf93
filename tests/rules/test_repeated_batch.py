"""repeated_batch: the same batch is fed again and again."""

from mlflow_nnaudit.auditor.rules.base import OutcomeHarm
from mlflow_nnaudit.auditor.verdict import judge
from tests.rules.conftest import (
    data_loader_section,
    fingerprint_summary,
    fires,
    healthy_diagnostics,
    healthy_loss,
    healthy_train,
    loader,
    make_view,
    optimizer_facts,
    quiet,
    recorder_params,
    rule_for,
)

CAUSE = "repeated_batch"


def run(batch_ids, train_loader=None):
    d = healthy_diagnostics()
    d["inputs"]["fingerprints"] = fingerprint_summary(batch_ids)
    if train_loader is None:
        del d["data_loader"]
    else:
        d["data_loader"] = data_loader_section(train_loader)
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_on_next_iter_loader_every_step():
    f = fires(CAUSE, run([0] * 68, loader(512, 32, shuffle=False)))  # always the loader's first batch
    assert f.confidence == "high" and f.severity == "failed" and "16 batches per epoch" in f.summary


def test_without_a_loader_to_tell_it_is_medium_confidence():
    f = fires(CAUSE, run([0] * 40 + list(range(1, 29))))  # the same batch on 40 of 68 samples
    assert f.confidence == "medium" and f.severity == "warning"


def test_without_a_loader_it_is_a_risk_that_harm_makes_a_cause():
    # full-batch training without a DataLoader (`model(X_train)` every epoch, PyG's GCN fed the whole
    # graph) feeds one input every step from the first: not a definite bug, so it is a set-up risk,
    # an advisory on a run that trained well and a cause of the harm when the outcome shows it
    f = fires(CAUSE, run([0] * 40))
    assert f.effective_kind == "risk" and not f.harmful and "full-batch" in f.summary
    (kept,), status, _ = judge([f])
    assert status == "healthy" and kept.advisory
    f = fires(CAUSE, run([0] * 40))
    (kept,), status, _ = judge([f], harm=OutcomeHarm("failed", "the validation loss stayed at chance"))
    assert status == "failed" and not kept.advisory
    # with the loader (`next(iter(loader))` iterates it: the loader is seen) or params saying an epoch
    # has more batches, the same batch every step is the bug, whatever the outcome
    for view in (
        run([0] * 40, loader(512, 32, shuffle=False)),
        make_view(healthy_loss(), diagnostics=run([0] * 40).diagnostics, params={"steps_per_epoch": "16"}),
    ):
        f = fires(CAUSE, view)
        assert f.effective_kind == "bug" and f.confidence == "high" and "16 batches per epoch" in f.summary


def test_quiet_on_distinct_batches():
    quiet(CAUSE, run(range(68), loader(512, 32)))


def test_quiet_on_full_batch_training():
    # the loader has a single batch: seeing it every step is the point
    quiet(CAUSE, run([0] * 68, loader(512, 512)))


def test_quiet_on_an_unshuffled_epoch_sampled_at_a_multiple_of_its_length():
    # 16 batches per epoch sampled every 10 steps: batches come back now and then, never most of the time
    quiet(CAUSE, run([(10 * i) % 16 for i in range(68)], loader(512, 32, shuffle=False)))


# --- moved from tests/test_setup_rules.py (curve-only and set-up cases) ------------------------
def test_repeated_batch_from_fingerprints():
    diag = {
        "inputs": {"fingerprints": {"sampled_batches": 10, "distinct": 1, "most_common_share": 1.0}},
        "data_loader": {"train": {"batches_per_epoch": 32}},
    }
    rule = rule_for(CAUSE)
    f = rule.evaluate(make_view(healthy_train(), diagnostics=diag))
    assert f and f.confidence == "high" and f.severity == "failed" and "32 batches" in f.recommendation
    # full-batch training (the loader has no more batches than were seen) is not a repeat
    diag["data_loader"]["train"]["batches_per_epoch"] = 1
    assert rule.evaluate(make_view(healthy_train(), diagnostics=diag)) is None
    # distinct batches, as any shuffled loader gives
    diag = {"inputs": {"fingerprints": {"sampled_batches": 10, "distinct": 10, "most_common_share": 0.1}}}
    assert rule.evaluate(make_view(healthy_train(), diagnostics=diag)) is None


# --- applicability: full-batch runs ----------------------------------------------------------------
def test_quiet_on_full_batch_lbfgs_without_a_loader():
    # an L-BFGS closure calls the model on the whole data set again and again: one fingerprint
    d = healthy_diagnostics(optimizer=optimizer_facts("LBFGS", lr=1.0, momentum=None), data_loader=None)
    d["inputs"]["fingerprints"] = fingerprint_summary([0] * 40)
    view = make_view(healthy_loss(), diagnostics=d, params=recorder_params(d))
    assert view.full_batch() and not rule_for(CAUSE).applies(view)
    quiet(CAUSE, view)
    # the same single batch under SGD, with no loader to tell, is still reported
    d["optimizer"] = optimizer_facts("SGD")
    fires(CAUSE, make_view(healthy_loss(), diagnostics=d, params=recorder_params(d)))


def test_quiet_when_params_say_the_batch_is_the_whole_data_set():
    d = healthy_diagnostics(data_loader=None)
    d["inputs"]["fingerprints"] = fingerprint_summary([0] * 40)
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d, params={"n_train": "200", "batch_size": "200"}))
    fires(CAUSE, make_view(healthy_loss(), diagnostics=d, params={"n_train": "2000", "batch_size": "200"}))


# --- a training set of a few batches fed in turn (f26: 60 samples sliced into 2 batches by hand) ---
def test_quiet_on_a_two_batch_training_set_fed_in_turn_every_epoch():
    # batches A, B, A, B, ...: each comes back once per epoch, half of all samples are "the same
    # batch", but consecutive steps never see the same one: a tiny training set, not a loader bug
    quiet(CAUSE, run([i % 2 for i in range(40)]))


def test_the_same_batch_back_to_back_is_still_reported_without_a_loader():
    f = fires(CAUSE, run([0] * 40))
    # a set-up risk (full-batch training by design looks the same: a graph network fed its whole graph,
    # held-out f138): its severity a warning at most (a risk's never set the status; `failed` ranked it first)
    assert f.confidence == "medium" and f.severity == "warning"


def test_an_epoch_metric_logged_at_step_epoch_does_not_pass_for_the_loader():
    # a hand-written loop that logs `epoch` with step=epoch has an `epoch` curve of slope 1 (one step
    # an epoch, read against the step); without a DataLoader, a slice taken once before the loop is
    # still the risk it is without that curve (it was silenced: 1 batch an epoch <= 1 distinct)
    import numpy as np

    from mlflow_nnaudit.auditor.curves import Curve

    view = run([0] * 40)
    view.extra_curves["epoch"] = Curve("epoch", np.arange(10.0), np.arange(10.0))
    assert view.epoch_length() == (1.0, "the `epoch` curve")  # what other rules may still read
    f = fires(CAUSE, view)
    assert f.effective_kind == "risk" and "full-batch" in f.summary


# --- every epoch cut short to the same few batches (held-out program f67: Lightning's overfit_batches) ---
def test_a_few_batches_in_turn_while_the_loader_holds_many_is_a_definite_bug():
    # A, B, A, B, ... from the first step while the loader gives 16 batches an epoch: each epoch stops
    # after the same 2 (Lightning's `overfit_batches=2` left on, a `break` in the loop); a cycle of 3
    # repeats a batch on only a third of the steps and is the same bug
    for cycle in (2, 3):
        f = fires(CAUSE, run([i % cycle for i in range(40)], loader(512, 32, shuffle=False)))
        assert f.confidence == "high" and f.effective_kind == "bug", f
        assert f"{cycle} batches fed in turn" in f.summary and "overfit_batches" in f.recommendation
    # a loader of 6 batches fed in turn by an unshuffled epoch is the data, not a cut: quiet
    quiet(CAUSE, run([i % 6 for i in range(40)], loader(192, 32, shuffle=False)))


def _weighted(population, dataset_size=2400):
    lo = {**loader(dataset_size, 32, shuffle=False), "sampler": "WeightedRandomSampler"}
    if population is not None:
        lo["sampler_population"] = population
    return run(list(range(24)), lo)  # every sampled batch different: the fingerprints see nothing


def test_a_weighted_sampler_with_a_weight_per_class_draws_a_few_samples_only():
    # WeightedRandomSampler(class_weights, len(dataset)) (program f113): indices 0 and 1, nothing else
    f = fires(CAUSE, _weighted(2))
    assert f.confidence == "high" and f.severity == "failed" and f.effective_kind == "bug"
    assert "2 weights for a dataset of 2400" in f.summary and "per sample" in f.recommendation
    # 2000 of 2400: 400 never drawn, or a training split kept in the first rows on purpose (second review)
    f = fires(CAUSE, _weighted(2000))
    assert f.severity == "warning" and f.confidence == "medium" and f.effective_kind == "risk"
    quiet(CAUSE, _weighted(2400))  # one weight per sample
    quiet(CAUSE, _weighted(None))  # a recorder that did not say
