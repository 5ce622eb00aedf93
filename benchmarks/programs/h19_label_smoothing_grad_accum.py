"""Label-smoothing cross-entropy with gradient accumulation, a running-average loss logged every 20 steps (tqdm style).

Report: healthy, in the style of the timm / HF training loops: CrossEntropyLoss(label_smoothing=0.1)
  (whose floor is well above 0), loss divided by the accumulation steps, the running mean that a
  tqdm progress bar shows logged every 20 optimiser steps
  https://huggingface.co/docs/accelerate/usage_guides/gradient_accumulation
Setup: 10 classes from a random teacher MLP on 32 standardised features, MLP 32-128-128-10,
CrossEntropyLoss(label_smoothing=0.1), micro-batches of 16 accumulated 4 times (effective batch
64), Adam(lr=1e-3), `loss` = running average over the last 20 optimiser steps, val_loss / val_acc
per epoch (val_loss with the same smoothed loss).
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_acc ~0.82-0.84, val_loss ~0.96 (smoothed loss: its floor is ~0.5), running loss flat after epoch 3.
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

teacher = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 10))


def make(n):
    x = torch.randn(n, 32)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    return x, y


x_train, y_train = make(4096)
x_val, y_val = make(1000)
model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
ACCUM, MICRO = 4, 16
step, running, count = 0, 0.0, 0
with mlflow.start_run():
    for epoch in range(8):
        model.train()
        perm = torch.randperm(4096)
        optimizer.zero_grad()
        for k, i in enumerate(range(0, 4096, MICRO)):
            idx = perm[i : i + MICRO]
            loss = criterion(model(x_train[idx]), y_train[idx]) / ACCUM
            loss.backward()
            running += loss.item()
            if (k + 1) % ACCUM == 0:
                optimizer.step()
                optimizer.zero_grad()
                step += 1
                count += 1
                if step % 20 == 0:
                    mlflow.log_metric("loss", running / count, step=step)  # what tqdm's postfix shows
                    running, count = 0.0, 0
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_acc": val_acc}, step=step)
        print(epoch, val_loss, val_acc)
