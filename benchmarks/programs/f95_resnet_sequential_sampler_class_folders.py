"""A small ResNet trained from a dataset stored class folder by class folder, through a DataLoader built without shuffle=True (a SequentialSampler): every batch holds one class, and the model chases whichever class it saw last.

Report: Deci-AI/super-gradients issue #416 "Default dataloader params have shuffle=False" ("By
  default, it does not pass shuffle=True to the dataloader, so SequentialSampler gets instantiated.
  In training on Imagenet it makes NN see only examples of a single class which quickly throws it out
  of the minima. Passing shuffle=True to the dataloader params solves the issue")
  https://github.com/Deci-AI/super-gradients/issues/416
Setup: an ImageNet-like folder layout at small scale: 10 classes of 3x16x16 images (a class colour
and an oriented grating at a random phase, plus noise), listed class after class as a folder dataset
lists them, 1500 training / 500 validation images; a ResNet-style network (Conv-BN-ReLU stem, two
BasicBlocks with BatchNorm, the second with stride 2 and a 1x1 projection, global average pool,
Linear(64, 10)); CrossEntropyLoss, SGD(momentum=0.9, nesterov=True, weight_decay=1e-4) as in the
report's train_params, lr 0.05 (the report's 0.001 is for far longer ImageNet epochs), batch 64,
`DataLoader(train_set, batch_size=64)` with the report's dataloader_params (no shuffle), 5 epochs;
per-epoch Train_Loss, Valid_Loss and Valid_Accuracy (super-gradients' metric names).
Expected first: data_not_shuffled
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, dataloader_params with shuffle=True): Valid_Accuracy 0.974 -> 1.0 from the second epoch,
Valid_Loss 0.171 -> 0.005, Train_Loss 0.994 -> 0.005 (buggy: Valid_Accuracy 0.100, 0.098, 0.204, 0.208,
0.224, Valid_Loss 3.44 -> 2.05, Train_Loss 3.00 -> 2.39, above ln 10 = 2.30 in every epoch: each
stretch of one-class batches undoes the last) (checked; 29 s / 28 s wall on a loaded 2-core machine,
~13 s / ~12 s CPU).
"""

import math
import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
N_CLASSES, SIZE = 10, 16
palette = torch.rand(N_CLASSES, 3) * 2 - 1
angles = torch.arange(N_CLASSES) * math.pi / N_CLASSES
gy, gx = torch.meshgrid(torch.arange(SIZE * 1.0), torch.arange(SIZE * 1.0), indexing="ij")


def class_folder(c, n):
    phase = torch.rand(n, 1, 1) * 2 * math.pi
    wave = torch.sin(0.9 * (gx * math.cos(angles[c]) + gy * math.sin(angles[c])) + phase)
    x = 0.6 * palette[c].view(1, 3, 1, 1) + 0.8 * wave.unsqueeze(1) + 1.2 * torch.randn(n, 3, SIZE, SIZE)
    return x, torch.full((n,), c)


def folder_dataset(per_class):
    xs, ys = zip(*[class_folder(c, per_class) for c in range(N_CLASSES)])  # class 0's folder, then 1's, ...
    return torch.utils.data.TensorDataset(torch.cat(xs), torch.cat(ys))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.layer1 = BasicBlock(32, 32, 1)
        self.layer2 = BasicBlock(32, 64, 2)
        self.fc = nn.Linear(64, N_CLASSES)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


train_set, valid_set = folder_dataset(150), folder_dataset(50)
dataloader_params = {"batch_size": 64, "shuffle": True} if FIX else {"batch_size": 64}  # the report's buggy params
train_loader = torch.utils.data.DataLoader(train_set, **dataloader_params)
valid_loader = torch.utils.data.DataLoader(valid_set, batch_size=250)
model = ResNetTiny()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)

with mlflow.start_run():
    mlflow.log_params({"max_epochs": 5, "initial_lr": 0.05, "optimizer": "SGD", **dataloader_params})
    for epoch in range(5):
        model.train()
        total = 0.0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        model.eval()
        valid_loss, correct = 0.0, 0
        with torch.no_grad():
            for x, y in valid_loader:
                out = model(x)
                valid_loss += criterion(out, y).item() * len(y)
                correct += (out.argmax(1) == y).sum().item()
        metrics = {
            "Train_Loss": total / len(train_set),
            "Valid_Loss": valid_loss / len(valid_set),
            "Valid_Accuracy": correct / len(valid_set),
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 3) for k, v in metrics.items()})
