"""Activation checkpointing (torch.utils.checkpoint, reentrant) wrapped around the network's body, called on the raw input batch: no input requires grad, so the body gets no gradient and only the head trains.

Report: Lyken17/pytorch-memonger issue #4 "None of the inputs have requires_grad=True. Gradients will be
  None" (a checkpointed segment fed a tensor that does not require grad: "layer1's parameters can't be
  optimized") https://github.com/Lyken17/pytorch-memonger/issues/4
Setup: tabular 5-class classifier, 20 standardised features, body Linear(20,256)-ReLU-Linear(256,256)-ReLU
run through checkpoint(self.body, x, use_reentrant=True) "to save memory", head Linear(256, 5),
CrossEntropyLoss, Adam(lr=1e-3), batch 64 over 4000 rows, 10 epochs; per-epoch epoch_loss / val_loss /
val_accuracy.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, checkpoint(..., use_reentrant=False), which needs no input that requires grad):
epoch_loss 0.39, val_loss 0.57-0.60, val_accuracy 0.77 after 10 epochs (buggy: only the head learns on the
body's random features, epoch_loss 1.34 -> 0.89, val_loss 0.88, val_accuracy 0.71) (checked).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
w1, w2 = torch.randn(20, 32), torch.randn(32, 5)


def make(n):
    x = torch.randn(n, 20)
    y = (torch.tanh(x @ w1 / 2) @ w2 + 0.2 * torch.randn(n, 5)).argmax(1)
    return x, y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.head = nn.Linear(256, 5)

    def forward(self, x):
        if self.training:
            x = checkpoint(self.body, x, use_reentrant=not FIX)
        else:
            x = self.body(x)
        return self.head(x)


x_train, y_train = make(4000)
x_val, y_val = make(1000)
model = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(10):
        model.train()
        total = 0.0
        perm = torch.randperm(4000)
        for i in range(0, 4000, 64):
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
        metrics = {"epoch_loss": total / 4000, "val_loss": val_loss, "val_accuracy": val_acc}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 3) for k, v in metrics.items()})
