"""The rules for the training set-up and the curve-only branches, on synthetic runs: each fires on
the shape it is for and stays quiet on healthy shapes. Plus the false-discovery control across an
audit and the roles config file. No torch here: these run on curves and facts as the auditor
reads them (the recorder's side is in tests/test_setup_evidence.py; the sample runs, trained for
real, in tests/test_end_to_end.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlflow_nnaudit.auditor import stats as S
from mlflow_nnaudit.auditor.config import load_roles
from mlflow_nnaudit.auditor.curves import GRAD_NORM, LEARNING_RATE, TRAIN_LOSS, VAL_LOSS, Curve, assign_roles
from mlflow_nnaudit.auditor.result import AuditResult
from mlflow_nnaudit.auditor.rules import RunView
from mlflow_nnaudit.auditor.rules.base import Finding
from mlflow_nnaudit.auditor.rules.data.data_not_shuffled import DataNotShuffled
from mlflow_nnaudit.auditor.rules.data.dataset_too_small import DatasetTooSmall
from mlflow_nnaudit.auditor.rules.data.repeated_batch import RepeatedBatch
from mlflow_nnaudit.auditor.rules.data.targets_not_normalized import TargetsNotNormalized
from mlflow_nnaudit.auditor.rules.loss.initial_loss_mismatch import InitialLossMismatch
from mlflow_nnaudit.auditor.rules.model.insufficient_capacity import InsufficientCapacity
from mlflow_nnaudit.auditor.rules.model.network_too_deep import NetworkTooDeep
from mlflow_nnaudit.auditor.rules.model.too_much_regularization import TooMuchRegularization
from mlflow_nnaudit.auditor.rules.optimisation.batch_size_too_large import BatchSizeTooLarge
from mlflow_nnaudit.auditor.rules.optimisation.gradient_clipping_masks_lr import GradientClippingMasksLr
from mlflow_nnaudit.auditor.rules.optimisation.gradients_not_zeroed import GradientsNotZeroed
from mlflow_nnaudit.auditor.rules.optimisation.lr_decay_too_fast import LrDecayTooFast
from mlflow_nnaudit.auditor.verdict import control_false_discoveries, decide_status

SEED = 424242


def curve(key, values, steps=None):
    values = np.asarray(values, dtype=float)
    return Curve(key, np.arange(len(values)) if steps is None else steps, values)


def healthy_train(n=600, seed=0, floor=0.3):
    rng = np.random.default_rng([SEED, seed])
    t = np.arange(n)
    return floor + 1.1 * np.exp(-t / (0.15 * n)) + 0.08 * rng.standard_normal(n)


def view(train=None, val=None, params=None, diagnostics=None, extra=None, **roles):
    curves = {}
    if train is not None:
        curves[TRAIN_LOSS] = curve("train_loss", train)
    if val is not None:
        curves[VAL_LOSS] = val if isinstance(val, Curve) else curve("val_loss", val)
    for role, c in roles.items():
        curves[role] = c
    return RunView(curves, params=params or {}, extra_curves=extra or {}, diagnostics=diagnostics)


# --- recorder facts --------------------------------------------------------------------------
def test_repeated_batch_from_fingerprints():
    diag = {"inputs": {"fingerprints": {"sampled_batches": 10, "distinct": 1, "most_common_share": 1.0}},
            "data_loader": {"train": {"batches_per_epoch": 32}}}
    f = RepeatedBatch().evaluate(view(healthy_train(), diagnostics=diag))
    assert f and f.confidence == "high" and f.severity == "failed" and "32 batches" in f.recommendation
    # full-batch training (the loader has no more batches than were seen) is not a repeat
    diag["data_loader"]["train"]["batches_per_epoch"] = 1
    assert RepeatedBatch().evaluate(view(healthy_train(), diagnostics=diag)) is None
    # distinct batches, as any shuffled loader gives
    diag = {"inputs": {"fingerprints": {"sampled_batches": 10, "distinct": 10, "most_common_share": 0.1}}}
    assert RepeatedBatch().evaluate(view(healthy_train(), diagnostics=diag)) is None


def test_clipping_that_bites_on_every_step():
    clip = {"calls": 300, "kind": "norm", "limit": 0.05, "measured_calls": 300, "bite_share": 1.0,
            "median_pre_clip_ratio": 25.0, "p90_pre_clip_ratio": 30.0}
    f = GradientClippingMasksLr().evaluate(view(healthy_train(), diagnostics={"clipping": clip},
                                                params={"lr": "1.0"}))
    assert f and f.confidence == "high"
    assert "25.0x" in f.recommendation and "to about 0.04" in f.recommendation
    rare = dict(clip, bite_share=0.05, median_pre_clip_ratio=0.3)
    assert GradientClippingMasksLr().evaluate(view(healthy_train(), diagnostics={"clipping": rare})) is None


def test_network_too_deep_needs_depth_and_a_sign():
    layers = {str(i): [[32, 32]] for i in range(14)}
    grads = {f"nnaudit/grad_norm/{i}": curve(f"nnaudit/grad_norm/{i}", np.full(10, 10.0 ** (i - 14)))
             for i in range(14)}
    flat = 1.386 + 0.02 * np.random.default_rng(SEED).standard_normal(300)
    diag = {"model": {"depth": 14, "normalization": [], "layers": layers}}
    f = NetworkTooDeep().evaluate(view(flat, diagnostics=diag, extra=grads))
    assert f and f.confidence == "high" and "14 weight layers" in f.summary
    # the same depth with normalisation, or a shallow net, is not reported
    assert NetworkTooDeep().evaluate(view(flat, diagnostics={"model": dict(diag["model"], normalization=["LayerNorm"])},
                                          extra=grads)) is None
    assert NetworkTooDeep().evaluate(view(flat, diagnostics={"model": dict(diag["model"], depth=3)})) is None
    # deep but training fine, gradients even: not reported
    even = {k: curve(k, np.ones(10)) for k in grads}
    assert NetworkTooDeep().evaluate(view(healthy_train(), diagnostics=diag, extra=even)) is None


def test_insufficient_capacity_bottleneck_vs_wide_model():
    rng = np.random.default_rng(SEED)
    t = np.arange(600)
    train = 0.95 + 0.42 * np.exp(-t / 60) + 0.05 * rng.standard_normal(600)
    val = 0.95 + 0.4 * np.exp(-np.arange(10) / 1.0)
    diag = {"model": {"widths": [1, 4], "depth": 2}}
    f = InsufficientCapacity().evaluate(view(train, val, diagnostics=diag))
    assert f and f.confidence == "medium" and "1 units for 4 outputs" in f.summary
    assert InsufficientCapacity().evaluate(view(train, val, diagnostics={"model": {"widths": [64, 64, 4]}})) is None
    # a healthy run with a bottleneck-free model: nothing
    assert InsufficientCapacity().evaluate(view(healthy_train(), diagnostics=diag)) is None


# --- params + curves ---------------------------------------------------------------------------
def test_batch_size_too_large_from_params_is_low_confidence():
    t = np.arange(40)
    slow = 1.39 - 0.01 * t + 0.005 * np.random.default_rng(SEED).standard_normal(40)
    f = BatchSizeTooLarge().evaluate(view(slow, params={"batch_size": "1000", "n_train": "4000"}))
    assert f and f.confidence == "low" and "only 4 updates" in f.recommendation
    assert BatchSizeTooLarge().evaluate(view(slow, params={"batch_size": "64", "n_train": "4000"})) is None
    # a large batch on a run that converged is fine
    assert BatchSizeTooLarge().evaluate(view(healthy_train(), params={"batch_size": "1000", "n_train": "4000"})) is None


def test_dataset_too_small_is_early_overfitting():
    n = 60
    t = np.arange(n)
    train = 0.01 + 1.4 * np.exp(-t / 6)
    val = 1.2 - 0.1 * np.minimum(t, 8) / 8 + 0.02 * np.maximum(0, t - 8)
    f = DatasetTooSmall().evaluate(view(train, val, params={"n_train": "96"}))
    assert f and f.confidence == "medium" and "96 training samples" in f.summary
    f = DatasetTooSmall().evaluate(view(train, val))
    assert f and f.confidence == "low"
    assert DatasetTooSmall().evaluate(view(train, val, params={"n_train": "500000"})) is None
    # overfitting that starts late is not a lack of data
    late = 1.2 - 0.5 * np.minimum(t, 40) / 40 + 0.03 * np.maximum(0, t - 40)
    assert DatasetTooSmall().evaluate(view(train, late)) is None


def lr_schedule_run(decay_epoch_gamma: float, epochs=12, per_epoch=60, seed=1):
    """Per-step loss of a model whose progress is proportional to the learning rate."""
    rng = np.random.default_rng([SEED, seed])
    lrs = np.array([1e-3 * decay_epoch_gamma ** e for e in range(epochs)])
    step_lr = np.repeat(lrs, per_epoch)
    progress = np.cumsum(step_lr) / 1e-3 / per_epoch  # epochs' worth of full-rate training
    loss = 0.4 + 1.0 * np.exp(-progress / 3.0) + 0.04 * rng.standard_normal(len(step_lr))
    lr = Curve("lr", np.arange(epochs) * per_epoch, lrs)
    return loss, lr


def test_lr_decay_too_fast_vs_a_whole_run_schedule():
    loss, lr = lr_schedule_run(0.3)
    f = LrDecayTooFast().evaluate(view(loss, **{LEARNING_RATE: lr}))
    assert f and f.cause == "lr_decay_too_fast" and f.p_value is not None and f.p_value < 0.05
    loss, lr = lr_schedule_run(0.85)  # reaches 10% only at the very end
    assert LrDecayTooFast().evaluate(view(loss, **{LEARNING_RATE: lr})) is None
    loss, lr = lr_schedule_run(1.0)
    assert LrDecayTooFast().evaluate(view(loss, **{LEARNING_RATE: lr})) is None


# --- curve-only branches -----------------------------------------------------------------------
def sawtooth_run(epochs=10, per_epoch=60, amp=0.4, seed=2):
    rng = np.random.default_rng([SEED, seed])
    t = np.arange(epochs * per_epoch)
    phase = (t % per_epoch) / per_epoch
    tooth = amp * ((phase * 4) % 1.0)  # four classes per epoch, each a rising tooth
    return 0.6 + 0.8 * np.exp(-t / 200) + tooth + 0.05 * rng.standard_normal(len(t))


def test_data_not_shuffled_from_the_epoch_sawtooth():
    loss = sawtooth_run()
    params = {"n_train": "3840", "batch_size": "64"}  # 60 steps per epoch
    f = DataNotShuffled().evaluate(view(loss, params=params))
    assert f and f.p_value < 1e-3 and f.confidence in ("low", "medium") and "60 steps" in f.summary
    # without an epoch length there is nothing to line the pattern up with
    assert DataNotShuffled().evaluate(view(loss)) is None
    # an epoch curve logged against the step gives the length too (Lightning, HF)
    ep = curve("epoch", np.arange(len(loss)) / 60.0)
    assert DataNotShuffled().evaluate(view(loss, extra={"epoch": ep})) is not None
    # a shuffled run's loss has no per-epoch pattern
    assert DataNotShuffled().evaluate(view(healthy_train(600), params=params)) is None


def test_gradients_not_zeroed_from_a_steadily_growing_grad_norm():
    rng = np.random.default_rng(SEED)
    t = np.arange(400)
    growing = 0.3 * (1 + t / 6.0) * np.exp(0.05 * rng.standard_normal(400))
    f = GradientsNotZeroed().evaluate(view(healthy_train(400), **{GRAD_NORM: curve("grad_norm", growing)}))
    assert f and f.confidence == "low" and f.p_value is not None
    healthy = 0.4 * (1 + 1.5 * (1 - np.exp(-t / 80))) * np.exp(0.2 * rng.standard_normal(400))
    assert GradientsNotZeroed().evaluate(view(healthy_train(400), **{GRAD_NORM: curve("grad_norm", healthy)})) is None


def test_initial_loss_and_target_scale_from_curves():
    big = healthy_train()
    big[:3] = [6.0, 5.9, 5.5]
    f = InitialLossMismatch().evaluate(view(big, params={"num_classes": "4"}))
    assert f and f.confidence == "low" and "ln 4" in f.summary
    assert InitialLossMismatch().evaluate(view(healthy_train() + 1.1, params={"num_classes": "4"})) is None
    assert InitialLossMismatch().evaluate(view(big)) is None  # no class count: no ln C to compare with
    mse = 1e5 * healthy_train()
    f = TargetsNotNormalized().evaluate(view(mse))
    assert f and f.confidence == "low"
    assert TargetsNotNormalized().evaluate(view(healthy_train())) is None
    assert TargetsNotNormalized().evaluate(view(mse, params={"n_classes": "10"})) is None


def test_too_much_regularization_from_curves():
    rng = np.random.default_rng(SEED)
    stuck = 1.40 - 0.05 * (1 - np.exp(-np.arange(500) / 30)) + 0.03 * rng.standard_normal(500)
    val_below = 1.30 + 0.001 * rng.standard_normal(8)
    f = TooMuchRegularization().evaluate(view(stuck, val_below))
    assert f and f.confidence == "low"
    assert TooMuchRegularization().evaluate(view(stuck, params={"dropout": "0.9"})) is not None
    assert TooMuchRegularization().evaluate(view(stuck, val_below + 0.1)) is None  # val above train, no params
    assert TooMuchRegularization().evaluate(view(healthy_train(), params={"dropout": "0.9"})) is None


# --- healthy simulated runs: pinned false-positive rates ------------------------------------------
CURVE_ONLY_RULES = (DataNotShuffled(), GradientsNotZeroed(), InitialLossMismatch(), TargetsNotNormalized(),
                    TooMuchRegularization(), InsufficientCapacity(), DatasetTooSmall(), BatchSizeTooLarge(),
                    LrDecayTooFast())


def test_curve_only_rules_stay_quiet_on_simulated_healthy_runs():
    # 60 healthy runs: decaying minibatch loss with AR(1) noise (phi 0.5), per-epoch validation
    # loss a little above it, a grad norm that rises 2x, params as users log them. Measured: 0
    # findings; bound 2 (~3%).
    hits = []
    for i in range(60):
        rng = np.random.default_rng([SEED, 7, i])
        n, per_epoch = 600, 60
        t = np.arange(n, dtype=float)
        noise = S.normalize_nonfinite(np.asarray(_ar1(rng, n, 0.5, 0.08)))
        train = 0.3 + 1.1 * np.exp(-t / (rng.uniform(0.08, 0.3) * n)) + noise
        ep = np.arange(n // per_epoch)
        val = 0.36 + 1.0 * np.exp(-(ep + 1) * per_epoch / (0.15 * n)) + 0.01 * rng.standard_normal(len(ep))
        gn = 0.4 * (1 + (1 - np.exp(-t / 200))) * np.exp(0.2 * rng.standard_normal(n))
        lr = Curve("lr", ep * per_epoch, 1e-3 * 0.5 * (1 + np.cos(np.pi * ep / len(ep))))
        v = RunView({TRAIN_LOSS: curve("loss", train), VAL_LOSS: Curve("val_loss", ep * per_epoch, val),
                     GRAD_NORM: curve("grad_norm", gn), LEARNING_RATE: lr},
                    params={"n_train": str(per_epoch * 64), "batch_size": "64", "num_classes": "4", "dropout": "0.1"})
        hits += [r.cause for r in CURVE_ONLY_RULES if r.evaluate(v) is not None]
    assert len(hits) <= 2, hits


def _ar1(rng, n, phi, sd):
    e = rng.standard_normal(n)
    y = np.empty(n)
    y[0] = e[0]
    for i in range(1, n):
        y[i] = phi * y[i - 1] + math.sqrt(1 - phi**2) * e[i]
    return sd * y


# --- false-discovery control -------------------------------------------------------------------
def _result(run_id, *findings):
    return AuditResult(run_id, run_id, "0", "e", status=decide_status(list(findings)), findings=list(findings))


def test_benjamini_hochberg_across_the_runs_of_one_audit():
    strong = [_result(f"s{i}", Finding("not_converged", "medium", "warning", "s", "r", p_value=1e-6))
              for i in range(5)]
    weak = _result("w", Finding("not_converged", "medium", "warning", "s", "r", p_value=0.04))
    recorded = _result("r", Finding("nonfinite_inputs", "high", "failed", "s", "r"))  # no p-value: untouched
    results = [*strong, weak, *[_result(f"h{i}") for i in range(20)], recorded]
    # 0.04 alone would pass at 5%; among 6 tests its BH threshold is 0.05 * 6/6 ... but with 20 more
    # healthy runs nothing changes (they have no tests): it is the number of tests that counts
    assert control_false_discoveries(results) == 0
    many = [_result(f"m{i}", Finding("oscillating_loss", "low", "warning", "s", "r", p_value=0.5))
            for i in range(30)]
    results = [*strong, weak, *many, recorded]
    dropped = control_false_discoveries(results)
    assert dropped == 31  # the weak one and the 30 null ones; the strong ones survive
    assert weak.findings == [] and weak.status == "healthy" and "Benjamini-Hochberg" in weak.notes[0]
    assert all(r.findings for r in strong) and recorded.findings and recorded.status == "failed"


# --- curve roles -----------------------------------------------------------------------------------
def test_wandb_and_lightning_slash_names():
    roles = assign_roles({"train/loss": 300, "val/loss": 10, "train/learning_rate": 300, "train/grad_norm": 300,
                          "train/epoch": 300})
    assert roles == {TRAIN_LOSS: "train/loss", VAL_LOSS: "val/loss", LEARNING_RATE: "train/learning_rate",
                     GRAD_NORM: "train/grad_norm"}
    assert assign_roles({"train/loss": 300, "eval/loss": 10})[VAL_LOSS] == "eval/loss"


def test_roles_from_config_files(tmp_path):
    (tmp_path / "nnaudit.toml").write_text('[roles]\ntrain_loss = "objective"\nval_loss = ["val/nll", "dev"]\n')
    assert load_roles(cwd=tmp_path) == {"train_loss": "objective", "val_loss": ["val/nll", "dev"]}
    # a list picks the first key the run has
    assert assign_roles({"objective": 100, "dev": 10}, load_roles(cwd=tmp_path)) == {
        TRAIN_LOSS: "objective", VAL_LOSS: "dev"}
    other = tmp_path / "sub"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.nnaudit.roles]\nlr = "eta"\n')
    assert load_roles(cwd=other) == {"lr": "eta"}
    assert load_roles(other / "pyproject.toml") == {"lr": "eta"}
    (other / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_roles(cwd=other) == {}
    bad = tmp_path / "bad.toml"
    bad.write_text('[roles]\nloss = "x"\n')
    with pytest.raises(ValueError, match="unknown curve role"):
        load_roles(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_roles(tmp_path / "missing.toml")
    bad.write_text("[roles\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_roles(bad)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_epoch_periodicity_false_positives_on_autocorrelated_noise(phi):
    # 200 decaying curves with AR(1) noise, 10 epochs of 50 steps, no per-epoch pattern.
    # Measured: 1/200 at each phi (p < 0.001 and a 10% swing by chance); bound 4/200.
    hits = 0
    for i in range(200):
        rng = np.random.default_rng([SEED, 11, int(phi * 10), i])
        t = np.arange(500, dtype=float)
        y = 0.5 + np.exp(-t / 100) + _ar1(rng, 500, phi, 0.1)
        hits += S.epoch_periodicity(t, y, 50.0).detected
    assert hits <= 4


def test_epoch_periodicity_finds_a_sawtooth_and_its_size():
    t = np.arange(600, dtype=float)
    per = S.epoch_periodicity(t, sawtooth_run(), 60.0)
    assert per.detected and per.p_value < 1e-6 and per.epochs >= 8
    assert 0.25 < per.amplitude < 0.45  # the tooth is 0.4 high; bin means shave a little off
    assert not S.epoch_periodicity(t, sawtooth_run(amp=0.0), 60.0).detected
