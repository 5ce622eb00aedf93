"""A small U-Net for 3-class semantic segmentation trained with segmentation_models.pytorch's multiclass
LovaszLoss as it stood before PR #461: `_flatten_probas` moved the batch axis to the end instead of the
class axis, so each row of "class probabilities" the Lovasz-softmax sorts holds values of other pixels
and images, not the C scores of the pixel whose label it is compared with.

Report: qubvel-org/segmentation_models.pytorch pull request #461 "fix bug in lovasz loss" ("In original
  LovaszSoftmax repo: `probas = probas.permute(0, 2, 3, 1).contiguous().view(-1, C)  # B * H * W, C = P, C`
  [...] this code in repo should be changed to: `probas = torch.movedim(probas, 1, -1)`")
  https://github.com/qubvel-org/segmentation_models.pytorch/pull/461
Setup: the loss code of smp's `losses/lovasz.py` (`_lovasz_grad`, `_lovasz_softmax_flat`, `_flatten_probas`
with `torch.movedim(probas, 0, -1)`, `LovaszLoss(mode="multiclass")` taking the softmax of the logits),
copied into the script; a two-level U-Net (12-24-48 channels, BatchNorm) on synthetic 3x32x32 scenes with
discs (class 1) and squares (class 2) in random colours over a noisy background (class 0), 800 training
/ 200 validation images, Adam(lr=1e-3), batch 16, 8 epochs; per-epoch train_loss / val_loss (the Lovasz
loss), val_miou and val_pixel_acc.
Expected first: loss_input_mismatch
Acceptable in top 3: labels_unrelated
Symptom: plateau, not_converged
Fixed (--fix, `torch.movedim(probas, 1, -1)` as the PR has it): val_miou 0.30 -> 0.73, val_pixel_acc
0.54 -> 0.94, val_loss 0.574 -> 0.303 after 8 epochs, still improving (buggy: val_loss 0.669 -> 0.667, flat
from the first epoch, val_miou 0.05 -> 0.13-0.15, val_pixel_acc 0.08 -> 0.27-0.33, below the 0.82 of
calling every pixel background; train_loss 0.666 -> 0.605) (checked; ~50 s CPU each, 100-200 s wall on the
heavily loaded 2-core machine).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
N_CLASSES, SIZE = 3, 32


# ---- segmentation_models_pytorch/losses/lovasz.py (multiclass path), as of the PR ----
def _lovasz_grad(gt_sorted):
    """Compute gradient of the Lovasz extension w.r.t sorted errors (see Alg. 1 in the paper)."""
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.float().cumsum(0)
    union = gts + (1 - gt_sorted).float().cumsum(0)
    jaccard = 1.0 - intersection / union
    if p > 1:  # cover 1-pixel case
        jaccard[1:p] = jaccard[1:p] - jaccard[0:-1]
    return jaccard


def _lovasz_softmax_flat(probas, labels, classes="present"):
    """Multi-class Lovasz-Softmax loss on flattened probas [P, C] and labels [P]."""
    if probas.numel() == 0:
        return probas * 0.0
    C = probas.size(1)
    losses = []
    for c in range(C):
        fg = (labels == c).type_as(probas)  # foreground for class c
        if classes == "present" and fg.sum() == 0:
            continue
        class_pred = probas[:, c]
        errors = (fg - class_pred).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        fg_sorted = fg[perm.data]
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg_sorted)))
    return torch.stack(losses).mean()


def _flatten_probas(probas, labels):
    """Flattens predictions in the batch."""
    C = probas.size(1)
    if FIX:
        probas = torch.movedim(probas, 1, -1)  # [B, C, H, W] -> [B, H, W, C]
    else:
        probas = torch.movedim(probas, 0, -1)  # [B, C, Di, Dj, Dk...] -> [B, C, Di...Dk, C]
    probas = probas.contiguous().view(-1, C)  # [P, C]
    labels = labels.view(-1)
    return probas, labels


class LovaszLoss(nn.Module):
    def forward(self, y_pred, y_true):
        y_pred = y_pred.softmax(dim=1)
        return _lovasz_softmax_flat(*_flatten_probas(y_pred, y_true))


# ---- data: discs and squares ----
def make(n):
    x = np.zeros((n, 3, SIZE, SIZE), dtype=np.float32)
    y = np.zeros((n, SIZE, SIZE), dtype=np.int64)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(n):
        x[i] = rng.uniform(0.2, 0.5, 3)[:, None, None]
        for _ in range(rng.integers(1, 4)):
            cls = rng.integers(1, 3)
            r = rng.integers(4, 8)
            cy, cx = rng.integers(r, SIZE - r, 2)
            if cls == 1:
                m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            else:
                m = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r)
            x[i][:, m] = rng.uniform(0.0, 1.0, 3)[:, None]
            y[i][m] = cls
    x += rng.normal(0, 0.1, x.shape).astype(np.float32)
    return torch.tensor((x - 0.5) / 0.25), torch.tensor(y)


def conv_block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.enc1, self.enc2, self.bottom = conv_block(3, 12), conv_block(12, 24), conv_block(24, 48)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(48, 24, 2, stride=2), conv_block(48, 24)
        self.up1, self.dec1 = nn.ConvTranspose2d(24, 12, 2, stride=2), conv_block(24, 12)
        self.head = nn.Conv2d(12, n_classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottom(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


def miou(pred, target):
    ious = []
    for c in range(N_CLASSES):
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


x_train, y_train = make(800)
x_val, y_val = make(200)
print("pixel shares", np.bincount(y_train.flatten().numpy(), minlength=N_CLASSES) / y_train.numel())
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=16, shuffle=True)
model = UNet(N_CLASSES)
criterion = LovaszLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

with mlflow.start_run():
    mlflow.log_params({"loss": "LovaszLoss(multiclass)", "lr": 1e-3, "batch_size": 16, "classes": N_CLASSES})
    for epoch in range(8):
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x_val[i : i + 100]) for i in range(0, len(x_val), 100)])
            val_loss = criterion(logits, y_val).item()
            pred = logits.argmax(1)
        metrics = {
            "train_loss": total / len(x_train),
            "val_loss": val_loss,
            "val_miou": miou(pred, y_val),
            "val_pixel_acc": (pred == y_val).float().mean().item(),
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
