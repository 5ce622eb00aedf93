"""StepLR(step_size=epochs // 2, gamma=0.1) meant per epoch but stepped after every batch: the lr is ~0 within the first epoch.

Report: Lornatang/SRGAN-PyTorch issue #1 "Learning rate scheduler is working incorrect" (StepLR with
  step_size=epochs // 2, gamma=0.1 called at each training step: "learning rate is quickly becoming
  zero after a few training steps. The SRGAN does not seem to train")
  https://github.com/Lornatang/SRGAN-PyTorch/issues/1
Setup: 20 standardised features, 5 classes from a random teacher network, MLP 20-128-128-5,
CrossEntropyLoss, SGD(lr=0.05, momentum=0.9), 20 epochs of 47 batches, StepLR(step_size=20 // 2,
gamma=0.1) stepped after every optimizer.step(), per-epoch train_loss / val_loss / val_acc / lr.
Expected first: lr_decay_too_fast
Acceptable in top 3: learning_rate_too_low
Symptom: plateau
Fixed (--fix, scheduler.step() once per epoch): val_acc 0.91 (buggy: lr 5e-6 after the first epoch and ~1e-90 at the end, train loss stuck at 1.43, val_acc 0.44) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

teacher = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 5))


def make(n):
    x = torch.randn(n, 20)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    return x, y


x_train, y_train = make(3000)
x_val, y_val = make(600)
EPOCHS = 20
model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 5))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=EPOCHS // 2, gamma=0.1)
with mlflow.start_run():
    for epoch in range(EPOCHS):
        model.train()
        total, n = 0.0, 0
        lr = optimizer.param_groups[0]["lr"]
        perm = torch.randperm(3000)
        for i in range(0, 3000, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            if not FIX:
                scheduler.step()  # the bug: a per-epoch schedule stepped per batch
            total, n = total + loss.item(), n + 1
        if FIX:
            scheduler.step()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / n, "val_loss": val_loss, "val_acc": val_acc, "lr": lr}, step=epoch)
        print(epoch, total / n, val_loss, val_acc, lr)
