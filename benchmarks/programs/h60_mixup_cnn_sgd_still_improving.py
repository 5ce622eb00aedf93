"""Healthy: a small CNN image classifier trained with mixup (alpha=1), SGD with momentum and a step decay,
stopped after 12 epochs while the test accuracy is still rising; the mixed training loss stays well above
the test loss, as it does with mixup.

Report: healthy, in the style of facebookresearch/mixup-cifar10's train.py (`mixup_data(x, y, alpha)`,
  `mixup_criterion(criterion, pred, y_a, y_b, lam)`, SGD(lr=0.1, momentum=0.9, weight_decay=1e-4), the
  learning rate divided by 10 at fixed epochs, and the training accuracy counted as
  `lam * correct(y_a) + (1 - lam) * correct(y_b)`) https://github.com/facebookresearch/mixup-cifar10
Setup: synthetic 3x16x16 "CIFAR-like" images of 10 classes (a class pattern at a random shift, random
contrast and colour cast, Gaussian noise), 2,500 training / 500 test images, random horizontal flips;
CNN Conv(3,32)-BN-ReLU-Conv(32,32)-BN-ReLU-Pool-Conv(32,64)-BN-ReLU-Pool-Linear(1024,128)-ReLU-Linear(128,10),
CrossEntropyLoss on mixed pairs (alpha=1.0), SGD(lr=0.1, momentum=0.9, weight_decay=1e-4), lr x0.1 at epoch
9, batch 64, 12 epochs; per-epoch train_loss / train_acc (mixup-weighted), test_loss / test_acc, lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix, a healthy run): test_acc 0.50 -> 0.84 -> 0.93 (epoch 3) -> 0.96 -> 0.984 after the lr drop at
epoch 9 -> 0.986 at epoch 11, test_loss 1.84 -> 0.23 (noisy: 0.30 -> 0.46 -> 0.25 between epochs 4 and 7);
train_loss (on mixed pairs) 1.92 -> 0.88 and mixup-weighted train_acc 0.34 -> 0.75, both far from the test
figures, as mixup makes them (checked; 42 s CPU, 180 s wall on the heavily loaded 2-core machine).
"""

import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
N_CLASSES = 10
patterns = torch.randn(N_CLASSES, 3, 20, 20)
patterns = nn.functional.avg_pool2d(patterns, 3, 1, 1) * 2.0  # smooth blobs, not pixel noise


def make(n):
    y = torch.tensor(rng.integers(0, N_CLASSES, n))
    x = torch.empty(n, 3, 16, 16)
    for i in range(n):
        dy, dx = rng.integers(0, 5, 2)
        img = patterns[y[i], :, dy : dy + 16, dx : dx + 16] * rng.uniform(0.5, 1.2)
        x[i] = img + torch.tensor(rng.normal(0, 0.3, 3), dtype=torch.float32)[:, None, None]
    x += 0.9 * torch.randn_like(x)
    return x, y


x_train, y_train = make(2500)
x_test, y_test = make(500)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)


def mixup_data(x, y, alpha=1.0):
    """Returns mixed inputs, pairs of targets, and lambda."""
    lam = np.random.beta(alpha, alpha) if alpha > 0 else 1.0
    index = torch.randperm(x.size(0))
    mixed_x = lam * x + (1 - lam) * x[index, :]
    return mixed_x, y, y[index], lam


def mixup_criterion(criterion, pred, y_a, y_b, lam):
    return lam * criterion(pred, y_a) + (1 - lam) * criterion(pred, y_b)


model = nn.Sequential(
    nn.Conv2d(3, 32, 3, padding=1),
    nn.BatchNorm2d(32),
    nn.ReLU(),
    nn.Conv2d(32, 32, 3, padding=1),
    nn.BatchNorm2d(32),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1),
    nn.BatchNorm2d(64),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(64 * 4 * 4, 128),
    nn.ReLU(),
    nn.Linear(128, N_CLASSES),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[9], gamma=0.1)
np.random.seed(0)

with mlflow.start_run():
    mlflow.log_params({"lr": 0.1, "alpha": 1.0, "batch_size": 64, "epochs": 12, "n_classes": N_CLASSES})
    for epoch in range(12):
        model.train()
        train_loss, correct, total = 0.0, 0.0, 0
        for inputs, targets in train_loader:
            flip = torch.rand(len(inputs)) < 0.5
            inputs = torch.where(flip[:, None, None, None], inputs.flip(3), inputs)
            inputs, targets_a, targets_b, lam = mixup_data(inputs, targets, 1.0)
            outputs = model(inputs)
            loss = mixup_criterion(criterion, outputs, targets_a, targets_b, lam)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_loss += loss.item() * len(targets)
            predicted = outputs.argmax(1)
            total += len(targets)
            correct += lam * (predicted == targets_a).sum().item() + (1 - lam) * (predicted == targets_b).sum().item()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        model.eval()
        with torch.no_grad():
            out = model(x_test)
            test_loss = criterion(out, y_test).item()
            test_acc = (out.argmax(1) == y_test).float().mean().item()
        metrics = {
            "train_loss": train_loss / total,
            "train_acc": correct / total,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": lr,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
