"""Linear regression where the optimiser is handed the data tensors instead of the weights.

Report: "Loss is not changing. Its remaining constant" (Q&A on a loss that never moves)
  https://taourl.com/read-2391810.html ; the classic cause: optim.SGD([x, y]) instead of
  optim.SGD(model.parameters()) (pytorch forums "weights not updating").
Setup: nn.Linear(8, 1), MSELoss, optimizer = torch.optim.SGD([x_train, y_train], lr=0.01) with
requires_grad set on the data "so that it works", per-epoch train_loss / val_loss.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, SGD(model.parameters())): val_loss 0.011 (checked; buggy: the weights never move).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w_true = torch.randn(8, 1)
x_train = torch.randn(800, 8)
y_train = x_train @ w_true + 0.1 * torch.randn(800, 1)
x_val = torch.randn(200, 8)
y_val = x_val @ w_true + 0.1 * torch.randn(200, 1)

model = nn.Linear(8, 1)
criterion = nn.MSELoss()
if FIX:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
else:
    x_train.requires_grad_(True)
    optimizer = torch.optim.SGD([x_train], lr=0.01)

with mlflow.start_run():
    for epoch in range(20):
        total = 0.0
        for i in range(0, 800, 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
        mlflow.log_metric("train_loss", total / 25, step=epoch)
        mlflow.log_metric("val_loss", val_loss, step=epoch)
        print(epoch, total / 25, val_loss)
