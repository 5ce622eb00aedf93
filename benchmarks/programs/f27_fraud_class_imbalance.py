"""Fraud detection with 1% positives and plain CrossEntropyLoss: 99% accuracy, predicts "no fraud" always.

Report: "performance does not change but loss decrease" (huggingface/transformers #563) and the
  common imbalanced-data question; accuracy looks fine while the minority class is never predicted
  https://github.com/huggingface/transformers/issues/563
Setup: 30 standardised features, 1% positive class, MLP 30-32-2, CrossEntropyLoss without class
weights, SGD(lr=0.01), per-epoch train_loss / val_loss / val_acc / val_recall.
Expected first: class_imbalance
Acceptable in top 3: -
Symptom: plateau, loss_metric_disagreement
Fixed (--fix, class weights [1, 99] in the loss): val_recall ~0.8 (buggy: val_recall 0.0, val_acc 0.99) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


def make(n):
    y = (torch.rand(n) < 0.01).long()
    x = torch.randn(n, 30)
    x[y == 1, :3] += 1.5
    return x, y


x_train, y_train = make(5000)
x_val, y_val = make(2000)
model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2))
criterion = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 99.0]) if FIX else None)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
with mlflow.start_run():
    for epoch in range(10):
        total = 0.0
        perm = torch.randperm(5000)
        for i in range(0, 5000, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            out = model(x_val)
            pred = out.argmax(1)
            val_loss = criterion(out, y_val).item()
            acc = (pred == y_val).float().mean().item()
            recall = ((pred == 1) & (y_val == 1)).sum().item() / max(1, (y_val == 1).sum().item())
        mlflow.log_metrics(
            {"train_loss": total / 79, "val_loss": val_loss, "val_acc": acc, "val_recall": recall}, step=epoch
        )
        print(epoch, total / 79, val_loss, acc, recall)
