"""A validation curve that begins after the learning: a model near its floor after one epoch (the recorder's
per-step training loss, one evaluation an epoch), and a baseline's loss computed before training (the
recorder reads it as the first evaluation). Real tiny super-resolution loops, written the way users write
them, with `mlflow.autolog()`, trained into a sqlite store and audited."""

from __future__ import annotations

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
