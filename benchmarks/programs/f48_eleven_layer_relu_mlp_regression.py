"""A plain 12-layer Linear+ReLU stack (no normalisation, no skips) for a multi-output regression: it hits a wall on the training data where 2 layers fit.

Report: PyTorch Forums "Please help me understand not improving *training* (not test) with more layers"
  (MSE regression with SGD; the 2-layer Linear+ReLU net fits, the 11-layer one hits a wall on the
  training data; answer: the degradation problem of deep plain networks, ResNet paper Figure 1)
  https://discuss.pytorch.org/t/please-help-me-understand-not-improving-training-not-test-with-more-layers/163725
Setup: 64 standardised inputs, 8 standardised real-valued outputs from a random 2-layer teacher,
nn.Sequential of 11 x (Linear(64, 64) + ReLU) + Linear(64, 8) with PyTorch's default init, MSELoss,
SGD(lr=0.01, momentum=0.9), batch 64, 12 epochs, per-epoch train_loss / val_loss.
Expected first: network_too_deep
Acceptable in top 3: vanishing_gradients
Symptom: plateau
Fixed (--fix, the 2 x (Linear + ReLU) + Linear network of the report): val_loss 0.126 after 12 epochs (buggy: train_loss 1.000 and val_loss 1.008 = the targets' variance in every epoch) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

t1, t2 = torch.randn(64, 32) / 8, torch.randn(32, 8) / 5.7


def make(n):
    x = torch.randn(n, 64)
    return x, torch.tanh(x @ t1) @ t2 + 0.05 * torch.randn(n, 8)


x_train, y_train = make(3000)
x_val, y_val = make(800)
mean, std = y_train.mean(0), y_train.std(0)
y_train, y_val = (y_train - mean) / std, (y_val - mean) / std

depth = 2 if FIX else 11
layers = []
for _ in range(depth):
    layers += [nn.Linear(64, 64), nn.ReLU()]
model = nn.Sequential(*layers, nn.Linear(64, 8))
criterion = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
with mlflow.start_run():
    for epoch in range(12):
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
            val_loss = criterion(model(x_val), y_val).item()
        mlflow.log_metrics({"train_loss": total / 3000, "val_loss": val_loss}, step=epoch)
        print(f"epoch {epoch}: train_loss {total / 3000:.4f} val_loss {val_loss:.4f}")
