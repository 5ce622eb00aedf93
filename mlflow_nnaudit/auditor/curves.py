"""Curves and their roles.

A run's metrics come in under whatever names the training code chose: the recorder's
`nnaudit/train_loss`, Lightning's `train_loss_step`/`val_loss_epoch`, the HF Trainer's
`loss`/`eval_loss`/`learning_rate`/`grad_norm`, Keras-style `val_loss`/`val_accuracy`.
This module decides which metric plays which role (train loss, validation loss, ...), so
that the rules can ask for "the validation loss" and not care how it was spelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.stats import normalize_nonfinite

TRAIN_LOSS = "train_loss"
VAL_LOSS = "val_loss"
TRAIN_ACC = "train_acc"
VAL_ACC = "val_acc"
LEARNING_RATE = "lr"
GRAD_NORM = "grad_norm"
#: a regression's coefficient of determination on its validation set, as users log it (`val_r2`)
VAL_R2 = "val_r2"
ROLES = (TRAIN_LOSS, VAL_LOSS, TRAIN_ACC, VAL_ACC, LEARNING_RATE, GRAD_NORM, VAL_R2)

#: fewest points a curve needs to be chosen for a role when a longer candidate exists
MIN_POINTS = 3


@dataclass
class Curve:
    """One metric history, sorted by step. Values are floats with MLflow's Inf stand-ins
    (1.797e308) turned back into Inf and NaN kept as NaN."""

    key: str
    steps: np.ndarray
    values: np.ndarray
    timestamps: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.steps = np.asarray(self.steps, dtype=float)
        self.values = normalize_nonfinite(np.asarray(self.values, dtype=float))
        self.timestamps = np.asarray(self.timestamps, dtype=float)
        if restarts_every_epoch(self.steps, self.timestamps):
            # logged with a step that restarts each epoch (`step=batch_idx`): sorting by step would
            # interleave the epochs into a saw-tooth; read it in logging order, one point per index
            order = np.lexsort((np.arange(len(self.timestamps)), self.timestamps))
            self.values = self.values[order]
            self.timestamps = self.timestamps[order]
            self.steps = np.arange(len(order), dtype=float)
        elif len(self.steps) > 1 and np.any(np.diff(self.steps) < 0):
            order = np.argsort(self.steps, kind="stable")
            self.steps = self.steps[order]
            self.values = self.values[order]
            if len(self.timestamps) == len(order):
                self.timestamps = self.timestamps[order]

    def __len__(self) -> int:
        return len(self.values)

    @property
    def finite(self) -> np.ndarray:
        return np.isfinite(self.values)

    def x(self) -> np.ndarray:
        """The axis to test trends on: the logged steps when they advance, else the index
        (some code logs every point at step 0)."""
        if len(self.steps) > 1 and np.ptp(self.steps) > 0:
            return self.steps
        return np.arange(len(self.values), dtype=float)


#: a step axis that falls back at least this many times, in logging order, restarts each epoch
STEP_RESTARTS = 2


def restarts_every_epoch(steps: np.ndarray, timestamps: np.ndarray) -> bool:
    """Whether a metric was logged with a step that restarts (the position within an epoch):
    in the order of its timestamps its step falls back to the start at least STEP_RESTARTS times.
    A run resumed once from a checkpoint falls back once and keeps its step order."""
    if len(steps) < 8 or len(timestamps) != len(steps) or np.ptp(timestamps) <= 0:
        return False
    order = np.lexsort((np.arange(len(timestamps)), timestamps))
    by_time = steps[order]
    span = np.ptp(by_time)
    if span <= 0:
        return False
    falls = np.diff(by_time) < -0.5 * span
    return int(falls.sum()) >= STEP_RESTARTS


def _normalise(key: str) -> str:
    k = key.lower()
    k = re.sub(r"[/.\-\s:]+", "_", k)
    return k


def _recorder(name: str) -> str:
    """The pattern of the recorder's own metric `name` (`nnaudit_train_loss`): preferred over all others."""
    return re.escape(_normalise(schema.stored_key(name)))


# Each role: (pattern, priority). Lower priority wins; patterns match the normalised key
# (lower case, separators turned into "_"). Lightning's _step/_epoch suffixes are matched
# explicitly so that the per-step variant (more points) is preferred for training curves.
_ROLE_PATTERNS: dict[str, list[tuple[str, int]]] = {
    TRAIN_LOSS: [
        (_recorder(schema.TRAIN_LOSS), 0),
        (r"(train|training|trn)_loss(_step)?", 1),
        (r"loss_(train|training)(_step)?", 1),
        (r"train_(total_)?loss_epoch|(train|training)_loss_epoch", 3),
        (r"loss(_step)?", 2),  # HF Trainer logs the running training loss as `loss`
        (r"loss_epoch", 4),
        (r"(train|training)_(ce|nll|mse|bce|total)_loss|(train|training)_loss_(total|mean|avg)", 5),
        (r"(train_)?(loss_?(d|disc|discriminator)|(d|disc|discriminator)_?loss|err_?d)(_step|_epoch)?", 6),  # a GAN's
    ],
    VAL_LOSS: [
        (_recorder(schema.VAL_LOSS), 0),
        (r"(val|valid|validation|eval|dev)_loss(_epoch)?", 1),
        (r"loss_(val|valid|validation|eval|dev)(_epoch)?", 1),
        (r"(val|valid|validation|eval|dev)_loss_step", 3),
        (r"test_loss(_epoch)?|loss_test", 4),
    ],
    TRAIN_ACC: [
        (r"(train|training)_(acc|accuracy)(_step|_epoch)?", 1),
        (r"(acc|accuracy)(_train|_training)?(_step|_epoch)?", 2),
    ],
    VAL_ACC: [
        (r"(val|valid|validation|eval|dev)_(acc|accuracy)(_epoch|_step)?", 1),
        (r"(acc|accuracy)_(val|valid|validation|eval|dev)", 1),
        (r"test_(acc|accuracy)(_epoch)?", 3),
    ],
    LEARNING_RATE: [
        (_recorder(schema.LR), 0),
        (r"lr|learning_rate", 1),
        (r"(train|training|optim|optimizer|trainer)_(lr|learning_rate)", 1),  # train/learning_rate (W&B, HF)
        (r"lr_.*|learning_rate_.*|.*_lr", 2),  # Lightning's LearningRateMonitor: lr-Adam, lr-SGD/pg1
    ],
    GRAD_NORM: [
        (_recorder(schema.GRAD_NORM), 0),
        *((_recorder(old), 0) for old in schema.LEGACY_METRICS[schema.GRAD_NORM]),  # runs recorded by 0.1
        (r"grad_norm|gradient_norm|grad_norm_total|grad_2_0_norm_total", 1),
        (r"(train|training)_(grad_norm|gradient_norm)", 1),  # train/grad_norm (the HF Trainer under W&B)
    ],
    # one R^2 for the whole validation set; not one output's (`val_r2_gpp`) or the training set's
    VAL_R2: [
        (r"(val|valid|validation|eval|dev)_r2(_score)?(_epoch)?|r2(_score)?_(val|valid|validation|eval|dev)", 1),
        (r"test_r2(_score)?(_epoch)?", 3),
    ],
}
# The group matters: several patterns are alternations, and a bare `a|b\Z` anchors only `b`
# (`grad_norm|...` then matched the per-layer `grad_norm/fc1` as the global gradient norm).
_COMPILED = {
    role: [(re.compile(r"(?:" + p + r")\Z"), prio) for p, prio in pats] for role, pats in _ROLE_PATTERNS.items()
}


# --- two sides trained against each other ----------------------------------------------------
# a side's loss, or one of its parts (`loss_D_real`, `loss_G_A`); without the word "loss", only
# pix2pix's own part names (`D_real`, `D_fake`, `G_GAN`): `d_a`/`g_a`, `D_real`/`G_real` or a
# `critic_a` are too common outside GANs, and a game hides a run's outcome findings (review)
_SIDE = r"(loss_?{0}|{0}_?loss|err_?{0})(_(real|fake|gan|adv|a|b))?"
_RUN_SIDE = r"(train_)?({0}|{1})(_step|_epoch)?\Z"
_DISCRIMINATOR = re.compile(_RUN_SIDE.format(_SIDE.format(r"(d|disc|discriminator|critic)"), r"d_(real|fake)"))
_GENERATOR = re.compile(_RUN_SIDE.format(_SIDE.format(r"(g|gen|generator)"), r"g_gan"))


# a reward or return as reinforcement-learning loops log it, with its episode context: `episode_reward`,
# `running_reward`, `ep_return`, `rollout/ep_rew_mean` (Stable-Baselines3), `eval/mean_reward`, a bare
# `reward`; not a supervised model's `portfolio_return`, `val_return` or a reward model's `reward_mean`
_REWARD = re.compile(
    r"((rollout|eval|train|test)_)?((mean|avg|average|total|running|cumulative)_)?"
    r"(episode_reward|episode_return|ep_rew|ep_reward|ep_return|ep_ret|episodic_return|running_reward|reward)s?"
    r"(_(mean|avg|sum|total|max|min|std))?\Z"
)
# ... of which a reward without an episode in its name (`reward`, `mean_reward`, `train/reward_std`) is
# also what a supervised loop or an RLHF trainer over a prompt DataLoader may log
_WEAK_REWARD = re.compile(
    r"((rollout|eval|train|test)_)?((mean|avg|average|total)_)?rewards?(_(mean|avg|sum|total|max|min|std))?\Z"
)


def reinforcement_learning(metric_keys, diagnostics: dict | None = None) -> str | None:
    """Why the run is reinforcement learning, or None: it logs an episode's reward or return
    (`episode_reward`, `running_reward`, `ep_return`, `rollout/ep_rew_mean`), or a bare reward
    (`reward`, `mean_reward`) unless the recorder saw a training DataLoader (supervised data; a PPO loop
    that minibatches its rollouts through one logs an episode's reward by that name). Its
    loss is a surrogate whose scale follows the episodes (a policy gradient weighted by returns that
    grow as the agent improves, a value loss against them), not a loss falling to a floor: its rises
    and falls are not harm, and the progress to judge is the reward's."""
    loader = isinstance((diagnostics or {}).get("data_loader"), dict) and diagnostics["data_loader"].get("train")
    names = [(k, _normalise(k)) for k in metric_keys]
    key = next((k for k, n in names if _REWARD.match(n) and not (loader and _WEAK_REWARD.match(n))), None)
    if key is None:
        return None
    return f"the run logs a reward ({key!r}): reinforcement learning, whose loss follows its episodes"


def adversarial_game(metric_keys, diagnostics: dict | None) -> str | None:
    """Why the run trains two sides against each other (a GAN), or None: it logs a discriminator's
    (or critic's) and a generator's loss (`loss_D`/`loss_G`, `d_loss`/`g_loss`, `errD`/`errG`, or
    parts of them: `loss_D_A`/`loss_G_A`, and pix2pix's `D_real`/`D_fake`/`G_GAN`),
    unless the recorder ran and saw no other optimizer step after a loss of its own (one objective
    under names like a GAN's: ELECTRA's `gen_loss` + `disc_loss` under one optimizer). The recorder's
    counts alone do not make a game: a probe, a teacher or a critic trained beside the model looks
    the same to them (review: reading gradients for coupling called a probe and a distillation games,
    and missed GANs that freeze the discriminator while the generator steps). A GAN that logs no
    side's loss is not recognised."""
    other = (diagnostics or {}).get("other_optimizers")
    if isinstance(other, dict) and other.get("steps_with_own_loss") == 0:
        return None
    names = [_normalise(k) for k in metric_keys]
    d = next((k for k, n in zip(metric_keys, names) if _DISCRIMINATOR.match(n)), None)
    g = next((k for k, n in zip(metric_keys, names) if _GENERATOR.match(n)), None)
    if d is not None and g is not None:
        return f"the run logs a discriminator's and a generator's loss ({d!r}, {g!r}): a GAN"
    return None


def role_priority(key: str, role: str) -> int | None:
    """How well a metric name fits a role (lower is better), None when it does not fit."""
    norm = _normalise(key)
    for pattern, prio in _COMPILED[role]:
        if pattern.match(norm):
            return prio
    return None


def assign_roles(lengths: dict[str, int], overrides: dict[str, str | list[str]] | None = None) -> dict[str, str]:
    """Pick one metric key per role from the run's metric keys and their point counts.

    `overrides` maps a role to a key chosen by the user (CLI `--role` or the config file), or
    to a list of keys of which the first present is taken; it always wins. Among matching names, a curve with too few points to test loses to one with
    enough (the HF Trainer logs `train_loss` once, at the end), then the best pattern priority,
    then the longest curve. A key plays at most one role.
    """
    chosen: dict[str, str] = {}
    used: set[str] = set()
    for role, keys in (overrides or {}).items():
        if role not in ROLES:
            raise ValueError(f"unknown curve role {role!r}; roles are: {', '.join(ROLES)}")
        key = next((k for k in ([keys] if isinstance(keys, str) else keys) if k in lengths), None)
        if key is not None:
            chosen[role] = key
            used.add(key)
    for role in ROLES:
        if role in chosen:
            continue
        candidates = []
        for key, n in lengths.items():
            if key in used:
                continue
            prio = role_priority(key, role)
            if prio is not None:
                candidates.append((n < MIN_POINTS, prio, -n, key))
        if candidates:
            key = min(candidates)[3]
            chosen[role] = key
            used.add(key)
    return chosen


def train_loss_per_sample(by_role: dict[str, Curve], diagnostics: dict | None) -> str | None:
    """A loop that backpropagates a `reduction='sum'` loss itself has its training loss
    recorded in units of the batch's sum, while the recorder's first loss and evaluation loss are per
    sample: read against them, a healthy run "blew up 64x at step 0". The recorder's training loss is
    read per sample then, by the factor the recorder measured (`loss.train_loss_per_sample`); a note
    says so. A curve the user logged is read as logged."""
    curve = by_role.get(TRAIN_LOSS)
    factor = ((diagnostics or {}).get("loss") or {}).get("train_loss_per_sample")
    if curve is None or curve.key != schema.stored_key(schema.TRAIN_LOSS):
        return None
    if not isinstance(factor, (int, float)) or not 0 < factor < 1:
        return None
    by_role[TRAIN_LOSS] = Curve(curve.key, curve.steps, curve.values * factor, curve.timestamps)
    return (
        f"{curve.key} read per sample (divided by {1 / factor:.3g}): the loop backpropagates a "
        "reduction='sum' loss (or a part of one), and the first and evaluation losses are per sample"
    )
