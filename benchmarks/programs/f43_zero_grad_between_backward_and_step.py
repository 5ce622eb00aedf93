"""optimizer.zero_grad() moved between loss.backward() and optimizer.step(): every step applies empty gradients, nothing learns.

Report: velog "optimizer.zero_grad()는 어디에 넣어주어야 할까" (where to put optimizer.zero_grad(): anywhere in
  the loop except between loss.backward() and optimizer.step(), which throws the fresh gradients away
  before the update) https://velog.io/@rhss10/기본-optimizer.zerograd는-어디에-넣어주어야-할까
Setup: 20 standardised features, 4 classes from a random linear teacher, MLP 20-64-64-4, CrossEntropyLoss,
SGD(lr=0.05, momentum=0.9), batch 32, 10 epochs, the loop reordered as forward / loss / backward /
zero_grad / step; per-epoch train_loss / train_acc / val_loss / val_acc.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, zero_grad() before backward()): val_acc 0.89, val_loss 0.31 after 10 epochs (buggy: train_loss 1.3987 and val_acc 0.248 identical in every epoch: no parameter ever changes) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w_teacher = torch.randn(20, 4)


def make(n):
    x = torch.randn(n, 20)
    y = (x @ w_teacher + 0.5 * torch.randn(n, 4)).argmax(1)
    return x, y


x_train, y_train = make(2000)
x_val, y_val = make(500)
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
with mlflow.start_run():
    for epoch in range(10):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(2000)
        for i in range(0, 2000, 32):
            idx = perm[i : i + 32]
            if FIX:
                optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            if not FIX:
                optimizer.zero_grad()  # "clear the gradients" -- one line too late
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics(
            {"train_loss": total / 2000, "train_acc": correct / 2000, "val_loss": val_loss, "val_acc": val_acc},
            step=epoch,
        )
        print(
            f"epoch {epoch}: train_loss {total / 2000:.4f} train_acc {correct / 2000:.3f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}"
        )
