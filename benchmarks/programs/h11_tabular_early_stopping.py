"""Tabular classifier with early stopping on val_loss (patience 3): stops once validation stops improving.

Report: healthy, the ordinary early-stopping loop of countless tutorials (see the fixes table at
  https://datarekha.com/interview/deep-learning/overfitting-train-val-gap/)
Setup: 15 standardised features, 2 classes with label noise 10%, MLP 15-64-64-1 with
BCEWithLogitsLoss, Adam(lr=1e-3), up to 60 epochs, early stopping with patience 3, per-epoch
train_loss / val_loss / val_acc.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_acc ~0.85 (the label noise caps it at 0.9), stopped early.
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

w = torch.randn(15)


def make(n):
    x = torch.randn(n, 15)
    y = ((x @ w + 0.5 * x[:, 0] * x[:, 1]) > 0).float()
    flip = torch.rand(n) < 0.1
    y[flip] = 1 - y[flip]
    return x, y.unsqueeze(1)


x_train, y_train = make(800)
x_val, y_val = make(300)
model = nn.Sequential(nn.Linear(15, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.BCEWithLogitsLoss()
best, bad = float("inf"), 0
with mlflow.start_run():
    for epoch in range(60):
        model.train()
        perm = torch.randperm(800)
        total = 0.0
        for i in range(0, 800, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = ((out > 0).float() == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 800, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 800, val_loss, val_acc)
        if val_loss < best - 1e-4:
            best, bad = val_loss, 0
        else:
            bad += 1
            if bad >= 3:
                print("early stopping")
                break
