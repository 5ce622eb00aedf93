"""A 12-layer sigmoid MLP trained with plain SGD: the early layers get almost no gradient.

Report: Q&A "Loss is not changing. Its remaining constant" (a deeper sigmoid network prone to
  vanishing gradients) https://taourl.com/read-2391810.html
Setup: 12 x (Linear(32, 32) + Sigmoid), Linear(32, 4), CrossEntropyLoss, SGD(lr=0.05),
per-epoch train_loss / val_loss / val_acc.
Expected first: vanishing_gradients
Acceptable in top 3: network_too_deep
Symptom: plateau
Fixed (--fix, ReLU and 3 layers): val_acc ~0.9 (buggy: loss flat at ln 4) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(32, 4)
x = torch.randn(1300, 32)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]
layers = []
for _ in range(3 if FIX else 12):
    layers += [nn.Linear(32, 32), nn.ReLU() if FIX else nn.Sigmoid()]
model = nn.Sequential(*layers, nn.Linear(32, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(12):
        total = 0.0
        for i in range(0, 1000, 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 32, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 32, val_loss, val_acc)
