"""`next(iter(train_loader))` inside the loop with shuffle=False: the model sees the same batch every step.

Report: Q&A "When implementing an RNN the loss is the same after each epoch" (the training loop
  feeds the same data each iteration) https://taourl.com/read-1998536.html
Setup: DataLoader(batch_size=64, shuffle=False); the loop does `x, y = next(iter(train_loader))`
each step; MLP 20-128-4, Adam(lr=1e-3), per-step `train_loss` every 10 steps and per-"epoch" val_loss / val_acc.
Expected first: repeated_batch
Acceptable in top 3: -
Symptom: overfitting
Fixed (--fix, iterate over the loader): val_acc ~0.9 (buggy: train loss -> 0, val_loss rises, val_acc ~0.5) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(20, 4)
x = torch.randn(2300, 20)
y = (x @ w + 0.5 * torch.randn(2300, 4)).argmax(1)
train_loader = DataLoader(TensorDataset(x[:2000], y[:2000]), batch_size=64, shuffle=FIX)
x_val, y_val = x[2000:], y[2000:]
model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    step = 0
    for epoch in range(10):
        batches = iter(train_loader)
        for _ in range(len(train_loader)):
            xb, yb = next(batches) if FIX else next(iter(train_loader))
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            step += 1
            if step % 10 == 0:
                mlflow.log_metric("train_loss", loss.item(), step=step)
        with torch.no_grad():
            out = model(x_val)
            mlflow.log_metric("val_loss", criterion(out, y_val).item(), step=step)
            mlflow.log_metric("val_acc", (out.argmax(1) == y_val).float().mean().item(), step=step)
        print(epoch, loss.item(), (out.argmax(1) == y_val).float().mean().item())
