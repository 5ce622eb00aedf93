"""Tabular regression where ~1% of the rows have a missing value read as NaN: the loss becomes NaN.

Report: Q&A "Why loss become nan while training" (missing values in the data not handled)
  https://alexacabs.in/why-loss-become-nan-while-training.html and the Chinese Q&A
  https://blog.youkuaiyun.com/weixin_44245188/article/details/139952406 (inputs containing NaN).
Setup: pandas-like table with NaN in 1% of the rows of one column, MLP 12-64-1, Adam(lr=1e-3),
MSELoss, shuffled mini-batches of 32, per-epoch train_loss / val_loss.
Expected first: nonfinite_inputs
Acceptable in top 3: -
Symptom: nonfinite_loss
Fixed (--fix, NaN filled with the column mean): val_loss 0.017 (checked; buggy: NaN from the first batch with a NaN row).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

x = torch.randn(1500, 12)
y = (x[:, :4].sum(1, keepdim=True) + 0.2 * torch.randn(1500, 1)) / 2
missing = torch.rand(1500) < 0.01
x[missing, 7] = float("nan")
if FIX:
    x[:, 7] = torch.nan_to_num(x[:, 7], nan=x[~missing, 7].mean().item())
x_train, y_train, x_val, y_val = x[:1200], y[:1200], x[1200:], y[1200:]

model = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()
with mlflow.start_run():
    for epoch in range(10):
        perm = torch.randperm(1200)
        total = 0.0
        for i in range(0, 1200, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
        mlflow.log_metrics({"train_loss": total / 38, "val_loss": val_loss}, step=epoch)
        print(epoch, total / 38, val_loss)
