"""Transfer-learning freeze loop that also freezes the new head: nothing trains.

Report: ronghuaiyang/arcface-pytorch issue #56 "RuntimeError: element 0 of tensors does not require
  grad and does not have a grad_fn" (the user adds `loss.requires_grad = True`; then the loss does not
  decline and the accuracy stays zero) https://github.com/ronghuaiyang/arcface-pytorch/issues/56
Setup: a "pretrained" CNN backbone plus a new Linear head; the user replaces the head first and
then runs `for p in model.parameters(): p.requires_grad = False`, so the head is frozen too; the
backward then raises "element 0 of tensors does not require grad and does not have a grad_fn", which
the user silences with `loss.requires_grad = True`; Adam(lr=1e-3); per-epoch train_loss / val_loss / val_acc.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, freeze first, then replace the head): val_acc 1.0, val_loss 0.49 after 8 epochs (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc(self.features(x))


model = Net()
if FIX:
    for p in model.parameters():
        p.requires_grad = False
    model.fc = nn.Linear(256, 5)
else:
    model.fc = nn.Linear(256, 5)
    for p in model.parameters():
        p.requires_grad = False
templates = torch.randn(5, 3, 16, 16)


def make(n):
    y = torch.randint(0, 5, (n,))
    return templates[y] + 0.5 * torch.randn(n, 3, 16, 16), y


x_train, y_train = make(1000)
x_val, y_val = make(200)
optimizer = torch.optim.Adam([p for p in model.parameters()], lr=1e-3)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(8):
        total = 0.0
        for i in range(0, 1000, 50):
            optimizer.zero_grad()
            out = model(x_train[i : i + 50])
            loss = criterion(out, y_train[i : i + 50])
            if not FIX:
                loss.requires_grad = True  # "fixes" RuntimeError: element 0 of tensors does not require grad
            loss.backward()
            optimizer.step()
            total += loss.item()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 20, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 20, val_loss, val_acc)
