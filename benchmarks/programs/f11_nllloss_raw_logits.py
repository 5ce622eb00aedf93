"""Classifier whose raw logits go into nn.NLLLoss (no log_softmax): the loss turns negative and keeps falling.

Report: "The Complete Guide to PyTorch's NLLLoss" (common gotcha: NLLLoss does not take raw
  logits, it expects log-probabilities) https://runebook.dev/en/docs/pytorch/generated/torch.nn.nllloss/torch.nn.NLLLoss
Setup: MLP 20-64-5, last layer Linear, nn.NLLLoss on its output, SGD(lr=0.01), per-epoch
train_loss / val_loss / val_acc.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: diverging, not_converged, nonfinite_loss
Fixed (--fix, log_softmax before NLLLoss): val_acc 0.67, val_loss 1.11 after 15 epochs, still improving (checked; buggy: loss negative and falling).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(20, 5)
x = torch.randn(1300, 20)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]

model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))
criterion = nn.NLLLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)


def forward(inp):
    out = model(inp)
    return F.log_softmax(out, dim=1) if FIX else out


with mlflow.start_run():
    for epoch in range(15):
        total = 0.0
        for i in range(0, 1000, 32):
            optimizer.zero_grad()
            loss = criterion(forward(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            out = forward(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 32, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 32, val_loss, val_acc)
