"""SGD with Nesterov momentum and CosineAnnealingWarmRestarts stepped per batch: the loss bumps at each restart and goes on falling.

Report: healthy, in the style of the SGDR recipe (Loshchilov & Hutter 2017) as the PyTorch docs show it:
  `scheduler.step(epoch + i / iters)` inside the batch loop
  https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingWarmRestarts.html
Setup: 3x12x12 images (8 class templates plus noise, standardised), Conv(3,16,3)-ReLU-Pool-Conv(16,32,3)-ReLU-Pool-Linear(32*3*3,8),
CrossEntropyLoss, SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4),
CosineAnnealingWarmRestarts(T_0=3, T_mult=2) stepped per batch, batch 64, 9 epochs (restarts after
epochs 3 and 9), per-epoch train_loss / train_acc / val_loss / val_acc / lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_acc 0.99, val_loss 0.040 after 9 epochs (bumps after the restart at epoch 3).
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

templates = torch.randn(8, 3, 12, 12)


def make(n):
    y = torch.randint(0, 8, (n,))
    return 0.45 * templates[y] + torch.randn(n, 3, 12, 12), y


x_train, y_train = make(2400)
x_val, y_val = make(600)
mean, std = x_train.mean(), x_train.std()
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(32 * 3 * 3, 8),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=3, T_mult=2)
iters = 2400 // 64
with mlflow.start_run():
    for epoch in range(9):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(2400)
        for i in range(iters):
            idx = perm[i * 64 : (i + 1) * 64]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            scheduler.step(epoch + i / iters)
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        seen = iters * 64
        mlflow.log_metrics(
            {
                "train_loss": total / seen,
                "train_acc": correct / seen,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "lr": optimizer.param_groups[0]["lr"],
            },
            step=epoch,
        )
        print(
            f"epoch {epoch}: train_loss {total / seen:.4f} val_loss {val_loss:.4f} val_acc {val_acc:.3f} lr {optimizer.param_groups[0]['lr']:.4f}"
        )
