"""A small 2-D U-Net for thin-surface segmentation trained on BCEWithLogitsLoss + an nnU-Net MemoryEfficientSoftDiceLoss whose `apply_nonlin` was left at None: the soft Dice reads the raw logits as if they were probabilities, its denominator crosses zero once the mean logit drifts negative, and the loss swings by orders of magnitude.

Report: ScrollPrize/villa issue #1488 "MemoryEfficientSoftDiceLoss standalone path defaults apply_nonlin=None:
  raw logits explode dice to ~1e13 and erase BCE gradients early in training" ("the dice loss consumes raw
  logits as if they were probabilities. In the early-training regime where mean logit drifts slightly
  negative, the dice denominator crosses zero and the loss explodes ... 2 of 4 runs never escaped the bad
  regime's basin (train soft-Dice flat for 50 epochs)"; fixed by pull request #1644, "must consume
  probabilities, not raw logits": `apply_nonlin=torch.sigmoid`) https://github.com/ScrollPrize/villa/issues/1488
Setup: as the report's config `losses: [BCEWithLogitsLoss (w=1), MemoryEfficientSoftDiceLoss (w=1)]` with
`activation: none` (the network outputs logits): nnU-Net's MemoryEfficientSoftDiceLoss (smooth 1, do_bg,
per-sample Dice, `dc = (2 * intersect + smooth) / clip(sum_gt + sum_pred + smooth, 1e-8)`, loss `-dc`);
a 2-level U-Net (16/32/64 channels, InstanceNorm + LeakyReLU as nnU-Net's blocks, 1 output channel);
SGD(lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5) with nnU-Net's poly decay; synthetic 48x48
scans in 2-D instead of 3-D: 2-3 thin curved sheets (~15% of the pixels) in a noisy textured background;
batch 8, 25 iterations per epoch, 12 epochs, 64 validation scans; per epoch train_loss / val_loss (the
combined loss, as nnU-Net logs them) and val_dice (hard Dice of sigmoid > 0.5, nnU-Net's pseudo Dice).
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: oscillating_loss
Fixed (--fix, `apply_nonlin=torch.sigmoid`): val_dice 0.717 -> 0.871 (epoch 2) -> 0.933 after 12 epochs,
still creeping up, train_loss 0.069 -> -0.860 and val_loss -0.368 -> -0.862 (the combined loss's floor is
-1) (buggy: the losses are meaningless from the first epoch, train_loss -6.4e11 -> -2.3e14 and val_loss
-3.2e12 -> -6.1e14 -> -3.3e14, swinging by 2-4x from epoch to epoch as the network drives its summed
logits towards the clipped denominator; the hard Dice still rises but lags, 0.714 -> 0.888 at best, 0.880
at the end, about 80% more misclassified sheet pixels than the fix) (checked; 109 s / 136 s wall on a
2-core machine loaded by three helpers, ~50 s CPU each, OMP_NUM_THREADS=1).
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
S = 48
yy, xx = np.mgrid[0:S, 0:S] / S


def scan():
    img = 0.5 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(5 * yy + rng.uniform(0, 6)) + rng.normal(0, 0.6, (S, S))
    mask = np.zeros((S, S), dtype=np.float32)
    for _ in range(int(rng.integers(2, 4))):
        a, b, c = rng.uniform(-0.6, 0.6), rng.uniform(1, 4), rng.uniform(0.2, 0.8)
        centre = c + a * np.sin(b * xx + rng.uniform(0, 6))  # a sheet crossing the scan
        if rng.random() < 0.5:
            centre = c + a * np.sin(b * yy + rng.uniform(0, 6))
            sheet = np.abs(xx - centre) < 0.03
        else:
            sheet = np.abs(yy - centre) < 0.03
        mask[sheet] = 1.0
    img = img + 1.2 * mask
    return img.astype(np.float32), mask


def batch(n):
    imgs, masks = zip(*(scan() for _ in range(n)))
    return torch.tensor(np.stack(imgs))[:, None], torch.tensor(np.stack(masks))[:, None]


class MemoryEfficientSoftDiceLoss(nn.Module):
    def __init__(self, apply_nonlin=None, batch_dice=False, do_bg=True, smooth=1.0):
        super().__init__()
        self.apply_nonlin, self.batch_dice, self.do_bg, self.smooth = apply_nonlin, batch_dice, do_bg, smooth

    def forward(self, x, y):
        if self.apply_nonlin is not None:
            x = self.apply_nonlin(x)
        axes = tuple(range(2, x.ndim))
        with torch.no_grad():
            y_onehot = y  # binary target already has x's shape
            sum_gt = y_onehot.sum(axes)
        intersect = (x * y_onehot).sum(axes)
        sum_pred = x.sum(axes)
        if self.batch_dice:
            intersect, sum_pred, sum_gt = intersect.sum(0), sum_pred.sum(0), sum_gt.sum(0)
        dc = (2 * intersect + self.smooth) / torch.clip(sum_gt + sum_pred + self.smooth, 1e-8)
        return -dc.mean()


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.InstanceNorm2d(cout, affine=True),
        nn.LeakyReLU(0.01),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.InstanceNorm2d(cout, affine=True),
        nn.LeakyReLU(0.01),
    )


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1, self.enc2, self.bottom = block(1, 16), block(16, 32), block(32, 64)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), block(64, 32)
        self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), block(32, 16)
        self.out = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottom(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)  # activation: none -> logits


model = UNet()
bce = nn.BCEWithLogitsLoss()
dice = MemoryEfficientSoftDiceLoss(apply_nonlin=torch.sigmoid if FIX else None)


def loss_fn(logits, target):
    return 1.0 * bce(logits, target) + 1.0 * dice(logits, target)


EPOCHS, ITERS, LR = 12, 25, 0.01
optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.99, nesterov=True, weight_decay=3e-5)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: (1 - e / EPOCHS) ** 0.9)  # nnU-Net PolyLR
val_x, val_y = batch(64)

with mlflow.start_run():
    mlflow.log_params({"lr": LR, "batch_size": 8, "epochs": EPOCHS, "iters_per_epoch": ITERS})
    for epoch in range(EPOCHS):
        model.train()
        losses = []
        for _ in range(ITERS):
            x, y = batch(8)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 12)  # nnU-Net clips at 12
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        model.eval()
        with torch.no_grad():
            logits = model(val_x)
            val_loss = loss_fn(logits, val_y).item()
            pred = (torch.sigmoid(logits) > 0.5).float()
            val_dice = (2 * (pred * val_y).sum() / (pred.sum() + val_y.sum()).clamp(min=1)).item()
        metrics = {"train_loss": float(np.mean(losses)), "val_loss": val_loss, "val_dice": val_dice}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: float(f"{v:.4g}") for k, v in metrics.items()})
