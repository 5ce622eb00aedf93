"""Training inputs standardised, validation inputs left raw: val_loss is far above train_loss from the start.

Report: "Понять, почему CNN сходится к одному значению" answer: normalise the test data with the
  training mean and std, never forget it (pullrequest.ru)
  http://pullrequest.ru/10248037/cnn-keras-shodyatsya-odnomu-tomu-zhe-znacheniy-nezavisimo-vvoda
Setup: tabular features with means ~50 and stds ~10; x_train = (x_train - mean) / std, x_val unchanged;
MLP 8-64-3, Adam(lr=1e-3), per-epoch train_loss / val_loss / val_acc.
Expected first: train_val_preprocessing_mismatch
Acceptable in top 3: dataset_suspect
Symptom: overfitting, plateau, diverging
Fixed (--fix, val normalised with the training statistics): val_loss ~ train_loss ~0.2 (buggy: val_loss in the tens) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(8, 3)


def make(n):
    z = torch.randn(n, 8)
    return 50 + 10 * z, (z @ w).argmax(1)


x_train, y_train = make(1200)
x_val, y_val = make(300)
mean, std = x_train.mean(0), x_train.std(0)
x_train = (x_train - mean) / std
if FIX:
    x_val = (x_val - mean) / std
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(12):
        model.train()
        total = 0.0
        perm = torch.randperm(1200)
        for i in range(0, 1200, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 38, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 38, val_loss, val_acc)
