"""A small CNN image classifier trained with SGD under a cyclical learning rate (CyclicLR, "triangular2": the rate climbs from 0.002 to 0.05 and back every 4 epochs, the amplitude halved each cycle, momentum cycled inversely), stepped after every batch as the PyTorch documentation shows; the training loss rises a little on each climb and falls on each descent.

Report: healthy, in the style of the PyTorch CyclicLR documentation (`scheduler = CyclicLR(optimizer,
  base_lr=0.01, max_lr=0.1)`, `scheduler.step()` after each batch) and Leslie Smith, "Cyclical Learning Rates
  for Training Neural Networks" (WACV 2017, step size 2-10 epochs' iterations, the triangular2 policy)
  https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CyclicLR.html
Setup: synthetic 1x16x16 grey images of 6 shape classes (horizontal bar, vertical bar, cross, hollow
square, diagonal, blob) at random positions and sizes, with clutter and pixel noise, 4,800 training /
1,200 validation images, random horizontal shifts as augmentation; Conv(1,16,3)-BN-ReLU-MaxPool-
Conv(16,32,3)-BN-ReLU-MaxPool-Linear(512, 64)-ReLU-Dropout(0.3)-Linear(64, 6); CrossEntropyLoss,
SGD(momentum 0.9, weight_decay 5e-4), CyclicLR(base_lr=0.002, max_lr=0.05, step_size_up=2 epochs of
batches, mode="triangular2"), batch 64, 12 epochs (1.5 cycles); logs train_loss and lr every 25 batches,
per-epoch val_loss and val_acc.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (healthy; reached): val_acc 0.47 -> 0.84 -> 0.92 (epoch 4, the rate at its base)
-> 0.91 -> 0.95 (epoch 8) -> 0.96 at epoch 12, val_loss 1.17 -> 0.12, rising a little while the rate climbs
(0.209 -> 0.232 at epoch 5, 0.134 -> 0.175 at epoch 11) and falling on each descent; train_loss (mean over
25 batches) 1.75 -> 0.14 (checked; 25 s CPU, 69 s wall on a loaded 2-core machine).
"""

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
CLASSES, SIZE = 6, 16


def image(label):
    img = torch.zeros(SIZE, SIZE)
    r, c = torch.randint(3, SIZE - 3, (2,)).tolist()
    k = int(torch.randint(2, 4, ()))
    if label == 0:
        img[r, max(c - k, 0) : c + k + 1] = 1
    elif label == 1:
        img[max(r - k, 0) : r + k + 1, c] = 1
    elif label == 2:
        img[r, max(c - k, 0) : c + k + 1] = 1
        img[max(r - k, 0) : r + k + 1, c] = 1
    elif label == 3:
        img[max(r - k, 0) : r + k + 1, max(c - k, 0) : c + k + 1] = 1
        img[max(r - k + 1, 0) : r + k, max(c - k + 1, 0) : c + k] = 0
    elif label == 4:
        for d in range(-k, k + 1):
            if 0 <= r + d < SIZE and 0 <= c + d < SIZE:
                img[r + d, c + d] = 1
    else:
        yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        img = torch.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2.0 * k**2))
    clutter = (torch.rand(SIZE, SIZE) < 0.04).float() * 0.8
    return (img + clutter + 0.35 * torch.randn(SIZE, SIZE)).unsqueeze(0)


def dataset(n):
    y = torch.randint(0, CLASSES, (n,))
    return torch.stack([image(int(label)) for label in y]), y


x_train, y_train = dataset(4800)
x_val, y_val = dataset(1200)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1),
    nn.BatchNorm2d(16),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.BatchNorm2d(32),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(32 * 4 * 4, 64),
    nn.ReLU(),
    nn.Dropout(0.3),
    nn.Linear(64, CLASSES),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9, weight_decay=5e-4)
scheduler = torch.optim.lr_scheduler.CyclicLR(
    optimizer, base_lr=0.002, max_lr=0.05, step_size_up=2 * len(train_loader), mode="triangular2"
)

with mlflow.start_run():
    mlflow.log_params({"base_lr": 0.002, "max_lr": 0.05, "mode": "triangular2", "batch_size": 64, "epochs": 12})
    step = 0
    for epoch in range(12):
        model.train()
        running, count = 0.0, 0
        for xb, yb in train_loader:
            shift = int(torch.randint(-2, 3, ()))
            xb = torch.roll(xb, shifts=shift, dims=3)  # augmentation: a random horizontal shift
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running, count, step = running + loss.item(), count + 1, step + 1
            if step % 25 == 0:
                mlflow.log_metrics({"train_loss": running / count, "lr": scheduler.get_last_lr()[0]}, step=step)
                running, count = 0.0, 0
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_acc": val_acc}, step=step)
        print(epoch, step, round(val_loss, 4), round(val_acc, 4), round(scheduler.get_last_lr()[0], 5))
