"""House-price regression with targets in dollars (~1e5) and MSELoss: the loss is huge and barely moves.

Report: Stack Exchange "Why normalize..." answers and the common house-price question (targets in
  the hundreds of thousands with MSE); see "PyTorch Neural Networks: Why Your Loss Isn't Decreasing"
  http://sama.guegue.com/blog/pytorch-neural-networks-why-your
Setup: 8 standardised features, MLP 8-64-64-1, MSELoss, Adam(lr=1e-3), targets = price in dollars,
per-epoch train_loss / val_loss.
Expected first: targets_not_normalized
Acceptable in top 3: learning_rate_too_low
Symptom: plateau, not_converged
Fixed (--fix, targets standardised): val_loss 0.018 in standard units (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

x = torch.randn(1500, 8)
price = 200_000 + 60_000 * (x[:, :3].sum(1) / 1.7 + 0.3 * torch.tanh(x[:, 3] * x[:, 4])) + 5000 * torch.randn(1500)
y = price.unsqueeze(1)
if FIX:
    y = (y - y.mean()) / y.std()
x_train, y_train, x_val, y_val = x[:1200], y[:1200], x[1200:], y[1200:]

model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()
with mlflow.start_run():
    for epoch in range(15):
        perm = torch.randperm(1200)
        total = 0.0
        for i in range(0, 1200, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
        mlflow.log_metrics({"train_loss": total / 38, "val_loss": val_loss}, step=epoch)
        print(epoch, total / 38, val_loss)
