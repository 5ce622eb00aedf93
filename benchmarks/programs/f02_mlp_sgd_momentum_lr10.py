"""MLP classifier with SGD(lr=10, momentum=0.9): the loss explodes in the first epoch and the ReLUs die.

Report: "Loss explodes in PyTorch" (tutorial: an SGD learning rate of 10 makes the loss blow up)
  https://www.codegenes.net/blog/loss-explodes-pytorch
Setup as in issue 11 "What was seen": MLP 16-64-64-4, ReLU, CrossEntropyLoss, SGD(lr=10, momentum=0.9),
per-epoch train_loss / val_loss / val_acc.
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: diverging, nonfinite_loss, plateau
Fixed (--fix, lr=0.1 with momentum 0.9): val_acc 0.980, val_loss 0.070 after 20 epochs (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

# four gaussian blobs in 16 dimensions
centers = torch.randn(4, 16)


def make(n):
    y = torch.randint(0, 4, (n,))
    return centers[y] + torch.randn(n, 16), y


x_train, y_train = make(1000)
x_val, y_val = make(300)

model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1 if FIX else 10, momentum=0.9)

with mlflow.start_run():
    mlflow.log_params({"lr": optimizer.param_groups[0]["lr"], "batch_size": 64, "epochs": 20})
    for epoch in range(20):
        model.train()
        perm = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(x_train), 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / len(x_train), "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(f"epoch {epoch} train_loss {total / len(x_train):.4g} val_loss {val_loss:.4g} val_acc {val_acc:.3f}")
