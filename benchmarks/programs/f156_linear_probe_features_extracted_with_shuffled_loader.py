"""A linear probe on frozen encoder features, the features extracted through a DataLoader built with `shuffle=True` while the labels are read from the dataset in its own order: every feature row gets another image's label.

Report: aidotse/LeakPro issue #315 "get_labels() mismatch" ("The created dataloader can have shuffle activated.
  ... Expected Behavior: labels should correspond to the indices in the input. What Needs to be Done: deactivate
  shuffle") https://github.com/aidotse/LeakPro/issues/315
Setup: the two-stage "feature extraction, then a classifier on the features" recipe: a frozen convolutional encoder
(Conv(1,32,3)-ReLU-MaxPool-Conv(32,64,3)-ReLU-AdaptiveAvgPool(4) -> 1024 features, random weights standing in for
a pretrained backbone, kept in eval mode under no_grad) run once over the training set through the training
DataLoader (`shuffle=True`, batch 64) and its outputs concatenated; the labels taken as `train_set.tensors[1]`
(dataset order); validation features extracted with `shuffle=False`. Synthetic 1x16x16 images of 5 classes (a
class pattern at a random shift and contrast under noise), 2000 training / 500 validation images; the probe a
Linear(1024, 5) on standardised features, CrossEntropyLoss, Adam(lr=1e-3), batch 128, 30 epochs; per epoch
train_loss, train_acc, val_loss, val_acc.
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: plateau, overfitting
Fixed (--fix, features extracted with `shuffle=False`, as the issue says, so row i is image i): val_acc 0.36 ->
0.59 (epoch 10) -> 0.61, val_loss 1.50 -> 1.02 (best, epoch ~20) -> 1.05, train_loss 1.61 -> 0.30, train_acc
0.96 after 30 epochs (buggy: val_acc 0.19-0.21 at every epoch, chance 0.20; val_loss 1.70 -> 2.17, rising from
the first epoch; train_loss 1.72 -> 0.89 and train_acc 0.19 -> 0.71 by memorising the shuffled pairs) (checked;
~14 s CPU, ~30 s wall each on a 2-core machine shared with other helpers).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
N_CLASSES = 5

patterns = (torch.rand(N_CLASSES, 8, 8) > 0.55).float()


def images(n):
    labels = torch.randint(0, N_CLASSES, (n,))
    x = 0.5 * torch.randn(n, 1, 16, 16)
    for i in range(n):
        dy, dx = torch.randint(0, 9, (2,)).tolist()
        x[i, 0, dy : dy + 8, dx : dx + 8] += patterns[labels[i]] * (0.8 + 0.8 * torch.rand(1))
    return x, labels


train_set = TensorDataset(*images(2000))
val_set = TensorDataset(*images(500))

encoder = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(4),
    nn.Flatten(),
)
encoder.eval()
for p in encoder.parameters():
    p.requires_grad_(False)


def extract(dataset, shuffle):
    feats = []
    with torch.no_grad():
        for xb, _ in DataLoader(dataset, batch_size=64, shuffle=shuffle):
            feats.append(encoder(xb))
    return torch.cat(feats)


train_feats = extract(train_set, shuffle=not FIX)  # the training loader, reused for extraction
train_labels = train_set.tensors[1]  # labels in dataset order
val_feats = extract(val_set, shuffle=False)
val_labels = val_set.tensors[1]
mean, std = train_feats.mean(0), train_feats.std(0) + 1e-6
train_feats, val_feats = (train_feats - mean) / std, (val_feats - mean) / std

probe = nn.Linear(train_feats.shape[1], N_CLASSES)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3)
loader = DataLoader(TensorDataset(train_feats, train_labels), batch_size=128, shuffle=True)

with mlflow.start_run():
    mlflow.log_params({"features": train_feats.shape[1], "lr": 1e-3, "batch_size": 128, "epochs": 30})
    for epoch in range(30):
        probe.train()
        total, correct = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            logits = probe(xb)
            loss = criterion(logits, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
            correct += (logits.argmax(1) == yb).sum().item()
        probe.eval()
        with torch.no_grad():
            val_logits = probe(val_feats)
            val_loss = criterion(val_logits, val_labels).item()
            val_acc = (val_logits.argmax(1) == val_labels).float().mean().item()
        metrics = {
            "train_loss": total / len(train_labels),
            "train_acc": correct / len(train_labels),
            "val_loss": val_loss,
            "val_acc": val_acc,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
