"""Regression network ending in a sigmoid while the targets range over about -3..3.

Report: Stack Exchange answer on sigmoid outputs only covering 0..1 (targets outside the output
  activation's range) https://datascience.stackexchange.com/questions/39929/why-normalize-when-all-features-are-on-the-same-scale ;
  "Why loss become nan / stuck" notes https://alexacabs.in/why-is-loss-showing-as-nan.html
Setup: MLP 6-32-32-1 with nn.Sigmoid() as the last layer, MSELoss, Adam(lr=1e-3), signed targets,
per-epoch train_loss / val_loss.
Expected first: final_layer_activation
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, no sigmoid on the output): val_loss 0.021 (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

x = torch.randn(1500, 6)
y = x[:, :3].sum(1, keepdim=True) + 0.1 * torch.randn(1500, 1)
x_train, y_train, x_val, y_val = x[:1200], y[:1200], x[1200:], y[1200:]
layers = [nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)]
model = nn.Sequential(*layers) if FIX else nn.Sequential(*layers, nn.Sigmoid())
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()
with mlflow.start_run():
    for epoch in range(15):
        total = 0.0
        for i in range(0, 1200, 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
        mlflow.log_metrics({"train_loss": total / 38, "val_loss": val_loss}, step=epoch)
        print(epoch, total / 38, val_loss)
