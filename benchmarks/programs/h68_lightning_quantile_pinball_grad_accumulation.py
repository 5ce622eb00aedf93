"""Quantile regression of an hourly electricity load in Lightning: one network predicts the 10th, 50th and 90th percentiles under the pinball (quantile) loss, with gradient accumulation over 4 batches; the loss stays well above zero by nature (the noise is wide and skewed), and the 80% interval's coverage is tracked.

Report: healthy, in the style of the quantile-regression examples built on Lightning (pytorch-forecasting's
  `QuantileLoss(quantiles=[0.1, 0.5, 0.9])`: `errors = target - y_pred[..., i]`, `max((q - 1) * errors,
  q * errors)` averaged over the quantiles; the Lightning docs' `Trainer(accumulate_grad_batches=4)`)
  https://pytorch-forecasting.readthedocs.io/en/stable/api/pytorch_forecasting.metrics.quantile.QuantileLoss.html
Setup: 3,000 training / 600 validation hours of a synthetic load (daily and weekly profile, a U-shaped
temperature effect, gamma noise whose spread is three times larger by day than at night), features hour
(sin, cos), day of week (one-hot) and standardised temperature, the target standardised with the training
split's mean and std; a LightningModule MLP 10 -> 64 -> 64 -> 3 (ReLU), the pinball loss averaged over the
three quantiles, Adam(lr=1e-3), batch 32, `accumulate_grad_batches=4`, 15 epochs; self.log train_loss per
step (every 10), val_loss (pinball), val_mae (of the median) and val_coverage (share of targets inside the
10-90% band, 0.8 when calibrated) per epoch.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: val_loss (pinball, standardised units) 0.265 -> 0.191 (epoch 3) -> 0.139 after 15 epochs, flattening,
val_mae 0.81 -> 0.424, val_coverage 0.51 -> 0.87 (epoch 1) then 0.81-0.85, train_loss 0.21 -> 0.10-0.16
(noisy step values) (checked; 92 s wall on a 2-core machine loaded by three helpers, 38 s CPU, mostly
imports, OMP_NUM_THREADS=1).
"""

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
QUANTILES = torch.tensor([0.1, 0.5, 0.9])

hours = np.arange(3600)
hod, dow = hours % 24, (hours // 24) % 7
temp = 12 + 8 * np.sin(2 * np.pi * hours / (24 * 60)) + 4 * np.sin(2 * np.pi * (hod - 9) / 24) + rng.normal(0, 2, 3600)
profile = 50 + 18 * np.exp(-((hod - 9) ** 2) / 8) + 22 * np.exp(-((hod - 19) ** 2) / 6) - 8 * (dow >= 5)
spread = np.where((hod >= 7) & (hod <= 21), 6.0, 2.0)
load = profile + 0.08 * (temp - 16) ** 2 + spread * (rng.gamma(2.0, 1.0, 3600) - 2.0)
features = np.column_stack(
    [
        np.sin(2 * np.pi * hod / 24),
        np.cos(2 * np.pi * hod / 24),
        np.eye(7)[dow],
        (temp - temp[:3000].mean()) / temp[:3000].std(),
    ]
)
target = (load - load[:3000].mean()) / load[:3000].std()
x = torch.tensor(features, dtype=torch.float32)
y = torch.tensor(target, dtype=torch.float32)[:, None]


def quantile_loss(y_pred, target):
    errors = target - y_pred
    return torch.max((QUANTILES - 1) * errors, QUANTILES * errors).mean()


class QuantileForecaster(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        xb, yb = batch
        loss = quantile_loss(self(xb), yb)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        xb, yb = batch
        pred = self(xb)
        self.log("val_loss", quantile_loss(pred, yb))
        self.log("val_mae", (pred[:, 1:2] - yb).abs().mean())
        inside = ((yb >= pred[:, 0:1]) & (yb <= pred[:, 2:3])).float().mean()
        self.log("val_coverage", inside)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


train = DataLoader(TensorDataset(x[:3000], y[:3000]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[3000:], y[3000:]), batch_size=600)
trainer = pl.Trainer(
    max_epochs=15,
    accumulate_grad_batches=4,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=10,
    enable_model_summary=False,
)
trainer.fit(QuantileForecaster(), train, val)
print(trainer.callback_metrics)
