"""Tabular classifier fed unscaled features (age, income in dollars, weight): it barely learns.

Report: James McCaffrey, "Explaining why PyTorch multi-class classification networks use NLLLoss"
  (raw data like age 23, income $72000, weight 155 must be normalised first)
  https://jamesmccaffreyblog.com/2025/01/13/explaining-why-pytorch-multi-class-classification-neural-networks-use-nllloss-negative-log-likelihood-loss
Setup: 3 features (age ~ 40, income ~ 60000, weight ~ 170), 3 classes (city), MLP 3-10-3 with
tanh, CrossEntropyLoss, SGD(lr=0.01), per-epoch train_loss / val_loss / val_acc.
Expected first: inputs_not_normalized
Acceptable in top 3: -
Symptom: plateau, oscillating_loss
Fixed (--fix, standardised features): val_acc 0.967, val_loss 0.24 (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

n = 1500
age = 20 + 50 * torch.rand(n)
income = 20000 + 80000 * torch.rand(n)
weight = 120 + 100 * torch.rand(n)
x = torch.stack([age, income, weight], 1)
z = (x - x.mean(0)) / x.std(0)
y = torch.stack([z[:, 0] + z[:, 1], -z[:, 1] + 0.5 * z[:, 2], -z[:, 0] - z[:, 2]], 1).argmax(1)
if FIX:
    x = z
x_train, y_train, x_val, y_val = x[:1200], y[:1200], x[1200:], y[1200:]

model = nn.Sequential(nn.Linear(3, 10), nn.Tanh(), nn.Linear(10, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(20):
        total = 0.0
        for i in range(0, 1200, 20):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 20]), y_train[i : i + 20])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 60, "val_loss": val_loss, "val_acc": acc}, step=epoch)
        print(epoch, total / 60, val_loss, acc)
