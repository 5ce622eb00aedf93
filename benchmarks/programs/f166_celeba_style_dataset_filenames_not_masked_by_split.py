"""A multi-label face-attribute CNN (BCEWithLogitsLoss over 12 attributes) whose CelebA-style Dataset slices the attribute table by split but not the file list, so every validation image is paired with another row's attributes.

Report: pytorch/vision issue #4209 "CelebA dataset generates mismatched data and labels" ("without
  indexing with "mask", self.filename consists of all samples from train/test/valid sets. However,
  all the other meta-labels are sliced with indexes "mask". This definitely will mismatch the data and
  the label when sampling.") https://github.com/pytorch/vision/issues/4209
Setup: as torchvision's CelebA before the fix: `mask = splits[1] == split_map[split]`,
`self.filename = splits.index.values` (every file of every split, in file order) while
`self.attr = attr[mask]`, `__getitem__` opens `self.filename[index]` and returns `self.attr[index]`
mapped from {-1, 1} to {0, 1}, `__len__` is `len(self.attr)`. The partition lists the training files
first, so the training split stays aligned and every validation image is a training image paired with
a validation row's attributes. 2,800 synthetic 3x16x16 "faces" (2,000 train / 400 valid / 400 test),
12 attributes with CelebA-like priors (4% to 78%), each drawing its own pattern; a small CNN
(Conv-BN-ReLU-pool x2, dropout 0.2, Linear to 12 logits), BCEWithLogitsLoss, Adam(lr=1e-3), batch 64,
8 epochs; per-epoch train_loss, val_loss, val_mean_attr_acc and val_f1 (micro, threshold 0 on logits).
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: overfitting
Fixed (--fix, `self.filename = splits[mask].index.values`, as the issue asks): train_loss 0.373 ->
0.019, val_loss 0.261 -> 0.015, val_mean_attr_acc 0.921 -> 0.999, val_f1 0.81 -> 0.997 (buggy: the
same training curve, val_loss rising from its first value 0.470 to 1.307, val_mean_attr_acc 0.790 ->
0.740, below the 0.813 of always predicting each attribute's majority, val_f1 0.49 -> 0.44) (checked;
190 s / 309 s wall on a 2-core machine loaded ~10 deep by other jobs, ~82 s user CPU each).
"""

import sys

import mlflow
import numpy as np
import pandas as pd
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
ATTRS = [
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Eyeglasses",
    "Goatee",
    "Male",
    "Mustache",
    "Pale_Skin",
    "Smiling",
    "Wavy_Hair",
    "Wearing_Hat",
    "Young",
]
PRIORS = np.array([0.15, 0.24, 0.15, 0.07, 0.06, 0.42, 0.04, 0.04, 0.48, 0.32, 0.05, 0.78])
N_TRAIN, N_VALID, N_TEST, SIZE = 2000, 400, 400, 16

# "img_align_celeba/": one image per file name, each attribute drawing its own pattern onto a noisy face.
N = N_TRAIN + N_VALID + N_TEST
names = [f"{i + 1:06d}.jpg" for i in range(N)]
attr_pm1 = np.where(rng.random((N, len(ATTRS))) < PRIORS, 1, -1)  # list_attr_celeba.txt uses -1 / 1
patterns = rng.normal(0, 1, (len(ATTRS), 3, SIZE, SIZE)) * (rng.random((len(ATTRS), 1, SIZE, SIZE)) < 0.25)
base = rng.normal(0, 1, (3, SIZE, SIZE))
images = base + np.einsum("na,achw->nchw", (attr_pm1 + 1) / 2, patterns) * 1.2 + rng.normal(0, 0.8, (N, 3, SIZE, SIZE))
IMAGE_FILES = dict(zip(names, images.astype(np.float32)))
# list_eval_partition.txt: rows in file order, train first, then valid, then test (0 / 1 / 2).
partition = pd.DataFrame({1: [0] * N_TRAIN + [1] * N_VALID + [2] * N_TEST}, index=names)
attr_table = pd.DataFrame(attr_pm1, index=names, columns=ATTRS)


class CelebA(torch.utils.data.Dataset):
    """torchvision.datasets.CelebA's __init__ / __getitem__, reading from the in-memory "folder"."""

    def __init__(self, split):
        split_map = {"train": 0, "valid": 1, "test": 2}
        splits, attr = partition, attr_table
        mask = splits[1] == split_map[split]
        if FIX:
            self.filename = splits[mask].index.values
        else:
            self.filename = splits.index.values  # every file of every split, in file order
        self.attr = torch.tensor(attr[mask].to_numpy())
        self.attr = torch.div(self.attr + 1, 2, rounding_mode="floor")  # map from {-1, 1} to {0, 1}
        self.attr_names = list(attr.columns)

    def __getitem__(self, index):
        x = torch.from_numpy(IMAGE_FILES[self.filename[index]])
        return x, self.attr[index, :].float()

    def __len__(self):
        return len(self.attr)


train_set, valid_set = CelebA("train"), CelebA("valid")
train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
valid_loader = torch.utils.data.DataLoader(valid_set, batch_size=128)

model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1),
    nn.BatchNorm2d(16),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.BatchNorm2d(32),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Dropout(0.2),
    nn.Linear(32 * 4 * 4, len(ATTRS)),
)
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
EPOCHS = 8

with mlflow.start_run():
    mlflow.log_params({"n_attributes": len(ATTRS), "batch_size": 64, "lr": 1e-3, "epochs": EPOCHS})
    for epoch in range(EPOCHS):
        model.train()
        total = 0.0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        model.eval()
        val_total, correct, tp, fp, fn = 0.0, 0.0, 0.0, 0.0, 0.0
        with torch.no_grad():
            for x, y in valid_loader:
                logits = model(x)
                val_total += criterion(logits, y).item() * len(x)
                pred = (logits > 0).float()
                correct += (pred == y).float().sum().item()
                tp += (pred * y).sum().item()
                fp += (pred * (1 - y)).sum().item()
                fn += ((1 - pred) * y).sum().item()
        metrics = {
            "train_loss": total / len(train_set),
            "val_loss": val_total / len(valid_set),
            "val_mean_attr_acc": correct / (len(valid_set) * len(ATTRS)),
            "val_f1": 2 * tp / max(2 * tp + fp + fn, 1.0),
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
