"""Adam with weight_decay=0.5 (meant as 5e-4): the weights are pulled to zero and the model underfits.

Report: "Overfitting" notes on regularisation that is too strong (both losses stay high:
  underfitting) https://kcnote.github.io/posts/ML26-Overfitting/ ; fixes ranked at
  https://datarekha.com/interview/deep-learning/overfitting-train-val-gap/
Setup: MLP 20-128-128-5, CrossEntropyLoss, Adam(lr=1e-3, weight_decay=0.5), per-epoch
train_loss / val_loss / val_acc.
Expected first: too_much_regularization
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, weight_decay=5e-4): val_acc ~0.9 (buggy: loss stays near ln 5 = 1.61) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(20, 5)
x = torch.randn(1300, 20)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]
model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 5))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4 if FIX else 0.5)
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
