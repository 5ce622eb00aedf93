"""A Transformer-encoder forecaster for a univariate series with daily and weekly seasonality: 48-step input windows, a linear head predicting the next 12 steps from the last position's encoding, trained with MSE on standardised values, AdamW with a one-epoch warm-up then cosine decay, and early stopping on the validation loss.

Report: healthy, in the style of the Transformer time-series forecasting tutorials built on
  nn.TransformerEncoder (input projection + positional encoding + encoder + linear head over a sliding
  window, standardised with the training split's mean and std, as in "Transformers for Time Series
  Forecasting" examples and the PyTorch nn.TransformerEncoder documentation)
  https://pytorch.org/docs/stable/generated/torch.nn.TransformerEncoder.html
Setup: an hourly synthetic load series of 6,000 points (a daily cycle, a weekly cycle, a slow trend, AR(1)
noise), the first 80% for training and the rest (chronologically) for validation, standardised with the
training mean/std; windows of 48 inputs -> 12 targets, stride 2 for training (~2,370 windows), stride 4
for validation; Linear(1, 32) + learned positional embedding -> nn.TransformerEncoder(2 layers, d_model 32,
4 heads, feed-forward 64, dropout 0.1, batch_first) -> Linear(32, 12) on the last position; MSELoss,
AdamW(lr=1e-3, weight_decay=1e-4), LambdaLR warm-up over the first epoch then cosine decay (stepped per
batch), gradient clipping 1.0, batch 64, up to 12 epochs with patience 3 on val_loss; per-epoch
train_loss / val_loss (standardised MSE), val_mae (in load units) and lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (healthy; reached): val_loss 0.697 -> 0.101 (best, epoch 9) -> 0.104 at epoch 12,
val_mae 21.3 -> 7.5 load units (the AR(1) noise alone has a std of 5.6), with bumps at epochs 8 and 10
(0.106 -> 0.117, 0.101 -> 0.105); train_loss 0.94 -> 0.106, above the validation loss (dropout on);
the lr warms up over epoch 1 and decays to 0 by epoch 12; the patience of 3 ran out at epoch 12, the last (checked;
43 s CPU, 170 s wall on a 2-core machine loaded by two other helpers).
"""

import math

import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
N, IN, OUT, EPOCHS, PATIENCE = 6000, 48, 12, 12, 3

t = np.arange(N)
noise = np.zeros(N)
for i in range(1, N):
    noise[i] = 0.7 * noise[i - 1] + rng.normal(0, 4.0)
load = 300 + 40 * np.sin(2 * np.pi * t / 24) + 15 * np.sin(2 * np.pi * t / (24 * 7)) + 0.004 * t + noise
split = int(0.8 * N)
mean, std = load[:split].mean(), load[:split].std()
z = (load - mean) / std


def windows(series, stride):
    idx = range(0, len(series) - IN - OUT + 1, stride)
    x = np.stack([series[i : i + IN] for i in idx])
    y = np.stack([series[i + IN : i + IN + OUT] for i in idx])
    return torch.tensor(x, dtype=torch.float32).unsqueeze(-1), torch.tensor(y, dtype=torch.float32)


x_train, y_train = windows(z[:split], 2)
x_val, y_val = windows(z[split - IN :], 4)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)


class Forecaster(nn.Module):
    def __init__(self, d_model=32):
        super().__init__()
        self.input = nn.Linear(1, d_model)
        self.pos = nn.Parameter(torch.randn(1, IN, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, 4, dim_feedforward=64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.head = nn.Linear(d_model, OUT)

    def forward(self, x):
        h = self.encoder(self.input(x) + self.pos)
        return self.head(h[:, -1])


model = Forecaster()
criterion = nn.MSELoss()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
steps_per_epoch, total_steps = len(train_loader), EPOCHS * len(train_loader)


def warmup_cosine(step):
    if step < steps_per_epoch:
        return (step + 1) / steps_per_epoch
    return 0.5 * (1 + math.cos(math.pi * (step - steps_per_epoch) / (total_steps - steps_per_epoch)))


scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine)
best, bad_epochs = float("inf"), 0
with mlflow.start_run():
    mlflow.log_params({"input_len": IN, "horizon": OUT, "d_model": 32, "layers": 2, "batch_size": 64, "lr": 1e-3})
    for epoch in range(EPOCHS):
        model.train()
        total = 0.0
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(xb)
        model.eval()
        with torch.no_grad():
            pred = model(x_val)
            val_loss = criterion(pred, y_val).item()
            val_mae = ((pred - y_val).abs().mean() * std).item()
        metrics = {
            "train_loss": total / len(x_train),
            "val_loss": val_loss,
            "val_mae": val_mae,
            "lr": scheduler.get_last_lr()[0],
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 5) for k, v in metrics.items()})
        if val_loss < best - 1e-4:
            best, bad_epochs = val_loss, 0
        else:
            bad_epochs += 1
            if bad_epochs >= PATIENCE:
                print("early stopping at epoch", epoch)
                break
