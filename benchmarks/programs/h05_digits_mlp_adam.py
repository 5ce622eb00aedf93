"""An MLP on 8x8 digit images (sklearn digits style: border pixels always zero), Adam, per-epoch metrics.

Report: healthy, in the style of the sklearn digits / MNIST MLP tutorials, e.g. the Keras
  basic-classification tutorial discussed at https://datascience.stackexchange.com/questions/39929/
Setup: 8x8 images scaled to 0..1 with the outer columns always zero, Flatten-Linear(64,64)-ReLU-
Linear(64,10), Adam(lr=1e-3), CrossEntropyLoss, per-epoch train_loss / val_loss / val_acc.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_acc ~0.97, val_loss ~0.1 after 15 epochs.
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

templates = torch.rand(10, 8, 6) * 16


def make(n):
    y = torch.randint(0, 10, (n,))
    img = torch.zeros(n, 8, 8)
    img[:, :, 1:7] = (templates[y] + 3 * torch.randn(n, 8, 6)).clamp(0, 16).round()
    return img / 16, y


x_train, y_train = make(1400)
x_val, y_val = make(360)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(15):
        model.train()
        perm = torch.randperm(1400)
        total = 0.0
        for i in range(0, 1400, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 1400, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / 1400, val_loss, val_acc)
