"""Optimiser created before the classifier head is replaced: the new head is never updated.

Report: Q&A "weights not updating": every optimiser constructor takes the parameter list at
  construction time; parameters created afterwards are not in it
  https://androidkt.com/how-to-use-optimizer-zero_grad-in-pytorch/
Setup: MLP backbone + head, optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9) built first,
then model.head = nn.Linear(64, 6) for the new task; per-epoch train_loss / val_loss / val_acc.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, optimiser built after the new head): train_loss 0.09, val_acc 0.77 (overfits a little; checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(self.body(x))


model = Net()
if not FIX:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
model.head = nn.Linear(64, 6)
if FIX:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
w = torch.randn(30, 6)
x = torch.randn(1300, 30)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(12):
        total = 0.0
        for i in range(0, 1000, 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 32, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 32, val_loss, val_acc)
