"""Training loop that never calls optimizer.zero_grad(): gradients pile up and the loss swings and grows.

Report: "PyTorch Training Loop — Missing zero_grad Causes Nonsense" (the most common production
  bug is a missing zero_grad) https://thecodeforge.io/ml-ai/pytorch-training-loop/ ; also
  Stack Overflow "Why do we need to call zero_grad() in PyTorch?"
  https://devpeace.com/python/48001598/why-do-we-need-to-call-zero-grad-in-pytorch
Setup: MLP 10-50-3, CrossEntropyLoss, Adam(lr=0.01), full-batch-per-epoch style loop from the
report (one forward over X_train per "epoch"... here mini-batches of 64), per-epoch train_loss / val_acc.
Expected first: gradients_not_zeroed
Acceptable in top 3: learning_rate_too_high
Symptom: oscillating_loss, diverging, plateau
Fixed (--fix, zero_grad each step): val_acc 0.98, train_loss 0.037 (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(10, 3)
x = torch.randn(1500, 10)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1200], y[:1200], x[1200:], y[1200:]

model = nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Linear(50, 3))
loss_function = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
with mlflow.start_run():
    for epoch in range(15):
        total = 0.0
        for i in range(0, 1200, 64):
            if FIX:
                optimizer.zero_grad()
            y_pred = model(x_train[i : i + 64])
            loss = loss_function(y_pred, y_train[i : i + 64])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            val_acc = (model(x_val).argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 19, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 19, val_acc)
