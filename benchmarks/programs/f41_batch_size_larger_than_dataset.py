"""The CIFAR-tutorial CNN with batch_size=4096 instead of 4 on a 2000-image set: one update per epoch, the model barely moves.

Report: pytorch/pytorch issue #9170 "Big drop in performance for larger batch size for otherwise same
  training script" (the tutorial's CNN and SGD(lr=0.001, momentum=0.9): batch size 4 gives 58%
  accuracy, 4096 gives 19%) https://github.com/pytorch/pytorch/issues/9170
Setup: Conv(3,6,5)-Pool-Conv(6,16,3)-Pool-Linear(64,120)-Linear(120,84)-Linear(84,10) on synthetic 3x16x16 images
(class templates plus noise, in [-1, 1]), 10 classes, 2000 training images, SGD(lr=0.001,
momentum=0.9), batch_size=4096 (the whole set in one batch), 10 epochs, per-epoch train_loss /
val_loss / val_acc.
Expected first: batch_size_too_large
Acceptable in top 3: learning_rate_too_low
Symptom: not_converged, plateau
Fixed (--fix, batch_size=4 as in the tutorial): val_acc 0.85 after 10 epochs (buggy: 10 updates in all, loss 2.303 ~ ln 10, val_acc 0.09) (checked).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

templates = torch.rand(10, 3, 16, 16) * 2 - 1


def make(n):
    y = torch.randint(0, 10, (n,))
    x = (0.6 * templates[y] + 0.6 * torch.randn(n, 3, 16, 16)).clamp(-1, 1)
    return x, y


x_train, y_train = make(2000)
x_val, y_val = make(500)
BATCH = 4 if FIX else 4096


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 3)
        self.fc1 = nn.Linear(16 * 2 * 2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
with mlflow.start_run():
    for epoch in range(10):
        net.train()
        total, n = 0.0, 0
        perm = torch.randperm(2000)
        for i in range(0, 2000, BATCH):
            idx = perm[i : i + BATCH]
            optimizer.zero_grad()
            loss = criterion(net(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        net.eval()
        with torch.no_grad():
            out = net(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / n, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(epoch, total / n, val_loss, val_acc)
