"""Healthy: a Lightning temporal convolutional network forecasting a noisy multi-seasonal series with an L1 (MAE) loss, stopped by EarlyStopping on val_loss.

Report: healthy, in the style of the TCN forecasters (locuslab/TCN's TemporalBlock: dilated causal
  Conv1d with a residual connection; the Lightning docs' EarlyStopping callback) and the forecasting
  tutorials that train on MAE https://github.com/locuslab/TCN and
  https://lightning.ai/docs/pytorch/stable/common/early_stopping.html
Setup: one series of 6000 steps (a daily and a weekly cycle, a slow trend and AR(1) noise),
standardised with the training part's mean and std; windows of 64 past steps predicting the next 8,
first 80% of the windows for training, the rest (later in time) for validation; a TCN of 4 residual
blocks (kernel 3, dilations 1-2-4-8, 32 channels, weight-normed causal Conv1d, ReLU, dropout 0.1) and
a Linear(32, 8) head on the last step, L1 loss, AdamW(lr=2e-3, weight_decay=1e-4), batch 64,
EarlyStopping(monitor="val_loss", patience=3, min_delta=1e-3), max_epochs=20; `self.log` of
train_loss (per step and epoch), val_loss and val_mae through mlflow.autolog (logger=False).
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix: healthy): EarlyStopping ended it after 5 of 20 epochs: val_loss (MAE, standardised
units) 0.424 -> 0.382 (best, epoch 1) -> 0.445 -> 0.396 -> 0.412, noisy around its best, train_loss
0.464 -> 0.376; for scale, on the validation windows predicting the mean gives MAE 1.10, repeating the
last value 0.76, and an oracle knowing the clean signal and the AR(1) coefficient 0.31 (checked; 81 s
wall on a 2-core machine shared by three helpers with OMP_NUM_THREADS=1, 40 s CPU).
"""

import lightning.pytorch as pl
import mlflow
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
LOOKBACK, HORIZON = 64, 8

t = torch.arange(6000, dtype=torch.float32)
noise = torch.zeros(6000)
eps = 0.3 * torch.randn(6000)
for i in range(1, 6000):
    noise[i] = 0.7 * noise[i - 1] + eps[i]
series = torch.sin(2 * torch.pi * t / 24) + 0.6 * torch.sin(2 * torch.pi * t / 168) + t / 3000 + noise
split = int(0.8 * 6000)
series = (series - series[:split].mean()) / series[:split].std()
starts = torch.arange(0, 6000 - LOOKBACK - HORIZON)
windows = torch.stack([series[s : s + LOOKBACK + HORIZON] for s in starts])
x, y = windows[:, :LOOKBACK].unsqueeze(1), windows[:, LOOKBACK:]
n_train = int(0.8 * len(windows))


class TemporalBlock(nn.Module):
    def __init__(self, c_in, c_out, dilation, dropout=0.1):
        super().__init__()
        self.pad = 2 * dilation
        self.conv1 = weight_norm(nn.Conv1d(c_in, c_out, 3, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(c_out, c_out, 3, dilation=dilation))
        self.dropout = nn.Dropout(dropout)
        self.down = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        h = self.dropout(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))
        h = self.dropout(F.relu(self.conv2(F.pad(h, (self.pad, 0)))))
        return F.relu(h + self.down(x))


class TCNForecaster(pl.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tcn = nn.Sequential(*[TemporalBlock(1 if i == 0 else 32, 32, 2**i) for i in range(4)])
        self.head = nn.Linear(32, HORIZON)

    def forward(self, x):
        return self.head(self.tcn(x)[:, :, -1])

    def training_step(self, batch, batch_idx):
        xb, yb = batch
        loss = F.l1_loss(self(xb), yb)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        xb, yb = batch
        pred = self(xb)
        self.log("val_loss", F.l1_loss(pred, yb))
        self.log("val_mae", (pred - yb).abs().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


train = DataLoader(TensorDataset(x[:n_train], y[:n_train]), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(x[n_train:], y[n_train:]), batch_size=512)
trainer = pl.Trainer(
    max_epochs=20,
    enable_progress_bar=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    logger=False,
    log_every_n_steps=10,
    callbacks=[EarlyStopping(monitor="val_loss", patience=3, min_delta=1e-3, mode="min")],
)
trainer.fit(TCNForecaster(), train, val)
print(trainer.current_epoch, trainer.callback_metrics)
