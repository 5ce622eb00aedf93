"""A validation curve that begins after the learning: a model near its floor after one epoch (the recorder's
per-step training loss, one evaluation an epoch), and a baseline's loss computed before training (the
recorder reads it as the first evaluation). Real tiny super-resolution loops, written the way users write
them, with `mlflow.autolog()`, trained into a sqlite store and audited."""

from __future__ import annotations

import math

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

import mlflow_nnaudit


def _pairs(n: int, g: torch.Generator):
    """Low-resolution crops and their 2x targets: the nearest upscaling plus noise (a floor no model beats)."""
    x = torch.rand(n, 1, 8, 8, generator=g)
    return x, F.interpolate(x, scale_factor=2, mode="nearest") + 0.15 * torch.randn(n, 1, 16, 16, generator=g)


def _train(store_uri: str, baseline: bool, epochs: int = 6) -> str:
    mlflow.autolog(silent=True, log_models=False)
    g = torch.Generator().manual_seed(0)
    (x, y), (xv, yv) = _pairs(9600, g), _pairs(160, g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 4, 3, padding=1), nn.PixelShuffle(2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with mlflow.start_run() as run:
        if baseline:  # what plain upscaling scores, for reference (as pytorch/examples' users print bicubic's PSNR)
            with torch.no_grad():
                mlflow.log_metric(
                    "nearest_mse", F.mse_loss(F.interpolate(xv, scale_factor=2, mode="nearest"), yv).item()
                )
        for epoch in range(epochs):
            model.train()
            for i in range(0, len(x), 16):
                opt.zero_grad()
                loss = F.mse_loss(model(x[i : i + 16]), y[i : i + 16])
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                val = F.mse_loss(model(xv), yv).item()
            mlflow.log_metrics({"train_loss": loss.item(), "val_loss": val}, step=epoch)
    return run.info.run_id


def _audit(run_id: str):
    (res,) = [r for r in mlflow_nnaudit.audit(force=True) if r.run_id == run_id]
    return res


def test_a_model_at_its_floor_after_one_epoch_is_no_slow_learning_rate(store_uri):
    """The validation loss moves ~1% over the run: all the learning came before its first evaluation."""
    res = _audit(_train(store_uri, baseline=False))
    assert res.status == "healthy", (res.status, res.causes)


def test_a_baseline_loss_computed_before_training_is_no_untrained_start(store_uri):
    """The baseline's MSE, computed before the first step, is the recorder's first evaluation: the model
    matches it, its training loss falls 90%, and that is no memorising."""
    res = _audit(_train(store_uri, baseline=True, epochs=9))  # 8+ evaluations: enough to read
    assert res.status == "healthy", (res.status, res.causes)


# --- the same guards must not silence a slow rate or memorised labels (review) -------------------------------
# Curves logged by hand with their timestamps (a per-step training loss, one evaluation an epoch, logged as the
# run goes or after it), each the parent code's verdict kept.

T0 = 1_700_000_000_000


def _logged(curves: dict[str, list[tuple[int, float, int]]]) -> str:
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        ms = [Metric(k, float(v), int(ts), int(s)) for k, pts in curves.items() for s, v, ts in pts]
        for i in range(0, len(ms), 900):
            client.log_batch(run.info.run_id, metrics=ms[i : i + 900])
    return run.info.run_id


def _noise(seed: int, n: int, sd: float) -> list[float]:
    return (torch.randn(n, generator=torch.Generator().manual_seed(seed)) * sd).tolist()


def test_a_slow_rate_whose_first_epoch_fell_20_percent_is_still_too_low(store_uri):
    """The output bias settles in the first epoch (2.36 -> 1.80), then the loss falls in a straight line."""
    e, s = 20, 100
    f = [1.8 + 0.7 * math.exp(-t / 40) - 0.3 * t / (e * s) for t in range(e * s)]
    n = _noise(0, e * s, 0.05)
    train = [(t, f[t] + n[t], T0 + t * 100) for t in range(e * s)]
    val = [
        (k, 1.8 + 0.7 * math.exp(-(k + 1) * s / 40) - 0.3 * (k + 1) / e + 0.03, T0 + (k + 1) * s * 100 + 50)
        for k in range(e)
    ]
    res = _audit(_logged({"train_loss": train, "val_loss": val}))
    assert res.causes[:1] == ["learning_rate_too_low"], (res.status, res.causes)


def test_a_creep_at_chance_after_a_first_epoch_fall_is_still_too_low(store_uri):
    """Initial logits too large: the first epoch only brings the loss from 4 to ln 10, then it creeps."""
    e, s, ln = 10, 100, math.log(10)
    f = [ln + 1.7 * math.exp(-t / 25) - 0.06 * t / (e * s) for t in range(e * s)]
    n = _noise(4, e * s, 0.03)
    train = [(t, f[t] + n[t], T0 + t * 100) for t in range(e * s)]
    val = [
        (k, ln + 1.7 * math.exp(-(k + 1) * s / 25) - 0.06 * (k + 1) / e + 0.01, T0 + (k + 1) * s * 100 + 50)
        for k in range(e)
    ]
    acc = [(k, 0.11 + 0.004 * k, T0 + (k + 1) * s * 100 + 60) for k in range(e)]
    res = _audit(_logged({"train_loss": train, "val_loss": val, "val_accuracy": acc}))
    assert "learning_rate_too_low" in res.causes, (res.status, res.causes)


def _memorising(e: int = 15, s: int = 40):
    ln = math.log(10)
    mem = [ln / (1 + math.exp((t - 4 * s) / (0.8 * s))) + 0.02 for t in range(e * s)]
    val = [(k, ln + 0.08 * (k + 1), T0 + (k + 1) * s * 100 + 50) for k in range(e)]
    return mem, val


def test_shuffled_labels_with_a_summed_training_loss_are_still_labels_unrelated(store_uri):
    """`running_loss += loss.item()` logged without dividing by the 40 batches: a larger scale than validation."""
    mem, val = _memorising()
    summed = [(k, sum(mem[k * 40 : (k + 1) * 40]), T0 + (k + 1) * 40 * 100) for k in range(15)]
    res = _audit(_logged({"train_loss": summed, "val_loss": val}))
    assert res.causes[:1] == ["labels_unrelated"], (res.status, res.causes)


def test_labels_memorised_before_a_sparse_first_evaluation_are_still_labels_unrelated(store_uri):
    """The HF Trainer evaluating every 160 steps (4 epochs): memorised to a weight-decay floor by then."""
    ln = math.log(10)
    mem = [(ln - 0.1) / (1 + math.exp((t - 80) / 15)) + 0.1 for t in range(1601)]
    loss = [(t, sum(mem[t - 10 : t]) / 10, T0 + t * 100) for t in range(10, 1601, 10)]
    evals = [(t, ln + 0.5 + 0.1 * t / 1600, T0 + t * 100 + 50) for t in range(160, 1601, 160)]
    res = _audit(_logged({"loss": loss, "eval_loss": evals}))
    assert res.causes[:1] == ["labels_unrelated"], (res.status, res.causes)


def test_histories_logged_after_training_are_not_placed_at_its_end(store_uri):
    """A slow rate's curves logged from saved lists after training: every evaluation's timestamp is after
    the last training point, which places them all at its end."""
    e, s = 20, 100
    f = [1.8 + 0.3 * math.exp(-t / 40) - 0.3 * t / (e * s) for t in range(e * s)]
    n = _noise(3, e * s, 0.05)
    train = [(t, f[t] + n[t], T0 + t) for t in range(e * s)]
    val = [
        (k, 1.8 + 0.3 * math.exp(-(k + 1) * s / 40) - 0.3 * (k + 1) / e + 0.03, T0 + e * s + 5 + k) for k in range(e)
    ]
    res = _audit(_logged({"train_loss": train, "val_loss": val}))
    assert res.causes[:1] == ["learning_rate_too_low"], (res.status, res.causes)
