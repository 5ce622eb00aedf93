"""Inputs and labels shuffled separately (np.random.shuffle twice): the labels no longer match the inputs.

Report: Stack Overflow-style "training accuracy goes up, validation stays at chance" after shuffling
  X and y with two separate np.random.shuffle calls; overfitting/memorisation notes
  https://datarekha.com/interview/deep-learning/overfitting-train-val-gap/
Setup: MLP 20-256-256-4, Adam(lr=1e-3), CrossEntropyLoss, 30 epochs, per-epoch train_loss /
val_loss / train_acc / val_acc.
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: overfitting, plateau
Fixed (--fix, one permutation for both): val_acc 0.93, val_loss 0.175 (checked).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
rng = np.random.default_rng(0)
torch.manual_seed(0)

w = rng.normal(size=(20, 4))
X = rng.normal(size=(1000, 20)).astype(np.float32)
y = (X @ w).argmax(1)
X_val = rng.normal(size=(300, 20)).astype(np.float32)
y_val = (X_val @ w).argmax(1)
if FIX:
    p = rng.permutation(len(X))
    X, y = X[p], y[p]
else:
    rng.shuffle(X)
    rng.shuffle(y)
X, y, X_val, y_val = map(torch.from_numpy, (X, y, X_val, y_val))

model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(30):
        total, correct = 0.0, 0
        for i in range(0, 1000, 50):
            optimizer.zero_grad()
            out = model(X[i : i + 50])
            loss = criterion(out, y[i : i + 50])
            loss.backward()
            optimizer.step()
            total += loss.item()
            correct += (out.argmax(1) == y[i : i + 50]).sum().item()
        with torch.no_grad():
            out = model(X_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics(
            {"train_loss": total / 20, "train_acc": correct / 1000, "val_loss": val_loss, "val_acc": val_acc},
            step=epoch,
        )
        print(epoch, total / 20, correct / 1000, val_loss, val_acc)
