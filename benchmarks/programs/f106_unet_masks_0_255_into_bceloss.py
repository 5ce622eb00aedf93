"""A small U-Net whose binary masks are loaded as 0/255 (PNG masks read straight into a tensor) and fed to nn.BCEWithLogitsLoss: the loss goes negative without bound and the network marks far too much as foreground.

Report: milesial/Pytorch-UNet issue #84 "loss is negative" ("the format of my mask is PNG, yours are
  GIF, the loss is negative when I was training": batch losses of -9.27e+5 .. -3.4e+7 over 5 epochs and a
  "Validation Dice Coeff" stuck at 1.97; the maintainer: "your Dice coeff is > 1. It means that when you
  are loading" the masks they are not 0/1) https://github.com/milesial/Pytorch-UNet/issues/84; the same
  in issue #78 ("please ensure mask is 0-1, not 0-255")
Setup: as the late-2019 Pytorch-UNet train.py: a U-Net (double 3x3 conv + BatchNorm + ReLU blocks, two
max-pool downs, two bilinear-upsample ups with skip concatenation, 1x1 conv to one logit channel),
nn.BCEWithLogitsLoss for one class, optim.RMSprop(lr=1e-3, weight_decay=1e-8), batch 10; 1x24x24 grey images
of 1-3 bright ellipses on a textured background, the mask a single-channel image of 0 (background) and
255 (object) as a PNG mask reads, converted with torch.from_numpy(mask).float() and never divided by
255 (the bug); 200 training / 40 validation images, 5 epochs; per-epoch train_loss (the mean batch loss,
"Epoch finished ! Loss"), val_loss and val_dice (the repo's dice coefficient of the thresholded
prediction against the true mask, as eval_net computes it), batch loss every 10 steps.
Expected first: loss_input_mismatch
Acceptable in top 3: targets_not_normalized
Symptom: loss_metric_disagreement, not_converged
Fixed (--fix, masks divided by 255 as the answers say): train_loss 0.47 -> 0.20, val_loss 0.48 -> 0.19,
val_dice 0.02 -> 0.95 -> 0.989 after 5 epochs (IoU with the object pixels 0.977) (buggy: train_loss -46 ->
-76 -> -91 -> -104 -> -116 and val_loss -11 -> -106, still falling without bound, val_dice stuck at
1.96-1.97 as in the report, the network marking far too much as foreground: IoU with the object pixels
0.22-0.27) (checked; about 55-70 s CPU each, 3-4 min wall on a machine loaded 3x over its 2 cores).
"""

import sys

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
SIZE = 24


def sample():
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = 0.3 + 0.1 * np.sin(xx / 3.0 + rng.uniform(0, 6)) + 0.08 * rng.standard_normal((SIZE, SIZE))
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(5, SIZE - 5, 2)
        ry, rx = rng.uniform(2.5, 5.5, 2)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        mask[inside] = 255  # what np.array(Image.open(mask_png)) gives for a binary PNG mask
    img = img + 0.45 * (mask > 0)
    return img.astype(np.float32), mask


def load(n):
    pairs = [sample() for _ in range(n)]
    imgs = torch.stack([torch.from_numpy(i) for i, _ in pairs]).unsqueeze(1)
    masks = torch.stack([torch.from_numpy(m).float() for _, m in pairs]).unsqueeze(1)
    if FIX:
        masks = masks / 255.0
    return imgs, masks


class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    def __init__(self, n_channels=1, n_classes=1):
        super().__init__()
        self.inc = DoubleConv(n_channels, 8)
        self.down1 = DoubleConv(8, 16)
        self.down2 = DoubleConv(16, 16)
        self.up1 = DoubleConv(32, 8)
        self.up2 = DoubleConv(16, 8)
        self.outc = nn.Conv2d(8, n_classes, 1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(F.max_pool2d(x1, 2))
        x3 = self.down2(F.max_pool2d(x2, 2))
        x = self.up1(torch.cat([F.interpolate(x3, scale_factor=2, mode="bilinear"), x2], 1))
        x = self.up2(torch.cat([F.interpolate(x, scale_factor=2, mode="bilinear"), x1], 1))
        return self.outc(x)


def dice_coeff(pred, target, eps=1e-4):
    inter = (pred * target).sum()
    union = pred.sum() + target.sum()
    return ((2 * inter + eps) / (union + eps)).item()


train_x, train_y = load(200)
val_x, val_y = load(40)
net = UNet()
optimizer = torch.optim.RMSprop(net.parameters(), lr=1e-3, weight_decay=1e-8)
criterion = nn.BCEWithLogitsLoss()
batch_size = 10

with mlflow.start_run():
    mlflow.log_params({"epochs": 5, "batch_size": batch_size, "lr": 1e-3, "n_train": len(train_x)})
    step = 0
    for epoch in range(5):
        net.train()
        epoch_loss = 0.0
        perm = torch.randperm(len(train_x))
        for i in range(0, len(train_x), batch_size):
            idx = perm[i : i + batch_size]
            imgs, true_masks = train_x[idx], train_y[idx]
            masks_pred = net(imgs)
            loss = criterion(masks_pred.view(-1), true_masks.view(-1))
            epoch_loss += loss.item()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
            step += 1
        net.eval()
        with torch.no_grad():
            logits = net(val_x)
            val_loss = criterion(logits.view(-1), val_y.view(-1)).item()
            pred = (torch.sigmoid(logits) > 0.5).float()
            dices = [dice_coeff(pred[j], val_y[j]) for j in range(len(val_x))]
            fg = val_y > 0  # for the header's check only: the prediction against the object pixels
            iou = ((pred > 0) & fg).sum().item() / max(((pred > 0) | fg).sum().item(), 1)
        train_loss = epoch_loss / (len(train_x) // batch_size)
        val_dice = float(np.mean(dices))
        mlflow.log_metrics({"train_loss": train_loss, "val_loss": val_loss, "val_dice": val_dice}, step=epoch)
        print(
            f"Epoch {epoch + 1} finished ! Loss: {train_loss:.4f} val_loss {val_loss:.4f} Validation Dice Coeff: {val_dice:.4f} (IoU {iou:.3f})"
        )
