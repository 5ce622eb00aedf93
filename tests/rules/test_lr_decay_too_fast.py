"""lr_decay_too_fast: the learning rate is gone early and progress stops with it."""

import numpy as np
import pytest

from mlflow_nnaudit.auditor.curves import Curve
from tests.rules.conftest import SEED, fires, healthy_diagnostics, make_view, optimizer_facts, quiet


def lr_schedule_run(decay_epoch_gamma: float, epochs=12, per_epoch=60, seed=1):
    """Per-step loss of a model whose progress is proportional to the learning rate."""
    rng = np.random.default_rng([SEED, seed])
    lrs = np.array([1e-3 * decay_epoch_gamma**e for e in range(epochs)])
    step_lr = np.repeat(lrs, per_epoch)
    progress = np.cumsum(step_lr) / 1e-3 / per_epoch  # epochs' worth of full-rate training
    loss = 0.4 + 1.0 * np.exp(-progress / 3.0) + 0.04 * rng.standard_normal(len(step_lr))
    lr = Curve("lr", np.arange(epochs) * per_epoch, lrs)
    return loss, lr


CAUSE = "lr_decay_too_fast"


def test_fires_when_the_rate_is_cut_tenfold_within_two_epochs():
    loss, lr = lr_schedule_run(0.3)
    f = fires(CAUSE, make_view(loss, lr=lr))
    assert f.p_value is not None and f.p_value < 0.05
    assert f.confidence == "medium" and f.severity == "warning"


def test_quiet_on_a_schedule_that_reaches_a_tenth_only_at_the_end():
    loss, lr = lr_schedule_run(0.85)
    quiet(CAUSE, make_view(loss, lr=lr))


def test_quiet_on_a_constant_rate():
    loss, lr = lr_schedule_run(1.0)
    quiet(CAUSE, make_view(loss, lr=lr))


def first_epoch_cut_run(learned: bool, epochs=15, per_epoch=32, seed=2):
    """StepLR(step_size=1, gamma=0.1) from the first epoch on (f31): per-step minibatch losses whose
    noise hides the fall within the short first epoch. `learned`: the first epoch took the loss
    far below chance (a model that converged at once), else only a little way (still near chance)."""
    rng = np.random.default_rng([SEED, seed])
    lrs = np.array([2e-3 * 0.1**e for e in range(epochs)])
    progress = np.cumsum(np.repeat(lrs, per_epoch)) / 2e-3 / per_epoch  # epochs' worth at the full rate
    chance = np.log(4)
    gain = (0.9 if learned else 0.03) * chance
    loss = chance + 0.015 - gain * (1 - np.exp(-progress * (8.0 if learned else 1.5)))
    loss = loss + 0.015 * rng.standard_normal(len(loss))
    val = loss.reshape(epochs, per_epoch)[:, -8:].mean(axis=1)
    lr = Curve("lr", np.arange(epochs) * per_epoch, lrs)
    return make_view(loss, val, lr=lr, params={"n_classes": "4"})


def test_fires_on_a_cut_after_the_first_epoch_that_left_the_model_at_chance():
    # the 16 steps before the cut are too noisy to show the fall; the first epoch as a whole fell,
    # then nothing moved, and the model ended no better than chance: it had not converged
    f = fires(CAUSE, first_epoch_cut_run(learned=False))
    assert "without having learned" in f.summary


def test_quiet_on_an_early_cut_after_the_model_had_learned():
    # the same cut on a model that learned most of what it could in the first epoch: its flat tail
    # may be convergence, and nothing says otherwise
    quiet(CAUSE, first_epoch_cut_run(learned=True))


def sparse_recorded_run(gamma: float, sampled=(0, 10, 500), epochs=12, per_epoch=60):
    """The same run as `lr_schedule_run`, recorded by a recorder that logged `nnaudit/lr` on a few
    sampled steps only; its diagnostics hold the optimizer's rate at the end of training."""
    loss, lr = lr_schedule_run(gamma, epochs, per_epoch)
    rate = lambda step: 1e-3 * gamma ** (step // per_epoch)  # noqa: E731
    sparse = Curve("nnaudit/lr", np.array(sampled, dtype=float), np.array([rate(s) for s in sampled]))
    d = healthy_diagnostics(optimizer=optimizer_facts("Adam", lr=rate(len(loss) - 1), momentum=None))
    d["steps"] = len(loss)
    return make_view(loss, lr=sparse, diagnostics=d)


def test_fires_on_a_fast_decay_logged_at_a_few_sampled_steps():
    # ExponentialLR(gamma=0.3): the rate is a tenth of its peak after two epochs (step 120 of 720);
    # the recorder's samples say only that it was 1e-3 at step 10 and ~7e-8 at step 500: a geometric
    # decay between the two crosses a tenth at step ~127 (the first sample below it is at 500, 69% in)
    f = fires(CAUSE, sparse_recorded_run(0.3))
    assert 100 < f.evidence[0].values["drop_step"] < 150


def test_quiet_on_a_slow_decay_logged_at_a_few_sampled_steps():
    # gamma 0.75 reaches a tenth of the peak at epoch 8 (step 480 of 720): the samples at step 500 and
    # at the end place it there too, late, and the run learned (no class count says otherwise)
    quiet(CAUSE, sparse_recorded_run(0.75))
    # gamma 0.85 has not reached it by the end (0.85^11 = 0.17): the end-of-run rate says so
    quiet(CAUSE, sparse_recorded_run(0.85))


def cut_while_learning_run(tau: float, noise=0.12, epochs=8, per_epoch=32, seed=5):
    """MultiStepLR(milestones=[2], gamma=0.01) from 3e-3 on a classifier (C = 4), the rate logged
    every step, the per-step minibatch losses noisy: the rate is cut 100x after two epochs (25%
    into the run; seed 5: one where the 32 per-step losses of the second epoch do not show their
    fall). `tau`: how many epochs at the full rate the model needs to learn (5: still learning fast
    at the cut, it stops ~0.97, below chance but far from where it was heading; 0.2: it had learned
    nearly all of it by the end of the first epoch)."""
    rng = np.random.default_rng([SEED, seed])
    step_lr = np.repeat([3e-3 if e < 2 else 3e-5 for e in range(epochs)], per_epoch)
    progress = np.cumsum(step_lr) / 3e-3 / per_epoch
    chance = np.log(4)
    clean = chance - 0.9 * chance * (1 - np.exp(-progress / tau))
    loss = clean + noise * rng.standard_normal(len(clean))
    val = clean.reshape(epochs, per_epoch)[:, -1] + 0.002 * rng.standard_normal(epochs)
    return make_view(
        loss, val, lr=Curve("lr", np.arange(len(step_lr), dtype=float), step_lr), params={"n_classes": "4"}
    )


def test_fires_when_the_validation_loss_was_still_falling_fast_at_an_early_cut():
    # the per-step losses before the cut are too noisy to show their fall, and the run ended well
    # below chance (no outcome harm): the validation loss, measured on the whole set, fell more in
    # its last evaluation before the cut than in all the evaluations after it together
    view = cut_while_learning_run(tau=5.0)
    assert view.outcome_harm() is None
    f = fires(CAUSE, view)
    assert f.evidence[1].test == "val_fell_before_drop" and f.p_value is None
    assert "last evaluation before the rate went" in f.summary


def test_quiet_on_the_same_cut_after_the_model_had_learned():
    # the validation loss had all but stopped falling by the cut: a converged model, not one cut short
    quiet(CAUSE, cut_while_learning_run(tau=0.2))


def late_cut_run(learned: bool, epochs=6, per_epoch=32, seed=4):
    """ExponentialLR(gamma=0.5) from 1e-3 over 6 epochs: the rate reaches a tenth of its peak in the
    fifth epoch (~60% into the run, after the first half). `learned`: the model learns at this rate
    within an epoch; else it needs ~10 epochs at the full rate (a BERT-like slow start) and ends near chance."""
    rng = np.random.default_rng([SEED, seed])
    lrs = np.array([1e-3 * 0.5**e for e in range(epochs)])
    progress = np.cumsum(np.repeat(lrs, per_epoch)) / 1e-3 / per_epoch
    chance = np.log(4)
    clean = chance - 0.9 * chance * (1 - np.exp(-progress / (0.3 if learned else 10.0)))
    loss = clean + 0.03 * rng.standard_normal(len(clean))
    val = clean.reshape(epochs, per_epoch)[:, -1]
    lr = Curve("lr", np.arange(epochs) * per_epoch, lrs)
    return make_view(loss, val, lr=lr, params={"n_classes": "4"})


def test_fires_on_a_cut_after_the_first_half_of_a_run_that_never_learned():
    # the rate was a tenth of its peak before the last 30% of the run, and the model was still at
    # chance: the schedule took the rate away before it learned anything
    f = fires(CAUSE, late_cut_run(learned=False))
    assert 0.5 < f.evidence[0].values["share_of_run"] < 0.7 and "without having learned" in f.summary


def test_quiet_on_the_same_late_cut_on_a_run_that_learned():
    quiet(CAUSE, late_cut_run(learned=True))


def exp_decay_rnn_run(tau=2.5, gain=1.3, user_val=False, noise=0.12, epochs=8, per_epoch=32, seed=7):
    """ExponentialLR(gamma=0.3) per epoch from Adam's 3e-3 on a classifier (C = 4), 8 epochs of 32
    steps, recorded the recorder's way (issue 11's RNN run): `nnaudit/lr` logged when the rate moved
    (at each epoch's first step), `nnaudit/val_loss` at the step count each epoch ended at, noisy
    per-step minibatch losses. The model progresses in proportion to the rate: `tau` epochs at the
    full rate to learn (2.5: still learning fast when the rate went), heading `gain` below chance.
    The rate falls to 9e-4 for the second epoch and to 2.7e-4 (< a tenth) from step 64: a geometric
    decay between the two logged points crosses a tenth at step ~61, before the evaluation at step
    64 that closed the second epoch, trained at 9e-4. `user_val`: the validation loss logged by the
    user with step = epoch index (0..7), placed by its timestamps."""
    rng = np.random.default_rng([SEED, seed])
    lrs = 3e-3 * 0.3 ** np.arange(epochs)
    progress = np.cumsum(np.repeat(lrs, per_epoch)) / 3e-3 / per_epoch
    chance = np.log(4)
    clean = chance - gain * (1 - np.exp(-progress / tau))
    loss = clean + noise * rng.standard_normal(len(clean))
    n = len(loss)
    ends = np.arange(1, epochs + 1) * per_epoch  # the optimizer steps reached when each epoch ended
    val = clean[ends - 1] + 0.002 * rng.standard_normal(epochs)
    times = 1e3 + 50.0 * np.arange(n)  # ms: one step every 50 ms, the evaluation just after its epoch
    lr = Curve("nnaudit/lr", np.arange(epochs) * per_epoch, lrs)
    if user_val:
        train = Curve("nnaudit/train_loss", np.arange(n, dtype=float), loss, times)
        val_curve = Curve("val_loss", np.arange(epochs, dtype=float), val, times[ends - 1] + 25.0)
    else:
        train, val_curve = loss, Curve("nnaudit/val_loss", ends.astype(float), val)
    return make_view(train, val_curve, lr=lr, params={"n_classes": "4"})


def test_fires_when_the_validation_loss_freezes_the_moment_the_rate_is_gone():
    # the per-step losses are too noisy for both the trend before the drop and the flat test after
    # it, and the run ended well below chance (no outcome harm); the evaluation at step 64, trained
    # at 9e-4, fell by more than the band, and every evaluation after it stayed within the band
    view = exp_decay_rnn_run()
    assert view.outcome_harm() is None
    f = fires(CAUSE, view)
    assert [e.test for e in f.evidence] == ["lr_drop", "val_fell_before_drop", "val_frozen_after_drop"]
    assert f.evidence[1].values["at_step"] == 64 and "frozen within" in f.summary


def test_places_a_per_epoch_validation_loss_on_the_rate_s_steps():
    # the same run with `val_loss` logged at step = epoch (0..7): its steps say nothing of where the
    # rate fell (step ~61 of 256); its timestamps put the evaluations at the ends of the epochs
    f = fires(CAUSE, exp_decay_rnn_run(user_val=True))
    assert f.evidence[1].test == "val_fell_before_drop" and 63 <= f.evidence[1].values["at_step"] <= 64


def test_quiet_when_the_validation_loss_had_converged_before_the_rate_went():
    # a model that learned within its first epoch (tau 0.25): the evaluation at the drop moved by
    # less than the band, and a frozen validation loss after it is convergence
    quiet(CAUSE, exp_decay_rnn_run(tau=0.25, gain=0.8))


@pytest.mark.parametrize("noise", [0.12, 0.01])
def test_quiet_when_the_training_loss_is_within_the_band_of_zero_after_the_drop(noise):
    # the validation loss fell at the drop and froze, but the training loss sits at ~0.02 after it
    # (within 5% of its start of zero): a model that fit its training set, nothing left to fall.
    # Noisy per-step losses (the validation reading) or clean ones whose fall before the drop shows
    view = exp_decay_rnn_run(noise=noise)
    train = view.curves["train_loss"]
    low = np.where(train.steps >= 64, 0.02 + 0.005 * np.abs(np.sin(train.steps)), train.values)
    view.curves["train_loss"] = Curve(train.key, train.steps, low)
    quiet(CAUSE, view)


def plateau_schedule_run(val):
    """The torchtext tutorial's loop: the rate cut 10x (5 -> 0.5 -> 0.05) when the validation stalls; the
    training loss falls over the first four epochs and is flat after the cut."""
    rng = np.random.default_rng([SEED, 11])
    epochs, per_epoch = 10, 60
    t = np.arange(epochs * per_epoch)
    loss = 0.35 + 1.0 * np.exp(-np.minimum(t, 240) / 80.0) + 0.01 * rng.standard_normal(len(t))
    lr = Curve("lr", np.arange(epochs) * per_epoch, np.array([5.0] * 4 + [0.5] * 3 + [0.05] * 3))
    return make_view(loss, np.asarray(val), lr=lr)


def test_quiet_when_the_validation_stalled_before_the_rate_was_cut():
    quiet(CAUSE, plateau_schedule_run([1.28, 0.9, 0.6, 0.62, 0.41, 0.40, 0.40, 0.40, 0.40, 0.40]))


def test_the_same_cut_while_the_validation_still_improved_is_too_fast():
    fires(CAUSE, plateau_schedule_run([1.28, 0.9, 0.6, 0.45, 0.41, 0.40, 0.40, 0.40, 0.40, 0.40]))


def test_many_noisy_evaluations_still_falling_are_no_stall():
    # validation on one random batch every 8 steps: 12 evaluations before the cut fall steeply, the last one a
    # little above the best by noise (found by review); the cut still took the progress
    rng = np.random.default_rng([SEED, 12])
    val = np.concatenate([np.linspace(1.4, 0.95, 12) + 0.03 * rng.standard_normal(12), np.full(36, 0.93)])
    val[11] = val[:11].min() + 0.02
    t = np.arange(600)
    loss = 0.9 + 0.5 * np.exp(-np.minimum(t, 150) / 60.0) + 0.01 * rng.standard_normal(600)
    lr = Curve("lr", np.arange(0, 600, 50), np.array([5e-3] * 3 + [5e-5] * 9))
    fires(CAUSE, make_view(loss, val, lr=lr))


def test_quiet_when_the_schedule_brings_the_rate_back():
    # SWA (program h59): cosine down to a tenth of the peak by 60% of the run, then SWALR holds 40% of
    # it; the run had a rate to learn with again, so a flat tail is not the decay's doing
    rng = np.random.default_rng([SEED, 9])
    steps = np.arange(2500)
    loss = 0.31 + 0.9 * np.exp(-steps / 300) + 0.03 * rng.standard_normal(len(steps))
    var = 0.95
    from tests.rules.conftest import regression_loss

    d = healthy_diagnostics(loss=regression_loss(np.sqrt(var) * rng.standard_normal(800)))
    lrs = np.r_[0.05 * (1 + np.cos(np.linspace(0, np.pi, 16))) / 2 + 0.004, np.full(5, 0.02)]
    lr_steps = np.r_[np.linspace(0, 1500, 16), np.linspace(1600, 2500, 5)]
    val = np.full(40, 0.31) + 0.01 * rng.standard_normal(40)
    back = make_view(loss, val, lr=Curve("lr", lr_steps, lrs), diagnostics=d)
    quiet(CAUSE, back)
    # the same schedule left at its low: the finding stands
    fires(CAUSE, make_view(loss, val, lr=Curve("lr", lr_steps, np.r_[lrs[:16], np.full(5, 0.004)]), diagnostics=d))


def test_fires_on_a_rate_gone_in_the_first_tenth_with_the_validation_loss_frozen():
    # a linear warm-up schedule sized in epochs (4) and stepped per batch (152 steps, f112): the rate
    # peaks at step 8 and is 0 from step 10 (6.5% into the run); the multi-label BCE's validation loss
    # then sits exactly at 0.7196 (no ln C for a multi-label loss to read the outcome against)
    rng = np.random.default_rng([SEED, 11])
    # the training loss: no clear fall before the drop, and per-batch noise that drifts up 0.1 in the last
    # epoch after it (batch composition), too much for the flat test (as the program's 0.68, 0.67, 0.68, 0.78)
    train = np.r_[0.85, 0.68 + 0.06 * rng.standard_normal(9), 0.66 + 0.1 * np.linspace(0, 1, 142) ** 4]
    train[10:] += 0.06 * rng.standard_normal(142)
    val = np.r_[0.8485, np.full(4, 0.7196)]
    lr = Curve("lr", np.array([0, 1, 2, 4, 8, 10, 52, 87, 122, 152.0]), np.r_[0, 1e-4, 2e-4, 4e-4, 8e-4, np.zeros(5)])
    v = make_view(train, val, lr=lr)
    v.curves["val_loss"] = Curve("val_loss", np.array([0, 38, 76, 114, 152.0]), val)
    f = fires(CAUSE, v)
    assert "exactly at 0.72 over its last 3 evaluations, 15% below where the run started" in f.summary
    # the same rate gone after the model had learned (the validation loss 75% down when it froze,
    # review): nothing says the run ended without having learned
    v = make_view(train, val, lr=lr)
    v.curves["val_loss"] = Curve("val_loss", np.array([0, 38, 76, 114, 152.0]), np.r_[0.85, np.full(4, 0.2)])
    quiet(CAUSE, v)
    # ... also when the first evaluation came after it had learned (frozen at 0.2 from the first; the
    # training loss started at 0.85): most loops evaluate only after their first epoch (second review)
    v = make_view(np.r_[0.85, np.full(151, 0.2) + 0.01 * rng.standard_normal(151)], val, lr=lr)
    v.curves["val_loss"] = Curve("val_loss", np.array([38, 76, 114, 152.0]), np.full(4, 0.2))
    quiet(CAUSE, v)
    # the same run whose validation loss moves: no harm to read, nothing said
    v = make_view(train, val, lr=lr)
    v.curves["val_loss"] = Curve("val_loss", np.array([0, 38, 76, 114, 152.0]), np.r_[0.8485, 0.70, 0.66, 0.62, 0.60])
    quiet(CAUSE, v)


def collapse_run(per_step: bool, steps=960, at=400, seed=9):
    """A GOTURN-style regressor (held-out program f125): the loss falls noisily, the validation loss stops
    setting new bests before step 400, and there StepLR's 0.1 is applied at every step of the inner loop
    (5e-4 to 5e-8 in 4 steps, never back) or, `per_step` False, once per 100 steps (a plateau-style cut)."""
    rng = np.random.default_rng([SEED, seed])
    t = np.arange(steps)
    lr_steps = np.r_[0, 10, 124, 217, 330, at, at + 1, at + 2, at + 3, 600, 800, 960].astype(float)
    if per_step:
        lrs = np.r_[np.full(5, 5e-4), 5e-5, 5e-6, 5e-7, 5e-8, 5e-8, 5e-8, 5e-8]
    else:
        lrs = np.r_[np.full(5, 5e-4), 5e-5, 5e-5, 5e-5, 5e-5, 5e-5, 5e-6, 5e-6]
    gain = 0.4 * (1 - np.exp(-np.minimum(t, at) / 80.0))
    loss = 1.0 - gain + 0.03 * rng.standard_normal(steps)
    val = np.r_[0.9, 0.66, 0.68, 0.61, 0.62, 0.63, 0.64, 0.63, 0.635, 0.64, np.full(14, 0.64)]
    lr = Curve("nnaudit/lr", lr_steps, lrs)
    val_curve = Curve("val_loss", np.arange(40, 961, 40, dtype=float), val)
    return make_view(loss, lr=lr, val=val_curve)


def test_a_rate_collapsed_by_a_scheduler_stepped_in_a_loop_is_too_fast_even_after_a_stall():
    f = fires(CAUSE, collapse_run(per_step=True))
    assert "stepped many times in a row" in f.recommendation and "1e+03x" in f.summary
    # the same cut once per 100 steps, after the validation loss stopped improving: a plateau schedule
    quiet(CAUSE, collapse_run(per_step=False))


def test_a_collapse_needs_two_falls_in_a_row_and_counts_exactly_1000x():
    """Review: StepLR's 0.1 applied three times in a row is exactly 1000x (0.999... in floats) and a collapse;
    one cut of 1000x (MultiStepLR with gamma 0.001) and a plateau schedule logged once an epoch are not."""
    from mlflow_nnaudit.auditor.rules import helpers

    def decay_of(steps, rates):
        v = make_view(np.linspace(1.0, 0.5, 960), lr=Curve("nnaudit/lr", np.asarray(steps, float), np.asarray(rates)))
        return helpers.lr_collapsed(v, helpers.lr_decay(v))

    assert decay_of([0, 300, 400, 401, 402, 960], [1e-3, 1e-3, 1e-4, 1e-5, 1e-6, 1e-6])  # three steps in a loop
    assert not decay_of([0, 300, 400, 960], [1e-3, 1e-3, 1e-6, 1e-6])  # one deliberate cut
    assert not decay_of([0, 100, 200, 300, 400, 500, 960], [1e-3, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-7])  # per epoch
