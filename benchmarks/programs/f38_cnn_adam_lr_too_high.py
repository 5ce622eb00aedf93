"""A CIFAR-style CNN trained with Adam at a learning rate far above its default: it locks onto one class at ln 10.

Report: keras-team/keras issue #4066 "Cifar10 example sometimes only predicts 1 class and does not
  improve" (accuracy fixed at 0.1, loss stuck at 2.304 with Adam at a raised learning rate; Adam's
  default 1e-3 trains) https://github.com/keras-team/keras/issues/4066
Setup: Conv(3,32,3)-ReLU-Pool-Conv(32,64,3)-ReLU-Pool-Linear(64*4*4,128)-ReLU-Linear(128,10) on
synthetic 3x16x16 images (class templates plus noise, in [-1, 1]), CrossEntropyLoss,
Adam(lr=0.1), batch 64, per-epoch train_loss / train_acc / val_loss / val_acc.
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: plateau, diverging, nonfinite_loss, oscillating_loss
Fixed (--fix, Adam(lr=1e-3)): val_acc 0.99 after 8 epochs (buggy: loss 2.31 ~ ln 10, accuracy 0.09-0.12) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

templates = torch.rand(10, 3, 16, 16) * 2 - 1


def make(n):
    y = torch.randint(0, 10, (n,))
    x = (0.6 * templates[y] + 0.6 * torch.randn(n, 3, 16, 16)).clamp(-1, 1)
    return x, y


x_train, y_train = make(2000)
x_val, y_val = make(500)
model = nn.Sequential(
    nn.Conv2d(3, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(64 * 4 * 4, 128),
    nn.ReLU(),
    nn.Linear(128, 10),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3 if FIX else 0.1)
with mlflow.start_run():
    for epoch in range(8):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(2000)
        for i in range(0, 2000, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
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
        print(epoch, total / 2000, correct / 2000, val_loss, val_acc)
