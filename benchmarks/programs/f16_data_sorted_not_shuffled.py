"""DataLoader over a dataset sorted by class with shuffle=False: each batch holds one class.

Report: Q&A on a validation accuracy that never rises while the training loss saw-tooths, fixed by
  shuffle=True (batches ordered by label); see the training-curves notes
  https://kcnote.github.io/posts/ML26-Overfitting/ and "Training loss not convergence"
  https://github.com/Lightning-AI/pytorch-lightning/issues/4862
Setup: ImageFolder-like data (read class by class), DataLoader(batch_size=32, shuffle=False),
small CNN on 1x16x16 images, SGD(lr=0.05, momentum=0.9), per-step `loss` every 5 batches, per-epoch val_acc.
Expected first: data_not_shuffled
Acceptable in top 3: -
Symptom: oscillating_loss, plateau
Fixed (--fix, shuffle=True): val_acc 1.0 (checked).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

templates = torch.randn(4, 1, 16, 16)


def make(n):
    y = torch.arange(4).repeat_interleave(n // 4)  # folder by folder: class 0 first, then 1, ...
    return templates[y] + 1.0 * torch.randn(n, 1, 16, 16), y


x_train, y_train = make(1200)
x_val, y_val = make(200)
loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=FIX)

model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 64, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    step = 0
    for epoch in range(6):
        for batch_idx, (xb, yb) in enumerate(loader):
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            step += 1
            if batch_idx % 5 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
        with torch.no_grad():
            acc = (model(x_val).argmax(1) == y_val).float().mean().item()
        mlflow.log_metric("val_acc", acc, step=step)
        print(epoch, acc)
