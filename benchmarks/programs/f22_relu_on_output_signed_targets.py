"""Regression network with a ReLU after its last Linear layer while half the targets are negative.

Report: PyTorch Forums "Cross Entropy loss is not decreasing" answer (negative pre-activations and a
  ReLU: outputs and derivatives stuck at zero) https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814/16 ;
  and Lightning issue #4862, whose model returns torch.relu(self.l1(x)) as its output
  https://github.com/Lightning-AI/pytorch-lightning/issues/4862
Setup: nn.Sequential(Linear(10, 64), ReLU, Linear(64, 1), ReLU), MSELoss, SGD(lr=0.01, momentum=0.9),
targets zero-mean, per-epoch train_loss / val_loss.
Expected first: final_layer_activation
Acceptable in top 3: dead_relu
Symptom: plateau
Fixed (--fix, no final ReLU): val_loss ~0.02 (buggy: val_loss stalls near half the target variance) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

x = torch.randn(1500, 10)
y = x @ torch.randn(10, 1) / 3 + 0.05 * torch.randn(1500, 1)
x_train, y_train, x_val, y_val = x[:1200], y[:1200], x[1200:], y[1200:]
layers = [nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1)]
model = nn.Sequential(*layers) if FIX else nn.Sequential(*layers, nn.ReLU())
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
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
