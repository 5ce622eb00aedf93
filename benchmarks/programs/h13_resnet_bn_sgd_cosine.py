"""A small ResNet (BasicBlocks with BatchNorm) trained with SGD momentum 0.9, weight decay 5e-4 and CosineAnnealingLR.

Report: healthy, in the style of the classic CIFAR ResNet recipes (kuangliu/pytorch-cifar:
  SGD(lr=0.1, momentum=0.9, weight_decay=5e-4) with CosineAnnealingLR) https://github.com/kuangliu/pytorch-cifar
Setup: conv stem 16 ch + 2 BasicBlocks (16 -> 32 ch, stride 2) with BatchNorm2d, global average
pool, Linear(32, 4); synthetic 3x16x16 images (a class template plus noise, standardised), batch
64, SGD(lr=0.1, momentum=0.9, weight_decay=5e-4), CosineAnnealingLR(T_max=10) stepped per epoch,
per-epoch train_loss / train_acc / val_loss / val_acc / lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_acc 0.99, val_loss 0.018 after 10 epochs (train_loss 0.002, lr annealed to ~0).
"""

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
torch.manual_seed(0)

templates = torch.randn(4, 3, 16, 16)


def make(n):
    y = torch.randint(0, 4, (n,))
    x = 0.5 * templates[y] + torch.randn(n, 3, 16, 16)
    return x, y


x_train, y_train = make(1600)
x_val, y_val = make(400)
mean, std = x_train.mean((0, 2, 3), keepdim=True), x_train.std((0, 2, 3), keepdim=True)
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.linear = nn.Linear(32, 4)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer2(self.layer1(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


model = ResNet()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
with mlflow.start_run():
    for epoch in range(10):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(1600)
        for i in range(0, 1600, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics(
            {
                "train_loss": total / 1600,
                "train_acc": correct / 1600,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "lr": lr,
            },
            step=epoch,
        )
        print(epoch, total / 1600, correct / 1600, val_loss, val_acc, lr)
