"""A small regression MLP trained with Adam at lr 1e-5: the loss creeps down in a straight line and stops far from a fit.

Report: Cross Validated "Neural network cannot fit the training data perfectly" question
  (MLP with one hidden layer of 10 neurons, MSE, Adam(lr=0.00001): the loss falls by ~1e-4 per epoch;
  answers: the learning rate is far too small) https://stats.stackexchange.com/q/387150
Setup: y = sin(2x) + noise on x ~ U(-3, 3) (standardised), MLP 1-10-10-1 with tanh, MSELoss,
Adam(lr=1e-5), batch 32, 40 epochs, Keras-style per-epoch `loss` / `val_loss`.
Expected first: learning_rate_too_low
Acceptable in top 3: -
Symptom: plateau, not_converged
Fixed (--fix, Adam(lr=1e-2), Keras' usual 1e-3 raised for 40 epochs): val_loss 0.013 after 40 epochs (buggy: loss 0.520 -> 0.492 in 40 epochs, val_loss 0.540 ~ the target's variance) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


def make(n):
    x = torch.rand(n, 1) * 6 - 3
    return x / 1.73, torch.sin(2 * x) + 0.1 * torch.randn(n, 1)


x_train, y_train = make(1000)
x_val, y_val = make(200)
model = nn.Sequential(nn.Linear(1, 10), nn.Tanh(), nn.Linear(10, 10), nn.Tanh(), nn.Linear(10, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2 if FIX else 1e-5)
with mlflow.start_run():
    for epoch in range(40):
        total = 0.0
        perm = torch.randperm(1000)
        for i in range(0, 1000, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
        mlflow.log_metrics({"loss": total / 1000, "val_loss": val_loss}, step=epoch)
        print(f"Epoch {epoch + 1}/40 - loss: {total / 1000:.4f} - val_loss: {val_loss:.4f}")
