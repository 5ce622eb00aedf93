"""A small CIFAR-style CNN trained the way the torchvision/pytorch-cifar recipes train: RandomCrop with padding and RandomHorizontalFlip on the training set, SGD with momentum and weight decay, cosine annealing, per-epoch train and test metrics.

Report: healthy, in the style of kuangliu/pytorch-cifar's main.py (transforms.RandomCrop(32, padding=4),
  transforms.RandomHorizontalFlip(), Normalize; SGD(lr=0.1, momentum=0.9, weight_decay=5e-4),
  CosineAnnealingLR(T_max=epochs); train() and test() each epoch printing loss and accuracy)
  https://github.com/kuangliu/pytorch-cifar
Setup: synthetic CIFAR-like 3x16x16 images, 6 classes (a class-specific coloured 6x6 motif, mirrored
at random so flips keep the label, at a random position, on a noisy background), 1800 training and
600 test images, normalised with the training set's per-channel mean and std; the two transforms
written by hand on tensors (no torchvision): random crop of 16 from a 2-pixel zero padding and a
horizontal flip with p 0.5; Conv(3,32)-BN-ReLU-Conv(32,32)-BN-ReLU-MaxPool, Conv(32,64)-BN-ReLU-MaxPool,
global average pool, Linear(64, 6); CrossEntropyLoss, SGD(lr=0.05, momentum=0.9, weight_decay=5e-4),
CosineAnnealingLR(T_max=8), batch 64, 8 epochs; per-epoch train_loss / train_acc / test_loss /
test_acc / lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: test_acc 0.75 after the first epoch, 1.0 from the second on, test_loss 0.59 -> 0.003 and
train_loss 1.32 -> 0.010 (augmented batches) after 8 epochs as the cosine schedule runs out (138 s wall on a
loaded 2-core machine, 68 s CPU).
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
SIZE, CLASSES = 16, 6
motifs = torch.randn(CLASSES, 3, 6, 6)


def make(n):
    y = torch.randint(0, CLASSES, (n,))
    x = 0.8 * torch.randn(n, 3, SIZE, SIZE)
    rows, cols = torch.randint(0, SIZE - 6, (n,)), torch.randint(0, SIZE - 6, (n,))
    flip = torch.rand(n) < 0.5
    for i in range(n):
        motif = motifs[y[i]].flip(2) if flip[i] else motifs[y[i]]
        x[i, :, rows[i] : rows[i] + 6, cols[i] : cols[i] + 6] += 1.5 * motif
    return x, y


class RandomCrop:
    def __init__(self, size, padding):
        self.size, self.padding = size, padding

    def __call__(self, batch):
        padded = nn.functional.pad(batch, [self.padding] * 4)
        out = torch.empty_like(batch)
        offsets = torch.randint(0, 2 * self.padding + 1, (len(batch), 2))
        for i, (r, c) in enumerate(offsets.tolist()):
            out[i] = padded[i, :, r : r + self.size, c : c + self.size]
        return out


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, batch):
        flip = torch.rand(len(batch)) < self.p
        batch = batch.clone()
        batch[flip] = batch[flip].flip(3)
        return batch


x_train, y_train = make(1800)
x_test, y_test = make(600)
mean, std = x_train.mean((0, 2, 3), keepdim=True), x_train.std((0, 2, 3), keepdim=True)
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
transforms = [RandomCrop(SIZE, padding=2), RandomHorizontalFlip()]

net = nn.Sequential(
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
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(64, CLASSES),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=8)


def train(epoch):
    net.train()
    train_loss, correct, total = 0.0, 0, 0
    perm = torch.randperm(len(x_train))
    for i in range(0, len(x_train), 64):
        idx = perm[i : i + 64]
        inputs = x_train[idx]
        for t in transforms:
            inputs = t(inputs)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, y_train[idx])
        loss.backward()
        optimizer.step()
        train_loss += loss.item() * len(idx)
        correct += (outputs.argmax(1) == y_train[idx]).sum().item()
        total += len(idx)
    return train_loss / total, correct / total


def test(epoch):
    net.eval()
    with torch.no_grad():
        outputs = net(x_test)
        return criterion(outputs, y_test).item(), (outputs.argmax(1) == y_test).float().mean().item()


with mlflow.start_run():
    for epoch in range(8):
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train(epoch)
        test_loss, test_acc = test(epoch)
        scheduler.step()
        metrics = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
        mlflow.log_metrics({**metrics, "lr": lr}, step=epoch)
        print(epoch, {k: round(v, 3) for k, v in metrics.items()})
