"""MLP whose weights are all initialised to zero ("to start from a neutral model"): symmetric units, no learning.

Report: Q&A "Loss is not changing" (improper weight initialization is a common cause of a stagnant
  loss) https://taourl.com/read-2034078.html
Setup: MLP 20-64-64-4 with tanh, model.apply(init) setting every Linear weight and bias to 0,
SGD(lr=0.1), CrossEntropyLoss, per-epoch train_loss / val_loss / val_acc.
Expected first: bad_weight_init
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, PyTorch's default init): val_acc ~0.9 (buggy: loss stays at ln 4 = 1.386) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(20, 4)
x = torch.randn(1300, 20)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]
model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))


def init(m):
    if isinstance(m, nn.Linear):
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)


if not FIX:
    model.apply(init)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
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
