"""An MNIST-style MLP whose cross-entropy is summed over a batch of 500 instead of averaged, with SGD at a step size tuned for small batches.

Report: jax-ml/jax pull request #3113 "Correct notebooks for neural networks in docs" (the MLP notebook
  summed the loss over the batch without dividing by the number of samples; that worked with batch 128
  and a small step size but "lead to exploding gradients for larger batches"; the fix takes the mean and
  raises the learning rate) https://github.com/jax-ml/jax/pull/3113
Setup: 14x14 digit-like images flattened to 196 values in [0, 1] (10 class stroke templates plus
noise), MLP 196-512-512-10 with ReLU, nn.CrossEntropyLoss(reduction="sum"), SGD(lr=0.01) (the
notebook's step size), batch 500, 10 epochs; per-step "loss" (divided by the batch size for the log),
per-epoch train_accuracy / test_accuracy as the notebook prints them.
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: diverging, plateau, oscillating_loss
Fixed (--fix, reduction="mean" and lr=0.5): test_accuracy 1.00, loss 0.0014 after 10 epochs (buggy: the
per-sample loss 2.30 -> 1.7 -> 4e14 within 10 steps, then back to 2.30 = ln 10 and flat, accuracy 0.08-0.11) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

templates = (torch.rand(10, 196) > 0.7).float()


def make(n):
    y = torch.randint(0, 10, (n,))
    x = (0.8 * templates[y] + 0.25 * torch.rand(n, 196) + 0.2 * torch.randn(n, 196)).clamp(0, 1)
    return x, y


x_train, y_train = make(6000)
x_test, y_test = make(1000)
model = nn.Sequential(nn.Linear(196, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
criterion = nn.CrossEntropyLoss(reduction="mean" if FIX else "sum")
optimizer = torch.optim.SGD(model.parameters(), lr=0.5 if FIX else 0.01)
batch_size = 500
step = 0
with mlflow.start_run():
    for epoch in range(10):
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), batch_size):
            idx = perm[i : i + batch_size]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            per_sample = loss.item() if FIX else loss.item() / len(idx)
            mlflow.log_metric("loss", per_sample, step=step)
            step += 1
        with torch.no_grad():
            train_acc = (model(x_train).argmax(1) == y_train).float().mean().item()
            test_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        mlflow.log_metrics({"train_accuracy": train_acc, "test_accuracy": test_acc}, step=step)
        print(f"Epoch {epoch}: loss {per_sample:.4f} training accuracy {train_acc:.3f} test accuracy {test_acc:.3f}")
