"""The curve-only branches of the rules, together on simulated healthy runs: their pinned
false-positive rate (from tests/test_setup_rules.py)."""

import numpy as np

from mlflow_nnaudit.auditor import stats as S
from mlflow_nnaudit.auditor.curves import GRAD_NORM, LEARNING_RATE, TRAIN_LOSS, VAL_ACC, VAL_LOSS, Curve
from mlflow_nnaudit.auditor.rules import RunView
from tests.rules.conftest import SEED, ar1_noise, curve, rule_for

CURVE_ONLY_CAUSES = (
    "data_not_shuffled",
    "gradients_not_zeroed",
    "initial_loss_mismatch",
    "targets_not_normalized",
    "too_much_regularization",
    "insufficient_capacity",
    "dataset_too_small",
    "batch_size_too_large",
    "lr_decay_too_fast",
)


def test_curve_only_rules_stay_quiet_on_simulated_healthy_runs():
    # 60 healthy runs: decaying minibatch loss with AR(1) noise (phi 0.5), per-epoch validation
    # loss a little above it, a grad norm that rises 2x, params as users log them. Measured: 0
    # findings; bound 2 (~3%).
    rules = [rule_for(c) for c in CURVE_ONLY_CAUSES]
    hits = []
    for i in range(60):
        rng = np.random.default_rng([SEED, 7, i])
        n, per_epoch = 600, 60
        t = np.arange(n, dtype=float)
        noise = S.normalize_nonfinite(np.asarray(ar1_noise(rng, n, 0.5, 0.08)))
        train = 0.3 + 1.1 * np.exp(-t / (rng.uniform(0.08, 0.3) * n)) + noise
        ep = np.arange(n // per_epoch)
        val = 0.36 + 1.0 * np.exp(-(ep + 1) * per_epoch / (0.15 * n)) + 0.01 * rng.standard_normal(len(ep))
        gn = 0.4 * (1 + (1 - np.exp(-t / 200))) * np.exp(0.2 * rng.standard_normal(n))
        lr = Curve("lr", ep * per_epoch, 1e-3 * 0.5 * (1 + np.cos(np.pi * ep / len(ep))))
        v = RunView(
            {
                TRAIN_LOSS: curve("loss", train),
                VAL_LOSS: Curve("val_loss", ep * per_epoch, val),
                GRAD_NORM: curve("grad_norm", gn),
                LEARNING_RATE: lr,
            },
            params={"n_train": str(per_epoch * 64), "batch_size": "64", "num_classes": "4", "dropout": "0.1"},
        )
        hits += [r.cause for r in rules if r.evaluate(v) is not None]
    assert len(hits) <= 2, hits


def test_chance_read_from_where_the_loss_starts_stays_quiet_on_simulated_healthy_classifiers():
    # 60 healthy 4-class runs logged the way users log them without the recorder or a class-count param:
    # a per-step loss that starts at ln 4 (an untrained classifier), a per-epoch validation loss and
    # accuracy. The class count is then read from the first point (plateau's guessed chance) and the
    # accuracy says "a classifier" (loss_input_mismatch's negative-loss reading). Measured: 0; bound 0.
    rules = [rule_for(c) for c in ("plateau", "loss_input_mismatch")]
    hits = []
    for i in range(60):
        rng = np.random.default_rng([SEED, 8, i])
        n, per_epoch = 600, 60
        t = np.arange(n, dtype=float)
        chance = np.log(4)
        floor = rng.uniform(0.05, 0.9)  # hard tasks end not far below chance
        noise = S.normalize_nonfinite(np.asarray(ar1_noise(rng, n, 0.5, 0.03)))
        train = floor + (chance - floor) * np.exp(-t / (rng.uniform(0.08, 0.5) * n)) + noise
        train = np.abs(train)  # a per-batch cross-entropy is never negative
        train[0] = chance
        ep = np.arange(1, n // per_epoch + 1)
        val = (
            floor + 0.05 + (chance - floor) * np.exp(-ep * per_epoch / (0.3 * n)) + 0.01 * rng.standard_normal(len(ep))
        )
        acc = 0.25 + 0.7 * (1 - val / chance)
        v = RunView(
            {
                TRAIN_LOSS: curve("loss", train),
                VAL_LOSS: Curve("val_loss", ep * per_epoch, val),
                VAL_ACC: Curve("val_acc", ep * per_epoch, acc),
            }
        )
        hits += [r.cause for r in rules if r.evaluate(v) is not None]
    assert not hits, hits
