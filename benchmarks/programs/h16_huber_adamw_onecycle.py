"""Regression with HuberLoss, AdamW and OneCycleLR stepped every batch, loss and lr logged per step.

Report: healthy, in the style of the OneCycleLR recipe of the PyTorch docs (scheduler.step() after
  every batch, max_lr with a warm-up then annealing)
  https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html
Setup: 16 standardised features, a non-linear target (standardised) with a few outliers, MLP
16-64-64-1, HuberLoss(delta=1.0), AdamW(weight_decay=1e-2), OneCycleLR(max_lr=1e-2, 12 epochs x 32
steps), per-step train_loss and lr, per-epoch val_loss / val_mae.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss (Huber) ~0.063, val_mae ~0.16 on standardised targets; per-step train_loss noisy (outliers).
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

w = torch.randn(16)


def make(n):
    x = torch.randn(n, 16)
    y = torch.sin(x @ w / 4) * 2 + 0.5 * x[:, 0] * x[:, 1] + 0.1 * torch.randn(n)
    out = torch.rand(n) < 0.02
    y[out] += 8 * torch.randn(int(out.sum()))  # a few outliers: why Huber
    return x, y.unsqueeze(1)


x_train, y_train = make(2048)
x_val, y_val = make(512)
mu, sd = y_train.mean(), y_train.std()
y_train, y_val = (y_train - mu) / sd, (y_val - mu) / sd
model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
criterion = nn.HuberLoss(delta=1.0)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
EPOCHS, STEPS = 12, 2048 // 64
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, epochs=EPOCHS, steps_per_epoch=STEPS)
step = 0
with mlflow.start_run():
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(2048)
        for i in range(0, 2048, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            mlflow.log_metrics({"train_loss": loss.item(), "lr": scheduler.get_last_lr()[0]}, step=step)
            scheduler.step()
            step += 1
        model.eval()
        with torch.no_grad():
            pred = model(x_val)
            val_loss = criterion(pred, y_val).item()
            val_mae = (pred - y_val).abs().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_mae": val_mae}, step=step)
        print(epoch, loss.item(), val_loss, val_mae)
