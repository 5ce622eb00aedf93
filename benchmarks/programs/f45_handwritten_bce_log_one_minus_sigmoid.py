"""A hand-written binary cross-entropy, -(y*log(sigmoid(z)) + (1-y)*log(1-sigmoid(z))): once a logit passes ~17, sigmoid is exactly 1.0 and 0 * log(0) is NaN.

Report: huggingface/candle issue #2561 "binary_cross_entropy_with_logit numerically unstable for high
  logits" (the losses all went to NaN: sigmoid of a high logit is 1.0, 1 - 1.0 is 0 and its log
  breaks; fixed by the log-sum-exp formulation PyTorch uses) https://github.com/huggingface/candle/issues/2561
Setup: 20 standardised features, a binary label from a random linear teacher (separable, so the
logits keep growing), MLP 20-64-64-1, loss = -(y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z))).mean(),
Adam(lr=1e-3), batch 64, 15 epochs, per-epoch train_loss / train_acc / val_loss / val_acc.
Expected first: nonfinite_loss
Acceptable in top 3: -
Symptom: nonfinite_loss
Fixed (--fix, nn.BCEWithLogitsLoss on the logits): val_acc 0.97, val_loss 0.061 after 15 epochs (buggy: val_loss nan from epoch 2, train_loss nan from epoch 3 on, accuracy then 0.49) (checked).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w_teacher = torch.randn(20)


def make(n):
    x = torch.randn(n, 20)
    return x, (x @ w_teacher > 0).float()


def binary_cross_entropy_with_logits(z, y):
    if FIX:
        return F.binary_cross_entropy_with_logits(z, y)
    p = torch.sigmoid(z)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


x_train, y_train = make(3000)
x_val, y_val = make(600)
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(15):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(3000)
        for i in range(0, 3000, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            z = model(x_train[idx]).squeeze(1)
            loss = binary_cross_entropy_with_logits(z, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += ((z > 0).float() == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            z = model(x_val).squeeze(1)
            val_loss = binary_cross_entropy_with_logits(z, y_val).item()
            val_acc = ((z > 0).float() == y_val).float().mean().item()
        mlflow.log_metrics(
            {"train_loss": total / 3000, "train_acc": correct / 3000, "val_loss": val_loss, "val_acc": val_acc},
            step=epoch,
        )
        print(
            f"epoch {epoch}: train_loss {total / 3000:.4f} train_acc {correct / 3000:.3f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}"
        )
