"""Validation run with the model still in training mode: heavy dropout makes val_loss noisy and worse than it is.

Report: "PyTorch Training Loop — Missing zero_grad Causes Nonsense" (forgetting eval mode makes
  validation noisy and misleading) https://thecodeforge.io/ml-ai/pytorch-training-loop/ ; GeeksforGeeks
  "What does model.eval() do in PyTorch?" https://www.geeksforgeeks.org/what-does-model-eval-do-in-pytorch/amp/
Setup: MLP 20-128-128-4 with Dropout(0.5) after each hidden layer, Adam(lr=1e-3); validation under
torch.no_grad() but without model.eval(); per-epoch train_loss / val_loss / val_acc.
Expected first: eval_mode_not_set
Acceptable in top 3: -
Symptom: oscillating_loss, overfitting, plateau
Fixed (--fix, model.eval() before validation): val_loss 0.236 below train_loss 0.30, val_acc 0.917 (checked).
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

model = nn.Sequential(
    nn.Linear(20, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 4)
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(15):
        model.train()
        total = 0.0
        for i in range(0, 1000, 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
        if FIX:
            model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 32, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 32, val_loss, val_acc)
