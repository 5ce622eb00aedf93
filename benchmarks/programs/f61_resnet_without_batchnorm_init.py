"""A ResNet with its BatchNorm layers taken out but the usual He (fan_out) initialisation kept: every residual block doubles the activations' variance, the first logits are in the thousands and SGD blows up.

Report: huangleiBuaa/ONI issue #1 "Loss on Cifar10 with ResNet18 goes to NaN" (a ResNet trained
  without BatchNorm: the training loss goes to NaN after a few iterations; answer: without BN the
  residual network needs a smaller initial scale, e.g. estimated so that each layer's activation
  has unit variance) https://github.com/huangleiBuaa/ONI/issues/1
Setup: CIFAR-style ResNet without normalisation on synthetic 3x16x16 images (10 classes set by
colour and texture frequency, plus noise): stem Conv(3,16,3,stride 2), 16 basic blocks x = relu(x + conv(relu(conv(x))))
at 16 channels 8x8, global average pool, Linear(16,10); kaiming_normal_(mode="fan_out",
nonlinearity="relu") on every conv as torchvision does; CrossEntropyLoss, SGD(lr=0.02,
momentum=0.9, weight_decay=5e-4), batch 64, 1200 training images, 5 epochs; per-epoch train_loss /
train_acc / val_loss / val_acc.
Expected first: bad_weight_init
Acceptable in top 3: exploding_gradients, initial_loss_mismatch
Symptom: nonfinite_loss, diverging, plateau
Fixed (--fix, the second conv of every residual branch initialised to zero, Fixup/SkipInit style,
so each block starts as the identity): val_acc 0.44, val_loss 1.47 after 5 epochs, still climbing (buggy: initial logits std ~14, train_loss and val_loss NaN from the first epoch, accuracy at chance 0.1) (checked).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

colours = torch.randn(10, 3) * 0.5


def make(n):
    y = torch.randint(0, 10, (n,))
    freq = (1 + y % 5).float()[:, None, None, None]
    grid = torch.arange(16).float()
    texture = torch.sin(freq * grid[None, None, :, None] * 0.35) * torch.cos(freq * grid[None, None, None, :] * 0.35)
    sign = torch.where(y < 5, 1.0, -1.0)[:, None, None, None]
    return colours[y][:, :, None, None] + sign * texture + 0.6 * torch.randn(n, 3, 16, 16), y


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class ResNetNoBN(nn.Module):
    def __init__(self, depth=16, c=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, stride=2, padding=1, bias=False)
        self.blocks = nn.Sequential(*[Block(c) for _ in range(depth)])
        self.fc = nn.Linear(c, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if FIX:
            for b in self.blocks:
                nn.init.zeros_(b.conv2.weight)

    def forward(self, x):
        h = self.blocks(F.relu(self.stem(x)))
        return self.fc(h.mean((2, 3)))


x_train, y_train = make(1200)
x_val, y_val = make(400)
model = ResNetNoBN()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
with mlflow.start_run():
    for epoch in range(5):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(1200)
        for i in range(0, 1200, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        metrics = {"train_loss": total / 1200, "train_acc": correct / 1200, "val_loss": val_loss, "val_acc": val_acc}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 3) for k, v in metrics.items()})
