"""A regression on standardised features plus one raw Unix timestamp (~1.7e9): the network never fits.

Report: AI Stack Exchange "Regression model diverging after adding a new feature with higher variance
  and magnitude" (a time-series regression trains until a feature of much larger magnitude is added,
  then it diverges; answer: bring that feature to the others' scale)
  https://ai.stackexchange.com/questions/40022/regression-model-diverging-after-adding-a-new-feature-with-higher-variance-and-m
Setup: 10 standardised sensor features plus `timestamp` (Unix seconds over one year, ~1.70e9 +- 9e6)
as an 11th raw column, a standardised non-linear target that also has a slow seasonal trend, MLP
11-64-64-1, MSELoss, Adam(lr=1e-3), batch 64, 15 epochs, per-epoch train_loss / val_loss / val_mae.
Expected first: inputs_not_normalized
Acceptable in top 3: -
Symptom: plateau, oscillating_loss, diverging
Fixed (--fix, the timestamp standardised like the other columns): val_loss 0.065, val_mae 0.19 after 15 epochs (buggy: first epoch's train_loss ~1e13, then flat at ~25 with val_mae 3.9 on a unit-variance target) (checked).
"""

import math
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(10)


def make(n):
    sensors = torch.randn(n, 10)
    ts = 1.70e9 + torch.rand(n) * 3.15e7  # one year of Unix seconds
    season = torch.sin(2 * math.pi * (ts - 1.70e9) / 3.15e7)
    y = torch.tanh(sensors @ w / 3) + 0.5 * sensors[:, 0] * sensors[:, 1] + season + 0.1 * torch.randn(n)
    return torch.cat([sensors, ts[:, None]], 1), y[:, None]


x_train, y_train = make(3000)
x_val, y_val = make(600)
y_mean, y_std = y_train.mean(), y_train.std()
y_train, y_val = (y_train - y_mean) / y_std, (y_val - y_mean) / y_std
if FIX:
    mean, std = x_train.mean(0), x_train.std(0)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
model = nn.Sequential(nn.Linear(11, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(15):
        model.train()
        total = 0.0
        perm = torch.randperm(3000)
        for i in range(0, 3000, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            pred = model(x_val)
            val_loss = criterion(pred, y_val).item()
            val_mae = (pred - y_val).abs().mean().item()
        mlflow.log_metrics({"train_loss": total / 3000, "val_loss": val_loss, "val_mae": val_mae}, step=epoch)
        print(f"epoch {epoch}: train_loss {total / 3000:.4f} val_loss {val_loss:.4f} val_mae {val_mae:.4f}")
