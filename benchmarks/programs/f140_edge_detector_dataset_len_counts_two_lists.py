"""A DexiNed-style edge detector whose custom Dataset keeps `self.data_index = [image_paths, label_paths]` and returns `len(self.data_index)` from `__len__`: always 2, so every epoch is one batch of the same two images out of 320.

Report: xavysp/DexiNed issue #98 "Length of data samples wrongly calculated" ("the length of the dataset is
  being calculated not over all images in the dataset but over the array [[images],[labels]] and therefore
  always returns the number 2 [...] when there are more than 2 images in the data folder, only the first 2
  were being processed"; the fix: `return len(self.data_index[0])`; the maintainer: "I also have noticed
  that error [...] in the last commit it will be corrected") https://github.com/xavysp/DexiNed/issues/98
Setup: the report's `__len__` in a training Dataset written the same way (a list of image paths and a list
of edge-map paths, loaded in `__getitem__`; here arrays indexed in place of files); a small fully
convolutional edge network (four 3x3 conv blocks with BatchNorm and ReLU at 8/16/16/8 channels, dilations
1/2/4/1, a 1x1 conv to one edge logit per pixel, sigmoid), DexiNed's class-balanced weighted BCE (edge pixels
weighted by the non-edge share, non-edge pixels by 1.1 x the edge share), Adam(lr=1e-3), batch 16; synthetic
24x24 grey images of 1-3 filled rectangles and discs over a textured, noisy background with their outline as
the edge map; 320 training images and 100 validation images (the validation Dataset's `__len__` correct),
25 epochs; per-epoch train_loss / val_loss and val_f1 (edge pixels at threshold 0.5).
Expected first: repeated_batch
Acceptable in top 3: dataset_too_small
Symptom: not_converged, overfitting
Fixed (--fix, `return len(self.data_index[0])`): 20 steps an epoch; val_loss 76.6 -> 36.0 after 25 epochs
(flattening from epoch ~15), val_f1 0.34 -> 0.63 (0.60-0.65 from epoch 13), train_loss 75.7 -> 30.3 (buggy: one
step an epoch on the same two images, 25 steps in all: train_loss 95.2 -> 65.2 (-31%) while val_loss only goes
84.0 -> 78.8 (-6%), val_f1 0.00 -> 0.29) (checked; 30 s / 33 s CPU, 54 s / 28 s wall on a 2-core machine
loaded by three helpers).
"""

import sys

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
SIZE = 24
yy, xx = np.mgrid[0:SIZE, 0:SIZE]


def sample():
    """A grey image of a few filled shapes on a textured background, and its outline map."""
    img = 0.4 + 0.15 * np.sin(rng.uniform(0.5, 2.0) * xx + rng.uniform(0, 6)) * np.sin(rng.uniform(0.5, 2.0) * yy)
    regions = np.zeros((SIZE, SIZE), dtype=np.int64)
    for k in range(1, int(rng.integers(2, 4)) + 1):
        cy, cx = rng.integers(5, 19, size=2)
        if rng.random() < 0.5:
            h, w = rng.integers(2, 7, size=2)
            inside = (np.abs(yy - cy) <= h) & (np.abs(xx - cx) <= w)
        else:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(2, 7) ** 2
        regions[inside] = k
        img[inside] = rng.uniform(0.0, 1.0)
    img = img + rng.normal(0, 0.08, img.shape)
    edge = np.zeros((SIZE, SIZE), dtype=np.float32)
    edge[:, 1:] += regions[:, 1:] != regions[:, :-1]
    edge[1:, :] += regions[1:, :] != regions[:-1, :]
    return img.astype(np.float32), (edge > 0).astype(np.float32)


def make_split(n):
    pairs = [sample() for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class EdgeDataset(Dataset):
    """As DexiNed's datasets.py: data_index holds [images, labels]."""

    def __init__(self, images, labels, fixed_len):
        self.data_index = [images, labels]
        self.fixed_len = fixed_len

    def __len__(self):
        if self.fixed_len:
            return len(self.data_index[0])
        return len(self.data_index)  # the bug: the length of [[images], [labels]], always 2

    def __getitem__(self, idx):
        image = torch.from_numpy(self.data_index[0][idx]).unsqueeze(0)
        label = torch.from_numpy(self.data_index[1][idx]).unsqueeze(0)
        return (image - 0.5) / 0.25, label


train_images, train_labels = make_split(320)
val_images, val_labels = make_split(100)
train_set = EdgeDataset(train_images, train_labels, fixed_len=FIX)
val_set = EdgeDataset(val_images, val_labels, fixed_len=True)
print("training samples per epoch:", len(train_set))
train_loader = DataLoader(train_set, batch_size=16, shuffle=True)
val_loader = DataLoader(val_set, batch_size=50)


def conv_block(cin, cout, dilation):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(cout), nn.ReLU())


model = nn.Sequential(
    conv_block(1, 8, 1), conv_block(8, 16, 2), conv_block(16, 16, 4), conv_block(16, 8, 1), nn.Conv2d(8, 1, 1)
)


def bdcn_loss2(logits, targets, l_weight=1.0):
    """DexiNed's class-balanced BCE on sigmoid outputs."""
    mask = (targets > 0.1).float()
    num_positive = mask.sum().item()
    num_negative = (mask <= 0.0).float().sum().item()
    weight = torch.where(
        mask > 0,
        torch.full_like(mask, num_negative / (num_positive + num_negative)),
        torch.full_like(mask, 1.1 * num_positive / (num_positive + num_negative)),
    )
    preds = torch.sigmoid(logits)
    return l_weight * F.binary_cross_entropy(preds, targets, weight, reduction="sum") / logits.shape[0]


optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
EPOCHS = 25

with mlflow.start_run():
    mlflow.log_params({"batch_size": 16, "lr": 1e-3, "epochs": EPOCHS, "train_images": len(train_images)})
    for epoch in range(EPOCHS):
        model.train()
        total, seen = 0.0, 0
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = bdcn_loss2(model(images), labels)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(images)
            seen += len(images)
        model.eval()
        v_total, tp, fp, fn = 0.0, 0.0, 0.0, 0.0
        with torch.no_grad():
            for images, labels in val_loader:
                logits = model(images)
                v_total += bdcn_loss2(logits, labels).item() * len(images)
                pred = (torch.sigmoid(logits) > 0.5).float()
                tp += (pred * labels).sum().item()
                fp += (pred * (1 - labels)).sum().item()
                fn += ((1 - pred) * labels).sum().item()
        val_f1 = 2 * tp / max(2 * tp + fp + fn, 1.0)
        metrics = {"train_loss": total / seen, "val_loss": v_total / len(val_set), "val_f1": val_f1}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
