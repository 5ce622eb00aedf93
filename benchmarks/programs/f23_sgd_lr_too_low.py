"""Plain SGD with lr=1e-5: the loss creeps down in a straight line and the run ends far from a good model.

Report: Q&A "Loss is not changing. Its remaining constant" (SGD with lr=0.0001: the updates to the
  weights are negligible) https://taourl.com/read-2391810.html
Setup: MLP 10-64-64-3, CrossEntropyLoss, SGD(lr=1e-5), mini-batches of 32, 20 epochs,
per-epoch train_loss / val_loss / val_acc.
Expected first: learning_rate_too_low
Acceptable in top 3: -
Symptom: not_converged, plateau
Fixed (--fix, lr=0.05): val_acc ~0.95 (buggy: loss still ~1.1, val_acc ~0.35) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(10, 3)
x = torch.randn(1300, 10)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]
model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05 if FIX else 1e-5)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(20):
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
