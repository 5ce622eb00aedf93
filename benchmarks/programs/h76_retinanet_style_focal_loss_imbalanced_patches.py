"""A small convolutional objectness classifier over image patches, 5% of them holding an object, trained RetinaNet-style: sigmoid focal loss (alpha 0.25, gamma 2) normalised by the number of positives, and the classifier's bias initialised to the prior -log((1 - 0.01) / 0.01), so the first loss (about 1.1 per positive) comes from the positives, not from the many easy negatives.

Report: healthy, in the style of RetinaNet's classification subnet (Lin et al. 2017, "Focal Loss for Dense
  Object Detection", https://arxiv.org/abs/1708.02002: FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t), alpha 0.25,
  gamma 2, the last conv's bias b = -log((1 - pi) / pi) with pi = 0.01, the loss summed over anchors and
  divided by the number of positive anchors) as torchvision.ops.sigmoid_focal_loss writes it
  https://github.com/pytorch/vision/blob/main/torchvision/ops/focal_loss.py
Setup: synthetic 1x16x16 grey patches of cluttered background (random stripes, blobs of many sizes and
noise) where 5% hold the object (a small dim ring of radius 2-4, partly occluded, at a random place);
5,000 training and 1,000 validation patches; Conv(1,16,3)-ReLU-Conv(16,32,3, stride 2)-ReLU-Conv(32,32,3,
stride 2)-ReLU-global average pool-Linear(32, 1) with the prior bias; focal loss written out as
torchvision's (`reduction="sum"` divided by the positives in the batch), SGD(lr=0.01, momentum=0.9,
weight_decay=1e-4) as RetinaNet, batch 256, 12 epochs with the rate divided by 10 from the 9th; per-epoch
train_loss / val_loss (focal, per positive), val_ap (average precision) and lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (healthy; reached): val_loss 1.03 -> 0.26 after 12 epochs (a bump 0.32 -> 0.36 at epochs 4-5, then
falling again; nearly flat after the rate drop at epoch 9), val_ap 0.11 -> 0.63 (the positives' share is 0.05),
still rising; train_loss 1.09 -> 0.29 (checked; 24 s CPU, 19 s wall on a 2-core machine loaded by other helpers).
"""

import math

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
SIZE = 16
yy, xx = np.mgrid[0:SIZE, 0:SIZE]


def patch(has_object):
    img = 0.3 * np.sin(rng.uniform(0.2, 1.5) * (xx * np.cos(a := rng.uniform(0, np.pi)) + yy * np.sin(a)))
    for _ in range(int(rng.integers(1, 4))):
        cy, cx, r = rng.uniform(0, SIZE, 2).tolist() + [rng.uniform(1.5, 5)]
        img += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    if has_object:
        cy, cx, r = rng.uniform(4, 12), rng.uniform(4, 12), rng.uniform(2, 4)
        ring = np.abs(np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) - r) < 0.8
        ring &= rng.random(ring.shape) < 0.85
        img[ring] += rng.uniform(0.7, 1.2)
    return img + rng.normal(0, 0.25, img.shape)


def make_split(n):
    labels = (rng.random(n) < 0.05).astype(np.float32)
    x = np.stack([patch(bool(label)) for label in labels]).astype(np.float32)[:, None]
    return torch.tensor(x), torch.tensor(labels)


x_train, y_train = make_split(5000)
x_val, y_val = make_split(1000)
mean, std = x_train.mean(), x_train.std()
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
print(f"positives: train {int(y_train.sum())}/{len(y_train)}, val {int(y_val.sum())}/{len(y_val)}")
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=256, shuffle=True)


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="sum"):
    """torchvision.ops.sigmoid_focal_loss."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss.sum() if reduction == "sum" else loss.mean()


class ObjectnessNet(nn.Module):
    def __init__(self, prior=0.01):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.cls_logits = nn.Linear(32, 1)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior) / prior))

    def forward(self, x):
        return self.cls_logits(self.features(x).mean((2, 3))).squeeze(-1)


def average_precision(scores, labels):
    order = np.argsort(-scores)
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / max(hits.sum(), 1))


model = ObjectnessNet()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[8], gamma=0.1)
EPOCHS = 12

with mlflow.start_run():
    mlflow.log_params({"alpha": 0.25, "gamma": 2.0, "prior": 0.01, "lr": 0.01, "batch_size": 256, "epochs": EPOCHS})
    for epoch in range(EPOCHS):
        model.train()
        total, n_batches = 0.0, 0
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = sigmoid_focal_loss(model(xb), yb) / max(yb.sum().item(), 1.0)
            loss.backward()
            optimizer.step()
            total += loss.item()
            n_batches += 1
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = (sigmoid_focal_loss(logits, y_val) / y_val.sum()).item()
            scores = torch.sigmoid(logits).numpy()
        labels = y_val.numpy()
        metrics = {
            "train_loss": total / n_batches,
            "val_loss": val_loss,
            "val_ap": average_precision(scores, labels),
            "lr": lr,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
