"""An LSTM forecaster whose input windows are min-max scaled but whose targets stay raw counts in the hundreds: the output layer cannot reach them and the forecast stays a flat, low line.

Report: "How to Scale Data for Long Short-Term Memory Networks in Python", Machine Learning Mastery
  (section "Scaling Output Variables": the output variable must be scaled to match the network's
  output range; unscaled quantities in the 10s to 100s slow down learning or prevent it)
  https://machinelearningmastery.com/how-to-scale-data-for-long-short-term-memory-networks-in-python/
Setup: monthly passenger counts of 300 routes (level 150-650, trend, yearly seasonality, noise),
windows of 12 months -> the next month, 2400 training / 600 validation windows; inputs scaled by a
MinMaxScaler-style (x - min) / (max - min) fitted on the training windows, targets left raw;
LSTM(1, 32, batch_first) -> Linear(32, 1) on the last hidden state, MSELoss, Adam(lr=3e-3), batch 64,
12 epochs; per-epoch train_loss / val_loss (MSE in the scale trained on) and val_rmse in passengers.
Expected first: targets_not_normalized
Acceptable in top 3: -
Symptom: plateau, not_converged
Fixed (--fix, targets scaled with the same min/max, predictions inverted for val_rmse): val_rmse 22.7
passengers after 12 epochs (noise std ~12) (buggy: train_loss 1.5e5 falling ~2% an epoch, val_rmse 381) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
ROUTES, MONTHS, WINDOW = 300, 22, 12

t = torch.arange(MONTHS, dtype=torch.float32)
level = 150 + 500 * torch.rand(ROUTES, 1)
trend = level * 0.01 * torch.randn(ROUTES, 1)
season = level * (0.1 + 0.15 * torch.rand(ROUTES, 1)) * torch.sin(2 * torch.pi * (t + 12 * torch.rand(ROUTES, 1)) / 12)
series = level + trend * t + season + 0.03 * level * torch.randn(ROUTES, MONTHS)
x = series.unfold(1, WINDOW, 1)[:, : MONTHS - WINDOW].reshape(-1, WINDOW)
y = series[:, WINDOW:].reshape(-1, 1)
perm = torch.randperm(len(x))
x, y = x[perm], y[perm]
x_train, y_train, x_val, y_val = x[:2400], y[:2400], x[2400:], y[2400:]
lo, hi = x_train.min(), x_train.max()
x_train, x_val = (x_train - lo) / (hi - lo), (x_val - lo) / (hi - lo)
if FIX:
    y_train, y_val_fit = (y_train - lo) / (hi - lo), (y_val - lo) / (hi - lo)
else:
    y_val_fit = y_val


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 32, batch_first=True)
        self.fc = nn.Linear(32, 1)

    def forward(self, x):
        out, _ = self.lstm(x.unsqueeze(-1))
        return self.fc(out[:, -1])


model = Forecaster()
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
with mlflow.start_run():
    for epoch in range(12):
        model.train()
        total = 0.0
        order = torch.randperm(2400)
        for i in range(0, 2400, 64):
            idx = order[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            pred = model(x_val)
            val_loss = criterion(pred, y_val_fit).item()
            units = pred * (hi - lo) + lo if FIX else pred
            val_rmse = ((units - y_val) ** 2).mean().sqrt().item()
        mlflow.log_metrics({"train_loss": total / 2400, "val_loss": val_loss, "val_rmse": val_rmse}, step=epoch)
        print(epoch, round(total / 2400, 5), round(val_loss, 5), round(val_rmse, 2))
