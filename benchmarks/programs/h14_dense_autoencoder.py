"""A dense autoencoder with an MSE reconstruction loss and Adam: the loss falls to the noise floor of the data.

Report: healthy, in the style of the many "simple autoencoder in PyTorch" tutorials (an MLP
  encoder/decoder with nn.MSELoss and Adam(lr=1e-3))
  https://github.com/L1aoXingyu/pytorch-beginner/blob/master/08-AutoEncoder/simple_autoencoder.py
Setup: 32-dim samples on a 4-dim non-linear manifold plus noise (std 0.05), encoder 32-64-4,
decoder 4-64-32, MSELoss(reconstruction, input), Adam(lr=1e-3), batch 64, per-epoch train_loss /
val_loss.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss ~0.009 after 25 epochs (the added noise alone is 0.0025).
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

A = torch.randn(4, 32) / 2


def make(n):
    z = torch.randn(n, 4)
    return torch.tanh(z @ A) + 0.05 * torch.randn(n, 32)


x_train, x_val = make(3000), make(500)
model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4), nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 32))
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(25):
        model.train()
        total = 0.0
        perm = torch.randperm(3000)
        for i in range(0, 3000, 64):
            batch = x_train[perm[i : i + 64]]
            optimizer.zero_grad()
            loss = criterion(model(batch), batch)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(x_val), x_val).item()
        mlflow.log_metrics({"train_loss": total / 3000, "val_loss": val_loss}, step=epoch)
        print(epoch, total / 3000, val_loss)
