"""plateau: the loss goes flat early, well above a good loss."""

import math

import numpy as np

from mlflow_nnaudit.auditor.curves import TRAIN_LOSS
from tests.rules.conftest import (
    classification_loss,
    falling,
    fires,
    flat,
    healthy_diagnostics,
    healthy_loss,
    linear,
    make_view,
    quiet,
    regression_loss,
    rng,
)

CAUSE = "plateau"
CHANCE = math.log(4)  # an untrained 4-class model's loss


def test_fires_on_a_loss_stuck_at_chance_from_the_start():
    f = fires(CAUSE, make_view(flat(600, CHANCE, noise=0.02)))
    assert f.confidence == "medium" and f.severity == "failed"  # no learning at all


def test_a_small_early_gain_then_flat_is_low_confidence():
    y = falling(600, CHANCE, 0.85 * CHANCE, knee=0.03, noise=0.02)  # 15% down, flat by 10% of the run
    val = falling(10, CHANCE, 0.86 * CHANCE, knee=0.05) + 0.002 * rng(0).standard_normal(10)
    f = fires(CAUSE, make_view(y, val))
    assert f.confidence == "low" and f.severity == "warning"


def test_quiet_on_a_healthy_run():
    quiet(CAUSE, make_view(healthy_loss()))


def test_quiet_on_a_slow_steady_decline():
    # 15% down at a steady rate: slow, not stuck
    quiet(CAUSE, make_view(linear(600, CHANCE, 0.85 * CHANCE, noise=0.01)))


def test_quiet_when_validation_keeps_improving():
    val = np.linspace(CHANCE, 0.6 * CHANCE, 10)
    quiet(CAUSE, make_view(flat(600, CHANCE, noise=0.02), val))


# --- curves only (no recorder, no class-count param): the class count read from where the loss starts


def test_validation_loss_at_chance_with_the_training_loss_above_it_fails_curves_only():
    # dropout 0.9 (f25): a noisy training loss that starts far above ln 4 and ends above it, and a validation
    # loss that starts at ln 4 (an untrained 4-class model) and never gets more than ~1% below it
    train = falling(12, 2.7, 1.45, knee=0.3, noise=0.03)
    val = CHANCE * (1 - 0.01 * (1 - np.exp(-np.arange(12) / 2.0))) + 0.0003 * rng(3).standard_normal(12)
    val[0] = CHANCE * 0.998
    f = fires(CAUSE, make_view(train, val))
    assert f.severity == "failed" and f.confidence == "medium" and "at chance (ln 4" in f.summary


def test_validation_loss_at_chance_is_overfitting_territory_when_the_training_loss_went_below_it():
    train = falling(12, CHANCE, 0.2, knee=0.2)
    val = CHANCE * (1 - 0.01 * (1 - np.exp(-np.arange(12) / 2.0)))
    quiet(CAUSE, make_view(train, val))


def test_training_loss_at_chance_with_a_tiny_significant_drift_is_stuck():
    # a deep sigmoid MLP (f30): the loss sits at ln 4, creeping down 0.01% over the run; Mann-Kendall calls
    # that a significant fall, but it is no progress at all
    train = CHANCE * (1.002 - 0.003 * (1 - np.exp(-np.arange(12) / 0.5))) - 1e-5 * np.arange(12)
    val = CHANCE + 1e-5 * np.arange(12)
    f = fires(CAUSE, make_view(train, val))
    assert f.severity == "failed" and "at chance (ln 4" in f.summary


def test_a_negligible_creep_after_an_early_drop_is_a_plateau():
    # a ReLU on the output of a regression with signed targets (f22): 25% down in the first epoch, then 1%
    # over the remaining 14 (the p-value says "still falling"; at that rate 5% takes five runs more)
    train = 0.41 + 0.14 * np.exp(-np.arange(15) / 0.4) - 0.004 * np.linspace(0, 1, 15)
    val = 0.396 - 0.01 * np.linspace(0, 1, 15) ** 0.5
    f = fires(CAUSE, make_view(train, val))
    assert f.severity == "warning" and f.confidence == "low"


def test_quiet_on_a_classifier_that_starts_at_chance_and_learns():
    train = falling(600, CHANCE, 0.2, knee=0.1, noise=0.01)
    train[0] = CHANCE
    val = falling(10, 1.0, 0.25, knee=0.3)
    quiet(CAUSE, make_view(train, val))


# --- curves only, with no stall to test: the readings of `helpers.no_learning_reading`


def test_a_training_loss_never_below_chance_for_a_known_class_count_fails():
    # the HF Trainer at lr 0.5 (f04): the loss blows up to ~7x ln 2, comes back down and ends a little above
    # ln 2, still drifting; the evaluations sit at chance. The label map logged from the model config names
    # two classes: the labels were named (the run logs an accuracy, so the map is the classifier's)
    x = np.arange(20)
    train = math.log(2) * (1.06 + 5.5 * np.exp(-(((x - 4) / 3.0) ** 2)) + 0.25 * np.exp(-x / 6.0))
    view = make_view(
        train,
        np.array([4.36, 0.69, 0.76, 0.74]),
        val_acc=np.array([0.455, 0.545, 0.455, 0.455]),
        params={"id2label": "{0: 'negative', 1: 'positive'}"},
    )
    f = fires(CAUSE, view)
    assert f.severity == "failed" and "never got below chance" in f.summary and "ln 2" in f.summary
    # without the label map nothing names the class count, and the curves alone do not show it
    quiet(CAUSE, make_view(train, np.array([4.36, 0.69, 0.76, 0.74]), val_acc=np.array([0.455, 0.545, 0.455, 0.455])))


def test_the_default_label_map_names_no_classes_unless_the_head_is_a_classifier():
    # a causal-LM fine-tune (run_clm.py) logs a token accuracy and carries the config's default two-label
    # map: its loss of ~2.7 is no classifier stuck above ln 2
    train, val = falling(40, 3.2, 2.7, knee=0.3), falling(8, 3.0, 2.75, knee=0.3)
    lm = {"id2label": "{0: 'LABEL_0', 1: 'LABEL_1'}", "architectures": "['GPT2LMHeadModel']"}
    view = make_view(train, val, val_acc=np.linspace(0.40, 0.45, 8), params=lm)
    assert view.n_classes() is None
    quiet(CAUSE, view)
    clf = {**lm, "architectures": "['BertForSequenceClassification']"}
    assert make_view(train, val, val_acc=np.linspace(0.40, 0.45, 8), params=clf).n_classes() == (2, "param id2label")
    multi = {**clf, "problem_type": "multi_label_classification"}
    assert make_view(train, val, val_acc=np.linspace(0.40, 0.45, 8), params=multi).n_classes() is None


def test_the_label_map_names_no_classes_on_a_run_that_logs_no_accuracy():
    # every Hugging Face config carries a two-label map by default, a language model's too
    train = falling(20, 6.0, 3.0, knee=0.3)
    view = make_view(train, params={"id2label": "{0: 'LABEL_0', 1: 'LABEL_1'}"})
    assert view.n_classes() is None
    quiet(CAUSE, view)


def test_a_validation_loss_never_below_the_untrained_loss_with_a_flat_accuracy_fails():
    # Adam at lr 3 in Lightning (f03): the first epoch blows the validation loss up to hundreds, it comes back
    # to ~18, never below the training loss's start, and the validation accuracy never moves from 0.28
    train = np.array([2.09, 1.89, 1.65, 1.43, 1.32, 0.93, 1.6, 1.39])
    val = np.array([346.0, 33.8, 277.0, 17.6, 23.6, 18.9, 17.8, 17.8])
    acc = np.array([0.28, 0.17, 0.27, 0.265, 0.28, 0.28, 0.28, 0.28])
    f = fires(CAUSE, make_view(train, val, val_acc=acc))
    assert f.severity == "failed" and "never got below where the training loss started" in f.summary


def test_quiet_on_a_resumed_classifier_that_starts_low_and_stays_flat():
    # trained on from a checkpoint: the training loss starts at its floor, the validation loss sits at the
    # usual gap above it, the accuracy is high and flat; nothing says the model never learned
    train = 0.30 * (1 + 0.02 * rng(3).standard_normal(8))
    val, acc = 0.45 * (1 + 0.02 * rng(4).standard_normal(8)), 0.88 + 0.003 * rng(5).standard_normal(8)
    quiet(CAUSE, make_view(train, val, val_acc=acc))
    quiet(CAUSE, make_view(train, val, val_acc=acc, params={"n_classes": "4"}))


def test_quiet_on_a_validation_loss_logged_as_a_sum_whose_accuracy_rises():
    # a validation loss summed over 10 batches sits far above the training loss, but the model learns
    train = falling(8, 1.3, 0.3, knee=0.3)
    val = 10 * falling(8, 1.2, 0.35, knee=0.3)
    quiet(CAUSE, make_view(train, val, val_acc=np.linspace(0.45, 0.9, 8)))


def test_a_flat_noisy_loss_alone_is_not_called_no_learning():
    # f09's curve (a parameter rebuilt from `.item()` every step): a noisy loss with no trend. From curves
    # alone it is also a PPO loss, a GAN's discriminator loss, a converged model trained on: no verdict
    train = 6.8 * (1 + 0.05 * rng(9).standard_normal(30))
    quiet(CAUSE, make_view(train))
    converged = 0.5 * (1 + 0.05 * rng(9).standard_normal(30))
    quiet(CAUSE, make_view(converged, diagnostics=healthy_diagnostics()))


def test_quiet_on_a_noisy_loss_that_falls():
    quiet(CAUSE, make_view(np.linspace(6.8, 3.0, 30) * (1 + 0.05 * rng(9).standard_normal(30))))


def test_a_loss_floor_beside_a_near_perfect_accuracy_is_a_plateau():
    # softmax before CrossEntropyLoss over 3 classes (f06): the accuracy reaches 99.7%, the loss flattens at
    # ~0.56 (the floor ln(e + 2) - 1 = 0.55: the softmax of probabilities cannot be sure)
    train = 0.567 + 0.56 * np.exp(-np.arange(12) / 1.5)
    val = 0.56 + 0.53 * np.exp(-np.arange(12) / 1.5)
    acc = np.minimum(0.9967, 0.47 + 0.53 * (1 - np.exp(-np.arange(12) / 1.2)))
    f = fires(CAUSE, make_view(train, val, val_acc=acc))
    assert f.severity == "warning" and "99.7%" in f.summary
    # label smoothing makes such a floor on purpose
    quiet(CAUSE, make_view(train, val, val_acc=acc, params={"label_smoothing": "0.1"}))
    # other floors beside a 99% accuracy: a Keras loss that includes its L2 penalty (flat at 0.46), label
    # smoothing 0.1 over 100 classes with no param saying so (~1.0): not the softmax-before-CE floor
    for level in (0.46, 1.0):
        quiet(CAUSE, make_view(train - 0.567 + level, val - 0.56 + level, val_acc=acc))


def test_quiet_on_a_near_perfect_classifier_whose_loss_keeps_falling():
    val = 0.01 + 1.1 * np.exp(-np.arange(12) / 1.5)
    acc = np.minimum(1.0, 0.47 + 0.53 * (1 - np.exp(-np.arange(12) / 1.2)))
    quiet(CAUSE, make_view(0.01 + 1.1 * np.exp(-np.arange(12) / 1.4), val, val_acc=acc))


def test_a_validation_loss_above_chance_that_still_falls_is_learning_not_stuck():
    # tanh weights x10 (a corpus fault): huge first logits put the validation loss at 4.9, and it
    # falls at every evaluation to 2.6, still above ln 4: a model recovering from its start, not one
    # that learned nothing (val_acc rose from 0.30 to 0.44)
    train = falling(320, 8.75, 1.3, knee=0.3, noise=0.05)
    val = np.array([4.877, 4.321, 3.912, 3.558, 3.31, 3.1, 2.942, 2.809, 2.717, 2.629])
    quiet(CAUSE, make_view(train, val, params={"n_classes": "4"}))
    # the same level without the fall (flat above chance, noisy) is still no learning
    flat_above = 2.8 + 0.05 * rng(7).standard_normal(10)
    f = fires(CAUSE, make_view(falling(320, 8.75, 1.45, knee=0.1, noise=0.05), flat_above, params={"n_classes": "4"}))
    assert f.severity == "failed" and "no better than chance" in f.summary


# --- a run too short to have stalled ------------------------------------------------------------------
def two_epochs_at_chance(evaluations):
    """The recorder's per-step loss of a transformer trained from scratch for 64 steps (2 epochs), sitting
    at ln 4 all along, as it does before it takes off, with the validation loss at chance at each evaluation."""
    g = rng(3)
    train = CHANCE + 0.01 * g.standard_normal(64) - np.linspace(0, 0.02, 64)
    val = CHANCE - np.linspace(0.004, 0.02, evaluations)
    d = healthy_diagnostics(loss=classification_loss(4, first_loss=CHANCE))
    return make_view(train, val, diagnostics=d)


def test_quiet_on_a_two_epoch_run_that_has_not_left_chance_yet():
    # flat across 2 evaluations: fewer than any early stopping waits (Lightning's patience is 3)
    quiet(CAUSE, two_epochs_at_chance(2))


def test_the_same_loss_flat_across_six_evaluations_is_a_plateau():
    f = fires(CAUSE, two_epochs_at_chance(6))
    assert f.severity == "failed"


def test_a_long_run_at_chance_evaluated_once_at_the_end_is_a_plateau():
    """Found by review: one evaluation says nothing of how often a run is evaluated, so the patience in
    evaluations does not apply; 600 steps at ln 4 with one validation point at the end is a plateau."""
    g = rng(5)
    train = CHANCE + 0.01 * g.standard_normal(600)
    f = fires(CAUSE, make_view(train, np.array([CHANCE - 0.003]), params={"n_classes": "4"}))
    assert f.severity == "failed"


def test_quiet_on_a_noisy_training_loss_beside_a_validation_loss_lower_at_every_evaluation():
    """SGD+momentum at 3e-3 on an LSTM, 6 epochs of 32 steps (a corpus run 30x under its sweep's best
    rate): minibatch noise makes the per-step training loss look flat from mid-run, but the validation
    loss, measured on the whole set, is lower at every evaluation, at a rate that gains 5% of the start
    in one more run as long: slow, not stalled. A validation loss as flat as the training one is."""
    means = [1.379, 1.327, 1.295, 1.277, 1.26, 1.246]  # the training loss's epoch means
    train = np.interp(np.arange(192), 16 + 32 * np.arange(6), means) + 0.04 * rng(3).standard_normal(192)
    still = np.array([1.357, 1.325, 1.307, 1.295, 1.283, 1.272])
    quiet(CAUSE, make_view(train, still, params={"n_classes": "4"}))
    stalled = np.array([1.357, 1.325, 1.300, 1.302, 1.299, 1.301])
    fires(CAUSE, make_view(train, stalled, params={"n_classes": "4"}))


def test_quiet_on_a_loss_fitted_to_exactly_zero():
    # a CNN solved in its first epoch (SGD momentum lr 0.1, seen in the corpus): the cross-entropy of confident
    # right answers rounds to 0 in float32, and the validation loss reads exactly 0 from the second
    # evaluation on, accuracy 100%: fitted to the floor, not a loss that never changed
    train = np.concatenate([falling(40, 1.4, 1e-3, knee=0.3), np.zeros(152)])
    val = np.array([0.0144, 0.0, 0.0, 0.0, 0.0, 0.0])
    quiet(CAUSE, make_view(train, val, val_acc=np.array([0.998, 1.0, 1.0, 1.0, 1.0, 1.0])))
    # the same run whose loss never moved from a constant above zero is stuck
    fires(CAUSE, make_view(flat(192, 0.7), np.full(6, 0.7), val_acc=np.full(6, 0.5)))


def test_a_validation_loss_frozen_after_the_model_learned_is_not_no_learning():
    """Found by review: a validation loss exactly constant over many evaluations means the weights stopped
    changing, but frozen at a fifth of where the run started (ln 4) the model learned first: not "learned
    nothing at all". The same constant near the start is."""
    train = np.concatenate([falling(32, CHANCE, 0.3, knee=0.3), flat(160, 0.3, noise=0.01)])
    learned = np.array([0.31, 0.29, 0.29, 0.29, 0.29, 0.29])
    quiet(CAUSE, make_view(train, learned, params={"n_classes": "4"}))
    f = fires(CAUSE, make_view(flat(192, CHANCE, noise=0.01), np.full(6, 0.98 * CHANCE), params={"n_classes": "4"}))
    assert f.severity == "failed" and "learned nothing" in f.summary
    # review: a training loss logged per batch as a sum (32x the mean) puts "the start" at 32; a validation mean
    # constant at 1.0 from its first evaluation, beside a training loss that never fell, still learned nothing
    f = fires(CAUSE, make_view(flat(192, 32.0, noise=3.0), np.full(8, 1.0)))
    assert f.severity == "failed" and "learned nothing" in f.summary
    # the same at a float32 step of movement (a shuffled evaluation order): still no learning
    wobble = np.full(8, 1.0) + 1e-7 * np.r_[0, 1, 0, 1, 0, 1, 0, 1]
    assert fires(CAUSE, make_view(flat(192, 32.0, noise=3.0), wobble)).severity == "failed"


# --- a regression against the mean predictor (the targets' variance: the MSE of predicting their mean)


def _regression(val_share, train_end_share=1.03, fn="mse_loss"):
    """A regression recorded per step (945 minibatch MSEs of batch 32, start 1.1x and noise 0.22 of the
    targets' variance, as with predictions (N,) against targets (N, 1): f35's shape) beside 15 per-epoch
    validation MSEs flat at `val_share` of the variance from the second evaluation on."""
    targets = rng(7).standard_normal(4000) * 0.96  # standardised targets, as the recorder sees them
    var = float(np.var(targets))
    train = falling(945, 1.1 * var, train_end_share * var, knee=0.05, noise=0.22 * var, seed=2)
    val = np.full(15, val_share * var) + 0.001 * var * rng(8).standard_normal(15)
    val[0] = 1.05 * var
    d = healthy_diagnostics(loss=regression_loss(targets, fn=fn))
    return make_view(train, val, diagnostics=d), var


def test_a_validation_mse_at_the_targets_variance_fails_however_noisy_the_training_loss():
    """The training curve is too noisy for a stall; the validation MSE sits at the variance over 15
    evaluations and the training loss did not get below it: nothing beyond the mean was learned."""
    v, var = _regression(1.08)
    assert v.stall(TRAIN_LOSS).start_fraction is None  # no stall to read
    f = fires(CAUSE, v)
    assert f.severity == "failed" and f.confidence == "medium"
    assert "no better than predicting the targets' mean" in f.summary and "(N, 1)" in f.recommendation


def test_quiet_on_a_regression_that_explains_a_fifth_of_its_targets_variance():
    quiet(CAUSE, _regression(0.80, train_end_share=0.78)[0])


def test_a_validation_mse_at_the_variance_beside_a_training_loss_well_below_it_is_not_stuck():
    quiet(CAUSE, _regression(1.0, train_end_share=0.5)[0])  # the training set was fitted: overfitting territory


def test_the_variance_is_no_yardstick_for_an_l1_loss():
    quiet(CAUSE, _regression(1.08, fn="l1_loss")[0])


def binary_loss(shape, targets="hard", **facts):
    """The recorder's loss section for `nn.BCEWithLogitsLoss` over `shape` outputs a sample."""
    loss = {"loss_function": "binary_cross_entropy_with_logits", "n_classes": None, "input_shape": shape}
    return loss | {"first_loss": 0.7} | ({"binary_targets": targets} if targets else {}) | facts


def test_a_binary_classifier_over_one_logit_has_chance_at_ln_2():
    # a CTR model's BCE at 4.3 after six epochs was "nothing harmed" while chance (a 0.5 guess) costs ln 2
    at_ln2 = flat(10, math.log(2), noise=0.003, seed=3)
    for shape in ([], [1]):
        view = make_view(flat(600, 0.69, noise=0.02), at_ln2, diagnostics=healthy_diagnostics(loss=binary_loss(shape)))
        assert view.chance_loss() == math.log(2) and view.n_classes()[0] == 2
        assert "ln 2" in fires(CAUSE, view).summary
    # multi-label (5 outputs a sample: sparse labels cost far less than ln 2); pos_weight (a 0.5 guess costs
    # 2(1-p) ln 2: 1.25 at 10% positives, review); soft targets (their own entropy is the floor); a record from
    # before the targets were read: no yardstick
    for loss in (
        binary_loss([5]),
        binary_loss([], "weighted"),
        binary_loss([], "soft"),
        binary_loss([], None),
    ):
        view = make_view(flat(600, 0.69, noise=0.02), at_ln2, diagnostics=healthy_diagnostics(loss=loss))
        assert view.chance_loss() is None and view.n_classes() is None
