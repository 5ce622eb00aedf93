"""A small U-Net for binary segmentation trained with nn.BCEWithLogitsLoss on masks read from 8-bit PNGs and never divided by 255: the targets are 0 and 255, so every foreground pixel asks for a probability of 255 and the loss goes negative without bound.

Report: milesial/Pytorch-UNet issue #78 "When i run this code ,get loss is negative??" ("Epoch finished !
  Loss: -1980.159640842014 / Validation Dice Coeff: 1.9720964431762695"; answer: "please ensure mask is
  0-1, not 0-255. because the loss function is BCELoss.") https://github.com/milesial/Pytorch-UNet/issues/78
Setup: as the repository's train.py of the time: a U-Net (two down, two up blocks of double 3x3
conv-BN-ReLU, 8-16-32 channels) with one output channel, the loss on the flattened logits and masks
(nn.BCEWithLogitsLoss, which the repository moved to later: unlike nn.BCELoss, which now raises "all
elements of target should be between 0 and 1", it takes any target silently), SGD(lr=0.1, momentum=0.9, weight_decay=5e-4), batch 8; masks loaded as the
PNG's uint8 values (0 or 255) and turned into float tensors; validation with the repository's
dice_coeff on (sigmoid > 0.5) against the masks as loaded; synthetic 3x32x32 "cell" images (1-4
textured ellipses brighter than a noisy, shaded background), 240 training / 60 validation images,
4 epochs; per-step train_loss every 10 steps, per-epoch epoch_loss and val_dice.
Expected first: loss_input_mismatch
Acceptable in top 3: targets_not_normalized
Symptom: diverging, nonfinite_loss
Fixed (--fix, `true_masks = true_masks / 255`): epoch_loss 0.293 -> 0.128 -> 0.065 -> 0.049, val_dice
0.000 (nothing predicted yet) -> 0.923 -> 0.909 -> 0.947 (IoU 0.90) after 4 epochs (buggy: train_loss 2.05
at step 0, -1.5e14 at step 10, -1.2e28 at step 20 (every foreground pixel pulls its logit up without bound,
with SGD momentum), NaN from step 30 on; epoch_loss NaN and val_dice 0.000 at every epoch: nothing is
segmented. The report's BCELoss clamped its log and stayed finite at -1980) (checked; ~2 min CPU each,
12 min 48 s wall on a 2-core machine loaded ~10-17x by other jobs).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
SIZE = 32


def sample():
    """An RGB image and its 8-bit mask (0 background, 255 cell), as read from the dataset's PNGs."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for _ in range(rng.integers(1, 5)):
        cy, cx = rng.uniform(5, SIZE - 5, 2)
        ry, rx = rng.uniform(2.5, 6, 2)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        mask[(u / rx) ** 2 + (v / ry) ** 2 <= 1] = 255
    shade = np.linspace(0, rng.uniform(0, 0.3), SIZE)[None, :]
    base = 0.25 + shade + 0.12 * rng.standard_normal((SIZE, SIZE))
    cell = 0.35 + 0.15 * np.sin(xx / rng.uniform(1.5, 3)) * np.cos(yy / rng.uniform(1.5, 3))
    gray = base + (mask > 0) * cell
    tint = rng.uniform(0.8, 1.2, 3)[:, None, None]
    image = np.clip(gray[None] * tint + 0.05 * rng.standard_normal((3, SIZE, SIZE)), 0, 1)
    return image.astype(np.float32), mask


def load(n):
    images, masks = zip(*(sample() for _ in range(n)))
    return torch.tensor(np.stack(images)), torch.tensor(np.stack(masks)).float()[:, None]  # masks 0/255


def double_conv(c_in, c_out):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=1):
        super().__init__()
        self.inc = double_conv(n_channels, 8)
        self.down1 = nn.Sequential(nn.MaxPool2d(2), double_conv(8, 16))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), double_conv(16, 32))
        self.up1 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.conv1 = double_conv(32, 16)
        self.up2 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.conv2 = double_conv(16, 8)
        self.outc = nn.Conv2d(8, n_classes, 1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x = self.conv1(torch.cat([self.up1(x3), x2], dim=1))
        x = self.conv2(torch.cat([self.up2(x), x1], dim=1))
        return self.outc(x)  # logits: BCEWithLogitsLoss applies the sigmoid


def dice_coeff(input, target, eps=0.0001):
    """The repository's dice coefficient of one batch (predictions thresholded at 0.5)."""
    inter = torch.dot(input.view(-1), target.view(-1))
    union = torch.sum(input) + torch.sum(target) + eps
    return ((2 * inter.float() + eps) / union.float()).item()


train_images, train_masks = load(240)
val_images, val_masks = load(60)
train_loader = DataLoader(TensorDataset(train_images, train_masks), batch_size=8, shuffle=True)
val_loader = DataLoader(TensorDataset(val_images, val_masks), batch_size=8)

net = UNet()
optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.0005)
criterion = nn.BCEWithLogitsLoss()

with mlflow.start_run():
    mlflow.log_params({"epochs": 4, "batch_size": 8, "lr": 0.1, "img_size": SIZE})
    step = 0
    for epoch in range(4):
        net.train()
        epoch_loss = 0.0
        for imgs, true_masks in train_loader:
            if FIX:
                true_masks = true_masks / 255
            masks_pred = net(imgs)
            loss = criterion(masks_pred.view(-1), true_masks.view(-1))
            epoch_loss += loss.item()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                mlflow.log_metric("train_loss", loss.item(), step=step)
            step += 1
        net.eval()
        tot, iou_num, iou_den = 0.0, 0.0, 0.0
        with torch.no_grad():
            for imgs, true_masks in val_loader:
                if FIX:
                    true_masks = true_masks / 255
                mask_pred = (torch.sigmoid(net(imgs)) > 0.5).float()
                tot += dice_coeff(mask_pred, true_masks)
                truth = true_masks > 0
                iou_num += (mask_pred.bool() & truth).sum().item()
                iou_den += (mask_pred.bool() | truth).sum().item()
        metrics = {"epoch_loss": epoch_loss / len(train_loader), "val_dice": tot / len(val_loader)}
        mlflow.log_metrics(metrics, step=step)
        print(
            f"Epoch {epoch + 1} finished ! Loss: {metrics['epoch_loss']:.4f}  Validation Dice Coeff: {metrics['val_dice']:.4f}  (IoU {iou_num / max(iou_den, 1):.3f})"
        )
