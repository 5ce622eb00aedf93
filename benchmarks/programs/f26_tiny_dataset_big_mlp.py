"""A 60-sample dataset and a 2x512 MLP trained for 150 epochs: train loss -> 0, val loss climbs.

Report: "My test loss is increasing but train loss is decreasing for Neural Network. What should i do?"
  https://thepinehillsnews.com/post/my-test-loss-is-increasing-but-train-loss-is-decreasing-for
Setup: 60 training samples of 30 noisy features, MLP 30-512-512-3, Adam(lr=1e-3), no dropout or
weight decay, 150 epochs, per-epoch train_loss / val_loss / val_acc.
Expected first: dataset_too_small
Acceptable in top 3: no_regularization
Symptom: overfitting
Fixed (--fix, 1500 samples, dropout 0.3, weight decay 1e-3, 30 epochs): val_loss keeps falling [expected; --fix not rerun in the final check]
with train_loss (buggy: val_loss rises after epoch ~10 while train_loss -> 0).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(30, 3)


def make(n):
    x = torch.randn(n, 30)
    return x, (x[:, :5] @ w[:5] + 1.5 * torch.randn(n, 3)).argmax(1)


x_train, y_train = make(1500 if FIX else 60)
x_val, y_val = make(400)
p = 0.3 if FIX else 0.0
model = nn.Sequential(
    nn.Linear(30, 512), nn.ReLU(), nn.Dropout(p), nn.Linear(512, 512), nn.ReLU(), nn.Dropout(p), nn.Linear(512, 3)
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3 if FIX else 0.0)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(30 if FIX else 150):
        model.train()
        total, nb = 0.0, 0
        for i in range(0, len(x_train), 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
            nb += 1
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / nb, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
    print(epoch, total / nb, val_loss, val_acc)
