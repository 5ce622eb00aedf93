"""A Lightning window-based MLP forecaster that trains on windows standardised by their own mean and std but computes the validation loss from the scaled predictions against the targets in their original units, so val_loss sits near the series' level and EarlyStopping watches a number that barely depends on the model.

Report: Nixtla/neuralforecast issue #651 "[Recurrent] `validation_step` does not scale back the loss for
  point losses" ("The `validation_step` does not call `inv_normalization` to compute the loss on the
  original scale") and its fix for the window-based models, pull request #720 "Fixed bug in validation loss
  scale" ("The validation loss was comparing scaled predictions against real values in the original scale.
  This impacted both early stopping and model selection") https://github.com/Nixtla/neuralforecast/pull/720
Setup: as neuralforecast's window-based models (an MLP on the last 48 steps predicting the next 12, the
input window standardised by its own mean and std, `scaler_type="standard"`, the training loss taken on
that normalised scale, the validation step skipping the mapping back as before the fix; MAE loss,
Adam(lr=3e-4), EarlyStopping on the validation loss with patience 3, the best val_loss weights restored):
one hourly load series of 4200 steps (level ~500 MW with daily and weekly cycles, a trend and AR noise),
the last 700 steps for validation; LightningModule Linear(48,256)-ReLU-Linear(256,256)-ReLU-Linear(256,12),
batch 64, max 30 epochs; `self.log` train_loss per epoch (scaled units, as the library logs it), val_loss,
and at the end test_mae, the validation MAE in MW of the restored best model.
Expected first: train_val_preprocessing_mismatch
Acceptable in top 3: loss_input_mismatch, targets_not_normalized
Symptom: plateau
Fixed (--fix, the predictions mapped back to the original scale before the validation loss, as in the
pull request): val_loss (MW) 16.6 -> 10.6 (best, epoch 10),
EarlyStopping after 13 epochs, train_loss 0.548 -> 0.190, test_mae 10.58 MW (buggy: val_loss 574.77 ->
574.69 -> 574.82 -> 574.70, flat at the series' level whatever the model does, so EarlyStopping ended it
after 5 epochs and the best "val_loss" restored epoch 2; the same train_loss as the fix up to there, 0.548
-> 0.202; test_mae 12.97 MW, 23% worse) (checked; ~70 s wall each on a 2-core machine shared by three
helpers, ~37 s CPU, OMP_NUM_THREADS=1).
"""

import copy
import sys

import lightning.pytorch as pl
import mlflow
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
INPUT, HORIZON, T, VAL = 48, 12, 4200, 700

t = torch.arange(T, dtype=torch.float32)
ar = torch.zeros(T)
eps = 6 * torch.randn(T)
for i in range(1, T):
    ar[i] = 0.8 * ar[i - 1] + eps[i]
load = 500 + 80 * torch.sin(2 * torch.pi * t / 24) + 40 * torch.sin(2 * torch.pi * t / 168) + 0.02 * t + ar


def windows(series):
    idx = torch.arange(len(series) - INPUT - HORIZON + 1)
    w = torch.stack([series[i : i + INPUT + HORIZON] for i in idx])
    return w[:, :INPUT], w[:, INPUT:]


x_train, y_train = windows(load[: T - VAL])
x_val, y_val = windows(load[T - VAL - INPUT :])


def standard_scaler(x):
    mean, std = x.mean(1, keepdim=True), x.std(1, keepdim=True).clamp_min(1e-6)
    return mean, std


class WindowMLP(pl.LightningModule):
    def __init__(self, lr=3e-4):
        super().__init__()
        self.save_hyperparameters()
        self.mlp = nn.Sequential(
            nn.Linear(INPUT, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, HORIZON)
        )

    def forward(self, x):
        mean, std = standard_scaler(x)
        return self.mlp((x - mean) / std), mean, std

    def training_step(self, batch, batch_idx):
        x, y = batch
        y_hat, mean, std = self(x)
        loss = F.l1_loss(y_hat, (y - mean) / std)  # loss on the normalised scale
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        y_hat, mean, std = self(x)
        if FIX:
            y_hat = y_hat * std + mean  # inv_normalization
        self.log("val_loss", F.l1_loss(y_hat, y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class KeepBest(pl.Callback):
    def __init__(self):
        self.best, self.state = float("inf"), None

    def on_validation_end(self, trainer, module):
        val = float(trainer.callback_metrics["val_loss"])
        if val < self.best:
            self.best, self.state = val, copy.deepcopy(module.state_dict())


model, keep = WindowMLP(), KeepBest()
trainer = pl.Trainer(
    max_epochs=30,
    enable_progress_bar=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    logger=False,
    num_sanity_val_steps=0,
    callbacks=[EarlyStopping(monitor="val_loss", patience=3, mode="min"), keep],
)
with mlflow.start_run():
    trainer.fit(
        model,
        DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True),
        DataLoader(TensorDataset(x_val, y_val), batch_size=256),
    )
    model.load_state_dict(keep.state)
    with torch.no_grad():
        y_hat, mean, std = model(x_val)
        test_mae = F.l1_loss(y_hat * std + mean, y_val).item()
        seasonal_naive = F.l1_loss(x_val[:, INPUT - 24 : INPUT - 24 + HORIZON], y_val).item()
    mlflow.log_metric("test_mae", test_mae)
print(
    f"stopped after {trainer.current_epoch} epochs; test MAE {test_mae:.2f} MW (same hour yesterday: {seasonal_naive:.2f})"
)
