"""California-housing-style regression with standardised features and targets, Adam, per-epoch RMSE.

Report: healthy, in the style of the PyTorch regression tutorials (standardise features and targets)
  https://www.codegenes.net/blog/loss-explodes-pytorch
Setup: 8 features with different scales standardised with training statistics, target
standardised, MLP 8-64-32-1, MSELoss, Adam(lr=1e-3), per-epoch train_loss / val_loss / val_rmse.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss ~0.1 (in standard units) after 15 epochs.
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

scale = torch.tensor([1.0, 10.0, 5.0, 1000.0, 3.0, 0.1, 30.0, 100.0])
raw = torch.randn(1500, 8) * scale + 2 * scale
z = (raw - 2 * scale) / scale
target = 2.0 + z[:, 0] - 0.5 * z[:, 1] + 0.8 * torch.tanh(z[:, 2] * z[:, 3]) + 0.3 * torch.randn(1500)
x_train, x_val = raw[:1200], raw[1200:]
mean, std = x_train.mean(0), x_train.std(0)
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
t_mean, t_std = target[:1200].mean(), target[:1200].std()
y = ((target - t_mean) / t_std).unsqueeze(1)
y_train, y_val = y[:1200], y[1200:]
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()
with mlflow.start_run():
    for epoch in range(15):
        model.train()
        perm = torch.randperm(1200)
        total = 0.0
        for i in range(0, 1200, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
        mlflow.log_metrics(
            {"train_loss": total / 1200, "val_loss": val_loss, "val_rmse": (val_loss**0.5) * t_std.item()}, step=epoch
        )
        print(epoch, total / 1200, val_loss)
