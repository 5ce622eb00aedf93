"""Hand-rolled standardisation (x - mean) / std over a table with constant columns: 0 / 0 = NaN in every sample, NaN loss from the first batch.

Report: deeplearning4j/deeplearning4j issue #1646 "NaN's after running StandardScaler fit() and
  transform() on dataset" (answer: "you have some columns with all the same value ... stdev = 0 for
  columns with all of the same values") https://github.com/deeplearning4j/deeplearning4j/issues/1646
Setup: a 14-column table (12 informative features on mixed scales, a constant `country` column = 1
and an always-0 flag), standardised with the training mean/std computed in torch, binary labels,
MLP 14-64-64-2, CrossEntropyLoss, Adam(lr=1e-3), batch 64, per-epoch train_loss / val_loss /
val_acc.
Expected first: constant_features
Acceptable in top 3: nonfinite_inputs
Symptom: nonfinite_loss
Fixed (--fix, std of a constant column set to 1 as scikit-learn's StandardScaler does): val_acc 0.957 (buggy: NaN train/val loss from the first epoch, val_acc 0.52) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

scales = torch.logspace(-1, 3, 12)
w = torch.randn(12)


def make(n):
    z = torch.randn(n, 12)
    y = ((z @ w + 0.5 * torch.randn(n)) > 0).long()
    x = torch.cat([z * scales + 3 * scales, torch.ones(n, 1), torch.zeros(n, 1)], 1)
    return x, y


x_train, y_train = make(3000)
x_val, y_val = make(600)
mean, std = x_train.mean(0), x_train.std(0)
if FIX:
    std[std == 0] = 1.0
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
model = nn.Sequential(nn.Linear(14, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(10):
        model.train()
        total = 0.0
        perm = torch.randperm(3000)
        for i in range(0, 3000, 64):
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
        mlflow.log_metrics({"train_loss": total / 3000, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 3000, val_loss, val_acc)
