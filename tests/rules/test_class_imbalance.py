"""class_imbalance: one class outnumbers the rarest present class many times."""

import numpy as np

from tests.rules.conftest import classification_loss, fires, healthy_diagnostics, healthy_loss, make_view, quiet

CAUSE = "class_imbalance"


def run(counts):
    d = healthy_diagnostics(loss=classification_loss(len(counts), label_counts=counts))
    return make_view(healthy_loss(), diagnostics=d)


def test_fires_when_one_class_makes_up_95_percent():
    f = fires(CAUSE, run([5700, 180, 120]))
    assert f.confidence == "high" and f.severity == "warning" and "class 0 makes up 95%" in f.summary


def test_quiet_on_balanced_classes():
    quiet(CAUSE, run([1930, 2110, 1960]))


def test_quiet_on_a_mild_imbalance():
    quiet(CAUSE, run([3000, 2000, 1000]))  # 3 to 1: ordinary, well under the rule's ratio


def test_a_class_that_never_occurs_is_not_the_rarest():
    quiet(CAUSE, run([3000, 3000, 0]))


def test_quiet_on_too_few_labels_to_count():
    quiet(CAUSE, run([30, 1, 1]))  # a handful of sampled labels says nothing


# --- applicability: token-id labels (language models) ------------------------------------------------
def zipf_counts(vocabulary, total=200_000):
    ranks = np.arange(1, vocabulary + 1)
    return [int(c) for c in np.maximum(1, total / ranks / np.log(vocabulary))]


def test_quiet_on_the_zipf_histogram_of_a_language_model():
    view = run(zipf_counts(33_000))  # a word-level vocabulary: token ids as labels
    assert view.token_id_labels()
    quiet(CAUSE, view)
    # ... and a 20-class task with the same skew is still an imbalance
    fires(CAUSE, run(zipf_counts(20)))


def test_an_embedding_first_layer_with_hundreds_of_classes_is_a_language_model():
    d = healthy_diagnostics(loss=classification_loss(300, label_counts=zipf_counts(300)))
    d["model"]["layers"] = {"encoder": [[300, 64]], **d["model"]["layers"]}
    quiet(CAUSE, make_view(healthy_loss(), diagnostics=d))
    fires(CAUSE, run(zipf_counts(300)))  # the same labels behind a Linear first layer: a classifier


def test_explain_summarises_a_huge_label_histogram():
    from mlflow_nnaudit.auditor.report import _values_text

    text = _values_text({"label_counts": zipf_counts(33_000), "max_share": 0.07})
    # count, top classes and entropy instead of 33,000 numbers
    assert "33000 bins" in text and "entropy" in text and len(text) < 600 and "max_share=0.07" in text


def test_an_imbalance_that_cannot_explain_a_loss_above_chance_is_low_and_explains_nothing():
    # a char-level model (27 classes, end token 14%) whose loss sat near 4.9 from a bad init, above ln 27 = 3.3
    # (held-out program f44): a model that learned only the label prior would be at the labels' entropy
    counts = [140] + [10] * 25 + [1]
    d = healthy_diagnostics(loss=classification_loss(27, label_counts=counts))
    view = make_view(np.full(200, 4.9), np.full(10, 4.98), diagnostics=d)
    f = fires(CAUSE, view)
    assert f.confidence == "low" and not f.explains and "entropy" in f.summary
    # the same histogram on a run whose loss got down to the prior: the imbalance may explain it
    f = fires(CAUSE, make_view(healthy_loss(), diagnostics=d))
    assert f.confidence == "high" and f.explains


def test_an_imbalance_that_explains_nothing_is_no_upstream_cause():
    # found by review: loss_metric_disagreement is a static consequence of class_imbalance, but an imbalance that
    # cannot explain the outcome must not hang it under itself ("fix that first")
    from tests.rules.conftest import falling
    from tests.rules.test_learning_rate_too_high import _ranked

    counts = [140] + [10] * 25 + [1]
    d = healthy_diagnostics(loss=classification_loss(27, label_counts=counts))
    train, val = falling(200, 4.6, 3.6, knee=0.3, noise=0.02), falling(20, 4.6, 3.62, knee=0.3, noise=0.02)
    acc = 0.14 + 0.003 * np.random.default_rng(0).standard_normal(200)
    view = make_view(train, val, train_acc=acc, diagnostics=d)
    causes = _ranked(view)
    assert "loss_metric_disagreement" in causes and causes.index("loss_metric_disagreement") < causes.index(CAUSE)


def test_a_loss_that_reached_the_prior_then_diverged_keeps_the_imbalance():
    # found by review: the training loss got down to 0.2 (below the labels' entropy) and ended at 2.6; it did
    # reach the prior, so "never got down to" would be false
    counts = [5520, 240, 240]
    d = healthy_diagnostics(loss=classification_loss(3, label_counts=counts))
    train = np.r_[np.linspace(1.1, 0.2, 300), np.linspace(0.2, 2.6, 300)]
    f = fires(CAUSE, make_view(train, diagnostics=d))
    assert f.confidence == "high" and f.explains


def test_an_lm_head_predicts_tokens_whatever_the_vocabulary_size():
    # a GPT-2 from a config over 48 tokens (held-out program h30): token frequencies are the text's,
    # not an imbalance; the head is named `lm_head` (Hugging Face, nanoGPT)
    counts = zipf_counts(48)
    d = healthy_diagnostics(loss=classification_loss(48, label_counts=counts))
    d["model"]["layers"] = {**d["model"]["layers"], "lm_head": [[48, 64]]}
    view = make_view(healthy_loss(), diagnostics=d)
    assert view.token_id_labels()
    quiet(CAUSE, view)
    fires(CAUSE, run(counts))  # the same histogram behind an ordinary head


# --- the harm: a model that predicts the majority class only -------------------------------------
def majority_run(val_acc, counts=(240, 16), val_loss=0.29):
    # the labels' entropy is 0.234; a model predicting the prior sits near it
    d = healthy_diagnostics(loss=classification_loss(len(counts), label_counts=list(counts)))
    val = np.full(len(val_acc), val_loss)
    return make_view(healthy_loss(), val, val_acc=np.asarray(val_acc), diagnostics=d)


def test_a_steady_accuracy_beside_a_loss_well_under_the_prior_names_the_minority():
    # a 40-sample validation set at 0.95 three times, the minority recalled at 0.75 (found by review)
    assert not fires(CAUSE, majority_run([0.95] * 3, val_loss=0.12)).harmful


def test_an_accuracy_frozen_at_the_majoritys_share_fails_the_run():
    # an HF Trainer BERT at 1:10 that never named the minority: 0.915 at every evaluation, F1 0
    f = fires(CAUSE, majority_run([0.915] * 4))
    assert f.severity == "failed" and f.harmful and "predicts that class only" in f.summary


def test_an_accuracy_that_moves_is_no_majority_only_model():
    f = fires(CAUSE, majority_run([0.915, 0.93, 0.945, 0.95]))
    assert f.severity == "warning" and not f.harmful


def test_an_accuracy_frozen_far_from_the_majoritys_share_is_not_read_so():
    assert not fires(CAUSE, majority_run([0.7] * 4)).harmful  # 0.7 vs 0.94: something else


def test_a_frozen_accuracy_in_percent_is_read_too():
    assert fires(CAUSE, majority_run([91.5] * 4)).harmful


def own_loss_run(val_acc):
    """`majority_run` under a loss of the run's own built on a per-sample cross-entropy (PolyLoss, a focal loss),
    as the recorder writes it: the labels read, no loss function, class count or chance level of the objective."""
    loss = {"loss_function": None, "n_classes": None, "per_sample_loss": "cross_entropy", "label_counts": [240, 16]}
    d = healthy_diagnostics(loss=loss)
    return make_view(healthy_loss(), np.full(len(val_acc), 0.29), val_acc=np.asarray(val_acc), diagnostics=d)


def test_a_loss_of_the_runs_own_is_read_for_the_harm_only():
    # PolyLoss without class weights on 86/14 labels: every validation prediction the majority (f150)
    f = fires(CAUSE, own_loss_run([0.915] * 4))
    assert f.severity == "failed" and f.harmful
    # a focal loss is often the answer to the imbalance: without the harm, nothing to say
    quiet(CAUSE, own_loss_run([0.915, 0.93, 0.945, 0.95]))


def test_a_milder_imbalance_is_named_with_the_harm_only():
    # 5:1 (entropy 0.45): under the 10:1 of the risk, but a model frozen at the majority's share predicts it only
    f = fires(CAUSE, majority_run([0.833] * 4, counts=(200, 40), val_loss=0.47))
    assert f.severity == "failed" and f.harmful
    quiet(CAUSE, majority_run([0.8, 0.83, 0.85, 0.86], counts=(200, 40), val_loss=0.47))
    quiet(CAUSE, majority_run([0.75] * 4, counts=(150, 100), val_loss=0.7))  # 1.5:1: no imbalance to name


def test_an_accuracy_frozen_at_another_class_share_is_no_majority_only_model():
    # 3:1 over five classes (review): stuck at 0.25, class 1's share, 5 points from the majority's 0.30
    counts = (300, 250, 200, 150, 100)
    quiet(CAUSE, majority_run([0.25] * 4, counts=counts, val_loss=1.6))
    assert fires(CAUSE, majority_run([0.30] * 4, counts=counts, val_loss=1.6)).harmful  # at the majority's own
