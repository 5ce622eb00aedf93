"""A network with one hidden layer of 2 ReLU units asked to separate a ring from its centre: it underfits.

Report: Google Machine Learning Crash Course, "A First Neural Network" exercise (a single hidden layer
  with 2 neurons cannot represent the non-linear boundary and keeps a high loss even without noise:
  it underfits; 3+ neurons or another layer are needed)
  https://developers.google.com/machine-learning/crash-course/DPE/tp-ss-neural-net-intro-first
Setup: 2-D points, class 1 inside a circle of radius 1, class 0 on a ring of radius 1.5-3 (with a
little noise and overlap), MLP 2-2-1 with ReLU, BCEWithLogitsLoss, Adam(lr=1e-2), batch 32,
25 epochs, per-epoch train_loss / train_acc / val_loss / val_acc.
Expected first: insufficient_capacity
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, hidden layers 2-16-16-1): val_acc 0.998, val_loss 0.013 after 25 epochs (buggy: train_loss 0.389, val_acc 0.80 flat from epoch 8) (checked).
"""

import math
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


def make(n):
    y = (torch.rand(n) < 0.5).float()
    r = torch.where(y == 1, torch.rand(n) * 1.1, 1.4 + torch.rand(n) * 1.6)
    a = torch.rand(n) * 2 * math.pi
    x = torch.stack([r * torch.cos(a), r * torch.sin(a)], 1) + 0.1 * torch.randn(n, 2)
    return x, y[:, None]


x_train, y_train = make(2000)
x_val, y_val = make(500)
if FIX:
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
else:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
with mlflow.start_run():
    for epoch in range(25):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(2000)
        for i in range(0, 2000, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += ((out > 0).float() == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = ((out > 0).float() == y_val).float().mean().item()
        mlflow.log_metrics(
            {"train_loss": total / 2000, "train_acc": correct / 2000, "val_loss": val_loss, "val_acc": val_acc},
            step=epoch,
        )
        print(
            f"epoch {epoch}: train_loss {total / 2000:.4f} train_acc {correct / 2000:.3f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}"
        )
