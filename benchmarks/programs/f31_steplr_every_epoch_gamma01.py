"""StepLR(step_size=1, gamma=0.1): the learning rate is 1e-5 of its start by epoch 5 and learning stops.

Report: huggingface/transformers issue #23986 "learn_rate behavior is not expected when using
  TrainingArguments" (the learning rate schedule not doing what the user expects)
  https://github.com/huggingface/transformers/issues/23986 ; ReduceLROnPlateau/scheduler advice
  https://taourl.com/read-3018068.html
Setup: MLP 20-64-64-4, SGD(lr=0.05, momentum=0.9), StepLR(step_size=1, gamma=0.1) stepped every
epoch, per-epoch train_loss / val_loss / val_acc / lr.
Expected first: lr_decay_too_fast
Acceptable in top 3: learning_rate_too_low
Symptom: plateau
Fixed (--fix, StepLR(step_size=10, gamma=0.5)): val_acc ~0.95 (buggy: stalls at the level of epoch 2) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(20, 4)
x = torch.randn(1300, 20)
y = (x @ w).argmax(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10 if FIX else 1, gamma=0.5 if FIX else 0.1)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(15):
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
        mlflow.log_metrics(
            {"train_loss": total / 32, "val_loss": val_loss, "val_acc": val_acc, "lr": scheduler.get_last_lr()[0]},
            step=epoch,
        )
        scheduler.step()
        print(epoch, total / 32, val_loss, val_acc)
