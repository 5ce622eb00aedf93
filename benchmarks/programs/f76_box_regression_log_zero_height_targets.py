"""A CTPN-style vertical box regressor whose targets are log(gt_h / anchor_h): a few zero-height boxes give -inf targets and a NaN loss.

Report: xuannianz/keras-ctpn issue #1 "divide by zero encountered in log" (training on custom data, the
  data generator's `np.log(gt_h / a_h)` warns of a division by zero, then the loss goes NaN; degenerate
  boxes of zero height in the annotations) https://github.com/xuannianz/keras-ctpn/issues/1
Setup: 1x32x32 patches holding one text line (a bright band, centre and height varying), annotated as
(y1, y2); 1.5% of the annotations are degenerate (y1 == y2, a click without a drag in the labelling tool);
targets as CTPN's vertical coordinates, v_c = (c_y - c_a) / h_a and v_h = log(h / h_a) with anchor
height 6; small CNN (2 conv + 2 linear), MSELoss, Adam(lr=1e-3), batch 64, 3000 training / 600
validation patches, 8 epochs; per-step `loss` every 10 steps, per-epoch `val_loss` / `val_height_mae`
(pixels).
Expected first: nonfinite_inputs
Acceptable in top 3: -
Symptom: nonfinite_loss
Fixed (--fix, boxes with y2 <= y1 dropped before the targets are computed): val_loss 0.0079 (best 0.0064),
val_height_mae 0.43-0.57 px over the last epochs (buggy: numpy warns "divide by zero encountered in
log", 52 of the 6000 training targets are -inf, loss and val_loss NaN from the first epoch on)
(checked; ~30 s in all, OMP_NUM_THREADS=1).
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
ANCHOR_CY, ANCHOR_H = 16.0, 6.0


def make(n):
    cy = rng.uniform(9, 23, n)
    h = rng.uniform(2, 12, n)
    rows = np.arange(32)[None, :, None]
    band = (np.abs(rows - cy[:, None, None]) <= h[:, None, None] / 2).astype(np.float32)
    x0 = rng.integers(0, 8, n)
    cols = np.arange(32)[None, None, :]
    band = band * (cols >= x0[:, None, None])
    img = 0.8 * band + 0.25 * rng.standard_normal((n, 32, 32))
    y1, y2 = cy - h / 2, cy + h / 2
    degenerate = rng.random(n) < 0.015
    y2 = np.where(degenerate, y1, y2)  # the annotation tool stored a zero-height box
    return img[:, None].astype(np.float32), y1, y2


def box_targets(y1, y2):
    gt_h = y2 - y1
    gt_cy = (y1 + y2) / 2
    v_c = (gt_cy - ANCHOR_CY) / ANCHOR_H
    v_h = np.log(gt_h / ANCHOR_H)
    return np.stack([v_c, v_h], 1).astype(np.float32)


def dataset(n):
    img, y1, y2 = make(n)
    if FIX:
        keep = y2 > y1
        img, y1, y2 = img[keep], y1[keep], y2[keep]
    return torch.tensor(img), torch.tensor(box_targets(y1, y2))


x_train, t_train = dataset(3000)
x_val, t_val = dataset(600)
print("non-finite targets:", int((~torch.isfinite(t_train)).sum()), "of", t_train.numel())

model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Flatten(),
    nn.Linear(32 * 8 * 8, 64),
    nn.ReLU(),
    nn.Linear(64, 2),
)
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
step = 0
with mlflow.start_run():
    for epoch in range(8):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), t_train[idx])
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            pred = model(x_val)
            val_loss = criterion(pred, t_val).item()
            finite = torch.isfinite(t_val).all(1)
            pred_h = ANCHOR_H * torch.exp(pred[finite, 1])
            true_h = ANCHOR_H * torch.exp(t_val[finite, 1])
            height_mae = (pred_h - true_h).abs().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_height_mae": height_mae}, step=step)
        print(f"epoch {epoch}: loss {loss.item():.4f} val_loss {val_loss:.4f} val_height_mae {height_mae:.3f}")
