"""Healthy: a PointNet classifier for point clouds of five shape classes (a shared per-point MLP as 1x1 Conv1d + BatchNorm + ReLU, a symmetric max-pool over the points, a fully connected head with dropout), log-softmax and NLLLoss, Adam and StepLR; per epoch train and validation loss and accuracy.

Report: healthy, in the style of fxia22/pointnet.pytorch utils/train_classification.py (PointNetCls with
  feature_transform off: Conv1d(3, 64, 1) - Conv1d(64, 128, 1) - Conv1d(128, 1024, 1) with BatchNorm1d and ReLU,
  torch.max over the points, Linear(1024, 512) - Linear(512, 256) - Dropout(p=0.3) - Linear(256, k), log_softmax,
  F.nll_loss; optim.Adam(lr=0.001, betas=(0.9, 0.999)), StepLR(step_size=20, gamma=0.5); random rotation about the
  up axis and Gaussian jitter as its ShapeNetDataset augmentation) https://github.com/fxia22/pointnet.pytorch
Setup: as the example scaled down for a CPU (widths 64-128-256 and a 256-128-k head, no input T-Net), on
synthetic ModelNet-like clouds of 128 points sampled from the surfaces of five shapes (sphere, cube, cylinder,
cone, torus) with random size and aspect, centred and scaled into the unit sphere as the example's loader does,
training clouds rotated at random about the up axis and jittered (sigma 0.02); 1,000 training / 300 validation
clouds, batch 32, 16 epochs, StepLR(step_size=6, gamma=0.5); per epoch `train_loss`, `train_acc`, `val_loss`,
`val_acc` and `lr`.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix: healthy): train_loss 0.594 -> 0.252 -> 0.078 (epoch 3) -> 0.0095 at epoch 16, train_acc 0.82 ->
1.00; val_loss 1.13 -> 0.72 -> 0.16, a rise to 0.60 at epoch 4 and 0.12 at epoch 6 (BatchNorm running statistics
still settling at lr 1e-3), then 0.012 -> 0.0053 after the first StepLR halving (one bump to 0.027 at epoch 10), val_acc 0.57 -> 0.80 ->
1.00 from epoch 7 on (0.993-1.000) (checked; 88 s wall / 39 s CPU on the 2-core machine shared by three helpers,
OMP_NUM_THREADS=1).
"""

import math

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
torch.set_num_threads(1)
N_POINTS, N_TRAIN, N_VAL, BATCH, EPOCHS, K = 128, 1000, 300, 32, 16, 5


def sample_shape(cls, n):
    u, v = torch.rand(n), torch.rand(n)
    if cls == 0:  # sphere
        p = torch.randn(n, 3)
        p = p / p.norm(dim=1, keepdim=True)
    elif cls == 1:  # cube surface
        p = 2 * torch.rand(n, 3) - 1
        face = torch.randint(0, 3, (n,))
        p[torch.arange(n), face] = torch.sign(torch.randn(n))
    elif cls == 2:  # cylinder side and caps
        a = 2 * math.pi * u
        p = torch.stack([torch.cos(a), torch.sin(a), 2 * v - 1], 1)
        cap = torch.rand(n) < 0.25
        r = torch.sqrt(torch.rand(n))
        p[cap] = torch.stack([r * torch.cos(a), r * torch.sin(a), torch.sign(torch.randn(n))], 1)[cap]
    elif cls == 3:  # cone
        a, h = 2 * math.pi * u, torch.sqrt(v)
        p = torch.stack([h * torch.cos(a), h * torch.sin(a), 1 - 2 * h], 1)
    else:  # torus
        a, b = 2 * math.pi * u, 2 * math.pi * v
        p = torch.stack(
            [(1 + 0.4 * torch.cos(b)) * torch.cos(a), (1 + 0.4 * torch.cos(b)) * torch.sin(a), 0.4 * torch.sin(b)], 1
        )
    p = p * (0.7 + 0.6 * torch.rand(1, 3))  # random size and aspect
    p = p - p.mean(0, keepdim=True)
    return p / p.norm(dim=1).max()  # into the unit sphere


def make_set(n):
    labels = torch.randint(0, K, (n,))
    return torch.stack([sample_shape(int(c), N_POINTS) for c in labels]), labels


def augment(points):  # random rotation about the up axis, then jitter
    theta = 2 * math.pi * torch.rand(points.shape[0])
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.zeros(points.shape[0], 3, 3)
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    return points @ rot.transpose(1, 2) + 0.02 * torch.randn_like(points)


class PointNetCls(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = nn.Conv1d(3, 64, 1), nn.Conv1d(64, 128, 1), nn.Conv1d(128, 256, 1)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(64), nn.BatchNorm1d(128), nn.BatchNorm1d(256)
        self.fc1, self.fc2, self.fc3 = nn.Linear(256, 256), nn.Linear(256, 128), nn.Linear(128, k)
        self.bn4, self.bn5 = nn.BatchNorm1d(256), nn.BatchNorm1d(128)
        self.dropout = nn.Dropout(p=0.3)

    def forward(self, x):  # x: (batch, 3, n_points)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        x = torch.max(x, 2)[0]  # symmetric function over the points
        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.dropout(self.fc2(x))))
        return F.log_softmax(self.fc3(x), dim=1)


x_train, y_train = make_set(N_TRAIN)
x_val, y_val = make_set(N_VAL)
classifier = PointNetCls(K)
optimizer = torch.optim.Adam(classifier.parameters(), lr=0.001, betas=(0.9, 0.999))
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=6, gamma=0.5)

with mlflow.start_run():
    mlflow.log_params({"lr": 0.001, "batch_size": BATCH, "epochs": EPOCHS, "num_points": N_POINTS})
    mlflow.log_params({"step_size": 6, "gamma": 0.5, "optimizer": "Adam"})
    for epoch in range(EPOCHS):
        classifier.train()
        perm = torch.randperm(N_TRAIN)
        total_loss, correct = 0.0, 0
        for i in range(0, N_TRAIN, BATCH):
            idx = perm[i : i + BATCH]
            points, target = augment(x_train[idx]).transpose(2, 1), y_train[idx]
            optimizer.zero_grad()
            pred = classifier(points)
            loss = F.nll_loss(pred, target)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            correct += (pred.argmax(1) == target).sum().item()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        classifier.eval()
        with torch.no_grad():
            pred = classifier(x_val.transpose(2, 1))
            val_loss = F.nll_loss(pred, y_val).item()
            val_acc = (pred.argmax(1) == y_val).float().mean().item()
        metrics = {
            "train_loss": total_loss / N_TRAIN,
            "train_acc": correct / N_TRAIN,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": lr,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(f"[{epoch}] " + " ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
