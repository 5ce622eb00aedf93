"""CNN with BatchNorm trained with batch_size=2 (GPU memory habit): noisy statistics, erratic training.

Report: "Validation loss doesn't decrease when training with Lightning" (validation loss jumps up
  and down while training loss falls; small batches with batch norm)
  https://github.com/Lightning-AI/pytorch-lightning/issues/13724
Setup: Conv-BN-ReLU x2 -> Linear on 1x16x16 images, BatchNorm2d, batch_size=2, SGD(lr=0.05,
momentum=0.9), per-epoch train_loss / val_loss / val_acc (model.eval() for validation).
Expected first: batchnorm_small_batch
Acceptable in top 3: -
Symptom: oscillating_loss, plateau
Fixed (--fix, batch_size=32): val_acc ~0.95 with a steady val_loss (buggy: val_loss jumps epoch to epoch) [expected; --fix not rerun in the final check]
Doubt (2026-12-04): at batch size 2, the same model reaches val_acc 0.98 with BatchNorm at lr 0.005,
and fails at lr 0.05 without normalisation or with GroupNorm as it does with BatchNorm (2 epochs,
3 seeds): as written, this program's failure is the step size for 2-sample steps with momentum
0.9, not BatchNorm (the --fix changes both). The truth is kept as written, and the auditor's
`learning_rate_too_high` first is counted as a miss; the program should be reworked to isolate
BatchNorm (e.g. a low learning rate, where batch-2 statistics hurt evaluation).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

templates = torch.randn(4, 1, 16, 16)


def make(n):
    y = torch.randint(0, 4, (n,))
    return templates[y] * 0.5 + torch.randn(n, 1, 16, 16), y


x_train, y_train = make(600)
x_val, y_val = make(200)
model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1),
    nn.BatchNorm2d(8),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1),
    nn.BatchNorm2d(16),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(16 * 16, 4),
)
bs = 32 if FIX else 2
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(8):
        model.train()
        perm = torch.randperm(600)
        total, nb = 0.0, 0
        for i in range(0, 600, bs):
            idx = perm[i : i + bs]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
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
