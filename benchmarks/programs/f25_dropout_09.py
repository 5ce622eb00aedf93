"""Dropout(p=0.9) after every layer (the user read p as the keep probability, as in TF1): underfits.

Report: "Overfitting" notes (regularisation so strong that training loss stays high)
  https://kcnote.github.io/posts/ML26-Overfitting/ ; Stack Exchange answers on dropout and eval mode
  https://bot.dharman.net/reports.php?id=2017496
Setup: MLP 20-64-64-4 with nn.Dropout(0.9) after the input and each hidden layer, Adam(lr=1e-3),
CrossEntropyLoss, per-epoch train_loss / val_loss / val_acc (evaluated in eval mode).
Expected first: too_much_regularization
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, Dropout(0.1)): val_acc ~0.9 (buggy: train_loss stays near ln 4 = 1.39) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

p = 0.1 if FIX else 0.9
w = torch.randn(20, 4)
x = torch.randn(1300, 20)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]
model = nn.Sequential(
    nn.Dropout(p),
    nn.Linear(20, 64),
    nn.ReLU(),
    nn.Dropout(p),
    nn.Linear(64, 64),
    nn.ReLU(),
    nn.Dropout(p),
    nn.Linear(64, 4),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(12):
        model.train()
        total = 0.0
        for i in range(0, 1000, 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 32, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 32, val_loss, val_acc)
