"""Role assignment (which metric is the training loss, the validation loss, ...) on the metric
names real training code logs, and the small `Curve` container."""

from __future__ import annotations

import numpy as np
import pytest

from mlflow_nnaudit.auditor.curves import (
    GRAD_NORM,
    LEARNING_RATE,
    ROLES,
    TRAIN_ACC,
    TRAIN_LOSS,
    VAL_ACC,
    VAL_LOSS,
    Curve,
    adversarial_game,
    assign_roles,
    reinforcement_learning,
    role_priority,
)


def test_recorder_names():
    lengths = {
        "nnaudit/train_loss": 500,
        "nnaudit/lr": 500,
        "nnaudit/grad_norm": 500,
        "nnaudit/grad_norm/fc1": 500,
        "nnaudit/grad_norm/fc2": 500,
        "nnaudit/update_ratio/fc1": 50,
        "nnaudit/labels_per_batch": 500,
        # the user's own metrics next to the recorder's
        "loss": 500,
        "val_loss": 10,
    }
    roles = assign_roles(lengths)
    assert roles[TRAIN_LOSS] == "nnaudit/train_loss"  # the recorder's name beats the user's `loss`
    assert roles[LEARNING_RATE] == "nnaudit/lr"
    assert roles[GRAD_NORM] == "nnaudit/grad_norm"
    assert roles[VAL_LOSS] == "val_loss"
    assert "nnaudit/update_ratio/fc1" not in roles.values()
    assert "nnaudit/labels_per_batch" not in roles.values()


@pytest.mark.parametrize("key", ["nnaudit/grad_norm_total", "nnaudit/grad_norm"], ids=["current", "recorded-by-0.1"])
def test_the_recorders_global_grad_norm_current_and_legacy(key):
    """0.1 wrote the global norm as `nnaudit/grad_norm` (which MLflow's file store cannot hold next
    to `nnaudit/grad_norm/<layer>`); later recorders write `nnaudit/grad_norm_total`: both are read,
    and a user's `grad_norm` never beats either."""
    roles = assign_roles({key: 50, "nnaudit/grad_norm/fc1": 50, "grad_norm": 500, "nnaudit/train_loss": 500})
    assert roles[GRAD_NORM] == key


def test_hf_trainer_names():
    lengths = {
        "loss": 100,  # running training loss, every `logging_steps`
        "grad_norm": 100,
        "learning_rate": 100,
        "epoch": 111,
        "eval_loss": 10,
        "eval_accuracy": 10,
        "eval_runtime": 10,
        "eval_samples_per_second": 10,
        "eval_steps_per_second": 10,
        # logged once, at the end of `train()`
        "train_loss": 1,
        "train_runtime": 1,
        "train_samples_per_second": 1,
        "train_steps_per_second": 1,
        "total_flos": 1,
    }
    roles = assign_roles(lengths)
    assert roles == {
        TRAIN_LOSS: "loss",  # not the single-point `train_loss`, although its name fits better
        VAL_LOSS: "eval_loss",
        VAL_ACC: "eval_accuracy",
        LEARNING_RATE: "learning_rate",
        GRAD_NORM: "grad_norm",
    }


def test_single_point_train_loss_still_used_when_it_is_all_there_is():
    assert assign_roles({"train_loss": 1, "epoch": 1})[TRAIN_LOSS] == "train_loss"


def test_lightning_names():
    lengths = {
        "train_loss_step": 1000,
        "train_loss_epoch": 10,
        "train_acc_step": 1000,
        "train_acc_epoch": 10,
        "val_loss_epoch": 10,
        "val_acc": 10,
        "lr-Adam": 1000,
        "epoch": 1010,
    }
    roles = assign_roles(lengths)
    assert roles[TRAIN_LOSS] == "train_loss_step"  # per-step (more points) preferred for training
    assert roles[VAL_LOSS] == "val_loss_epoch"
    assert roles[TRAIN_ACC] == "train_acc_step"
    assert roles[VAL_ACC] == "val_acc"
    assert roles[LEARNING_RATE] == "lr-Adam"
    assert "epoch" not in roles.values()
    assert GRAD_NORM not in roles


def test_lightning_epoch_only_and_param_group_lr():
    roles = assign_roles({"train_loss_epoch": 10, "val_loss": 10, "lr-SGD/pg1": 10, "epoch": 10})
    assert roles == {TRAIN_LOSS: "train_loss_epoch", VAL_LOSS: "val_loss", LEARNING_RATE: "lr-SGD/pg1"}


def test_epoch_gets_no_role():
    for key in ("epoch", "Epoch", "step", "global_step"):
        assert all(role_priority(key, role) is None for role in ROLES), key


def test_keras_style_names():
    roles = assign_roles({"loss": 20, "val_loss": 20, "accuracy": 20, "val_accuracy": 20, "lr": 20})
    assert roles == {
        TRAIN_LOSS: "loss",
        VAL_LOSS: "val_loss",
        TRAIN_ACC: "accuracy",
        VAL_ACC: "val_accuracy",
        LEARNING_RATE: "lr",
    }


def test_slash_names():
    roles = assign_roles({"train/loss": 200, "validation/loss": 20, "validation/accuracy": 20, "train/acc": 200})
    assert roles[TRAIN_LOSS] == "train/loss"
    assert roles[VAL_LOSS] == "validation/loss"
    assert roles[VAL_ACC] == "validation/accuracy"
    assert roles[TRAIN_ACC] == "train/acc"


@pytest.mark.parametrize(
    "per_layer", ["nnaudit/grad_norm/fc1", "grad_norm/fc1", "grad_norm/layer.0.attn", "gradient_norm_fc1"]
)
def test_per_layer_grad_norm_is_not_the_global_one(per_layer):
    assert role_priority(per_layer, GRAD_NORM) is None
    assert GRAD_NORM not in assign_roles({per_layer: 100, "loss": 100})
    # ...and with the global one present, the global one wins whatever the lengths
    roles = assign_roles({per_layer: 1000, "grad_norm": 100, "loss": 100})
    assert roles[GRAD_NORM] == "grad_norm"


def test_patterns_are_anchored_at_both_ends():
    # A pattern that is an alternation must be anchored as a whole (regression: `lr|learning_rate`
    # once matched any key starting with "lr", `grad_norm|...` any key starting with "grad_norm").
    assert role_priority("lrs_seen", LEARNING_RATE) is None
    assert role_priority("learning_rate_multiplier_hist", LEARNING_RATE) == 2  # `learning_rate_.*` on purpose
    assert role_priority("train_loss_epoch_smoothed", TRAIN_LOSS) is None
    assert role_priority("test_loss_ratio", VAL_LOSS) is None
    assert role_priority("my_loss", TRAIN_LOSS) is None
    assert role_priority("val_loss", TRAIN_LOSS) is None


def test_priorities_between_candidates():
    # the explicit training name beats HF's bare `loss`, at equal length
    assert assign_roles({"loss": 100, "train/loss": 100})[TRAIN_LOSS] == "train/loss"
    # at equal priority the longer curve wins
    assert assign_roles({"train_loss": 50, "training_loss": 500})[TRAIN_LOSS] == "training_loss"
    # a curve too short to test loses to one with enough points even with a worse name
    assert assign_roles({"train_loss": 2, "loss": 40})[TRAIN_LOSS] == "loss"
    # a test loss is only the validation loss when nothing better is there
    assert assign_roles({"loss": 10, "test_loss": 10, "val_loss": 10})[VAL_LOSS] == "val_loss"
    assert assign_roles({"loss": 10, "test_loss": 10})[VAL_LOSS] == "test_loss"


def test_a_key_plays_one_role_only():
    roles = assign_roles({"loss": 10})
    assert list(roles.values()).count("loss") == 1


def test_user_override_wins():
    lengths = {"loss": 100, "train/loss": 100, "my_val_metric": 10, "val_loss": 10}
    roles = assign_roles(lengths, overrides={TRAIN_LOSS: "loss", VAL_LOSS: "my_val_metric"})
    assert roles[TRAIN_LOSS] == "loss"  # automatic choice would be train/loss
    assert roles[VAL_LOSS] == "my_val_metric"  # a name that matches no pattern at all


def test_overridden_key_is_not_reused_for_another_role():
    roles = assign_roles({"loss": 100, "val_loss": 10}, overrides={TRAIN_LOSS: "val_loss"})
    assert roles[TRAIN_LOSS] == "val_loss"
    assert roles.get(VAL_LOSS) != "val_loss"


def test_override_for_a_missing_key_falls_back_to_automatic():
    roles = assign_roles({"loss": 100}, overrides={TRAIN_LOSS: "no_such_metric"})
    assert roles[TRAIN_LOSS] == "loss"


def test_unknown_role_in_override_is_an_error():
    with pytest.raises(ValueError, match="unknown curve role"):
        assign_roles({"loss": 100}, overrides={"validation_loss": "loss"})


def test_no_metrics_no_roles():
    assert assign_roles({}) == {}
    assert assign_roles({"epoch": 5, "total_flos": 1}) == {}


def test_curve_normalises_mlflow_inf_and_sorts_by_step():
    c = Curve("loss", steps=[2, 0, 1], values=[1.7976931348623157e308, 3.0, float("nan")], timestamps=[30, 10, 20])
    assert c.steps.tolist() == [0.0, 1.0, 2.0]
    assert c.values[0] == 3.0 and np.isnan(c.values[1]) and np.isposinf(c.values[2])
    assert c.timestamps.tolist() == [10.0, 20.0, 30.0]
    assert c.finite.tolist() == [True, False, False]
    neg = Curve("loss", steps=[0], values=[-1.7976931348623157e308])
    assert np.isneginf(neg.values[0])


def test_curve_axis_falls_back_to_index_when_steps_do_not_advance():
    c = Curve("loss", steps=[0, 0, 0, 0], values=[4.0, 3.0, 2.0, 1.0])
    assert c.x().tolist() == [0.0, 1.0, 2.0, 3.0]
    d = Curve("loss", steps=[10, 20, 40], values=[3.0, 2.0, 1.0])
    assert d.x().tolist() == [10.0, 20.0, 40.0]


@pytest.mark.parametrize(
    ("keys", "game"),
    [
        (["loss_D", "loss_G"], True),
        (["Loss_D", "Loss_G", "D(x)"], True),
        (["errD", "errG"], True),
        (["train/d_loss_epoch", "train/g_loss_epoch"], True),
        (["disc_loss", "gen_loss"], True),
        (["critic_loss", "generator_loss"], True),
        (["G_GAN", "G_L1", "D_real", "D_fake"], True),  # pix2pix's get_current_losses()
        (["loss_D_A", "loss_G_A", "loss_cycle_A", "loss_idt_A"], True),  # CycleGAN's, as attributes
        (["d_model", "g_norm"], False),  # not a side's loss nor one of its parts
        (["loss_d_model", "g_loss"], False),
        # too common outside GANs without the word "loss" (review): a game hides the outcome findings
        (["D_A", "G_A", "cycle_A", "D_B", "G_B"], False),
        (["critic_a", "critic_b", "generator_loss"], False),
        (["d_loss", "g_a"], False),
        (["D_real", "G_real"], False),
        (["d_adv", "g_adv"], False),
        (["gen_a", "disc_a"], False),
        (["d_loss", "val_loss"], False),  # one side only
        (["dice_loss", "g_loss"], False),
        (["critic_loss", "actor_loss"], False),  # an actor-critic's are each minimised
        (["loss", "val_loss", "lr"], False),
    ],
)
def test_a_gan_is_told_by_its_sides_names(keys, game):
    assert (adversarial_game(keys, None) is not None) == game


@pytest.mark.parametrize(
    ("own", "game"),
    [
        (None, True),  # no recorder section (curves only, or an older recorder): the names decide
        (400, True),  # a second optimizer stepping on losses of its own: the names decide
        (0, False),  # one objective (one optimizer, or two on one loss): not a game, whatever the names
    ],
)
def test_a_gan_named_as_one_is_a_game_unless_the_recorder_saw_one_objective(own, game):
    diag = (
        {"steps": 400}
        if own is None
        else {"steps": 400, "other_optimizers": {"optimizers": int(own > 0), "steps": own, "steps_with_own_loss": own}}
    )
    assert (adversarial_game(["disc_loss", "gen_loss"], diag) is not None) == game
    # the recorder's counts alone (a probe, a teacher, a critic beside the model look the same) make no game
    assert adversarial_game(["train_loss", "val_loss"], diag) is None


def test_a_discriminator_loss_is_the_training_loss_when_nothing_else_is():
    assert assign_roles({"loss_D": 40, "loss_G": 40})[TRAIN_LOSS] == "loss_D"
    assert assign_roles({"loss_D": 40, "loss": 40})[TRAIN_LOSS] == "loss"


@pytest.mark.parametrize(
    ("keys", "rl"),
    [
        (["loss", "episode_reward", "running_reward"], True),  # pytorch/examples actor_critic.py / reinforce.py
        (["rollout/ep_rew_mean", "train/loss"], True),  # Stable-Baselines3
        (["eval/mean_reward", "train/value_loss"], True),
        (["policy_loss", "value_loss", "eval/episode_return"], True),
        (["loss", "reward"], True),
        (["train_loss", "val_loss", "val_acc"], False),
        (["train_loss", "return_mse"], False),  # a regression of returns: a statistic suffix only
        (["reward_model_loss", "val_loss"], False),  # a reward model is trained supervised
        (["reward_model/reward_mean", "loss"], False),
        # a return forecaster's or a backtest's figures (found by review): no episode in them
        (["train_loss", "portfolio_return"], False),
        (["val_loss", "val_return", "strategy_return", "backtest/total_return", "log_return_std"], False),
        (["train_loss", "mean_return"], False),
    ],
)
def test_a_reinforcement_learning_run_is_told_by_its_reward(keys, rl):
    assert (reinforcement_learning(keys) is not None) == rl


def test_a_bare_reward_beside_a_training_dataloader_is_not_reinforcement_learning():
    # supervised data: a bare `reward` beside a DataLoader must not hide a supervised run's divergence (review)
    loader = {"data_loader": {"train": {"dataset_size": 640, "batch_size": 32}}}
    for weak in ("reward", "mean_reward", "train/reward_std"):
        assert reinforcement_learning(["loss", weak], loader) is None
        assert reinforcement_learning(["loss", weak], {"steps": 400}) is not None
    # an episode's reward is RL whatever feeds the loss: a PPO loop minibatches its rollouts through a
    # DataLoader (second review: a healthy one was failed on five causes)
    assert reinforcement_learning(["loss", "episode_reward"], loader) is not None
