"""Regression whose predictions are (N,) against targets of shape (N, 1): MSELoss broadcasts to N x N and the model learns only the mean.

Report: deepset-ai/FARM issue #229 "Using a target size ... that is different to the input size"
  (a regression head whose logits were squeezed to (32,) against labels of shape (32, 1): the
  broadcasting warning, a loss that does not come down) https://github.com/deepset-ai/FARM/issues/229
Setup: 12 standardised features, a standardised non-linear target stored as a column (N, 1), MLP
12-64-64-1 whose forward returns out.squeeze(-1), nn.MSELoss, Adam(lr=1e-3), batch 32, per-epoch
train_loss / val_loss (the same criterion on the validation set, as the report's loop does).
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, predictions kept as (N, 1)): val_loss 0.039 after 15 epochs (buggy: train/val loss ~1.0 = the standardised targets' variance, true val MSE 0.97) (checked).
"""

import sys
import warnings

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
warnings.filterwarnings("ignore", message="Using a target size")

w = torch.randn(12)


def make(n):
    x = torch.randn(n, 12)
    y = torch.sin(x @ w / 3) + 0.3 * x[:, 0] ** 2 + 0.1 * torch.randn(n)
    return x, y.unsqueeze(1)


x_train, y_train = make(2000)
x_val, y_val = make(500)
mu, sd = y_train.mean(), y_train.std()
y_train, y_val = (y_train - mu) / sd, (y_val - mu) / sd


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        out = self.net(x)
        return out if FIX else out.squeeze(-1)  # the bug: (N,) against targets (N, 1)


model = Regressor()
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(15):
        model.train()
        total = 0.0
        perm = torch.randperm(2000)
        for i in range(0, 2000, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
            true_mse = ((model(x_val).reshape(-1, 1) - y_val) ** 2).mean().item()
        mlflow.log_metrics({"train_loss": total / 2000, "val_loss": val_loss}, step=epoch)
        print(epoch, total / 2000, val_loss, "true mse", true_mse)
