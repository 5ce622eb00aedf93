"""A small 2-level U-Net segmenting bright blobs in noisy grey images with the common Dice + BCE loss (BCEWithLogitsLoss on the logits plus soft Dice on their sigmoid), Adam, random flips as augmentation, a few evaluation batches per epoch.

Report: healthy, in the style of the U-Net segmentation tutorials and milesial/Pytorch-UNet (`UNet(n_channels,
  n_classes)` built from DoubleConv / Down / Up blocks with skip connections; for one class the loss is
  `criterion(masks_pred, true_masks) + dice_loss(torch.sigmoid(masks_pred), true_masks)` with
  `nn.BCEWithLogitsLoss()`, validated by the Dice score) https://github.com/milesial/Pytorch-UNet
Setup: synthetic 1x32x32 images, each with 1-3 elliptical blobs of random size and brightness on a smoothly
varying background plus Gaussian noise (std 0.35), the mask their pixels (~15% foreground); U-Net with
DoubleConv (Conv-BN-ReLU x2) at 16-32-64 channels, max-pool down, transposed-conv up, skip connections,
1 output logit; loss = BCEWithLogitsLoss + (1 - soft Dice), Adam(lr=1e-3, weight_decay=1e-8), horizontal /
vertical flips of image and mask together, batch 16, 640 training / 160 validation images, 8 epochs;
train_loss every 10 steps, val_loss and val_dice (hard Dice at 0.5) per epoch.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed: val_dice 0.878 -> 0.945 -> 0.969 (epoch 3) -> 0.959 -> 0.975, val_loss 1.050 -> 0.700 -> 0.479 -> 0.242 after
8 epochs, still falling, train_loss (per batch) 1.05 -> 0.21 (checked; ~105 s CPU, 2.3 min wall on a 2-core machine
loaded 3x over).
"""

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
S = 32


def make(n):
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij")
    images, masks = torch.zeros(n, 1, S, S), torch.zeros(n, 1, S, S)
    for i in range(n):
        mask = torch.zeros(S, S, dtype=torch.bool)
        for _ in range(int(torch.randint(1, 4, ()))):
            cy, cx = torch.rand(2) * (S - 8) + 4
            ry, rx = torch.rand(2) * 4 + 2.5
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        gy, gx = torch.randn(2) * 0.01
        background = gy * yy + gx * xx + 0.3 * torch.rand(())
        brightness = 0.6 + 0.6 * torch.rand(())
        images[i, 0] = background + brightness * mask + 0.35 * torch.randn(S, S)
        masks[i, 0] = mask.float()
    return images, masks


class DoubleConv(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    def __init__(self, n_channels=1, n_classes=1):
        super().__init__()
        self.inc, self.down1, self.down2 = DoubleConv(n_channels, 16), DoubleConv(16, 32), DoubleConv(32, 64)
        self.up1, self.conv1 = nn.ConvTranspose2d(64, 32, 2, stride=2), DoubleConv(64, 32)
        self.up2, self.conv2 = nn.ConvTranspose2d(32, 16, 2, stride=2), DoubleConv(32, 16)
        self.outc = nn.Conv2d(16, n_classes, 1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(F.max_pool2d(x1, 2))
        x3 = self.down2(F.max_pool2d(x2, 2))
        x = self.conv1(torch.cat([self.up1(x3), x2], dim=1))
        x = self.conv2(torch.cat([self.up2(x), x1], dim=1))
        return self.outc(x)


def dice_loss(probs, target, eps=1e-6):
    inter = (probs * target).sum(dim=(1, 2, 3))
    union = probs.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    return 1 - ((2 * inter + eps) / (union + eps)).mean()


x_train, y_train = make(640)
x_val, y_val = make(160)
model = UNet()
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-8)
global_step = 0

with mlflow.start_run():
    mlflow.log_params({"lr": 1e-3, "batch_size": 16, "epochs": 8, "loss": "bce+dice"})
    for epoch in range(8):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(perm), 16):
            idx = perm[i : i + 16]
            images, true_masks = x_train[idx], y_train[idx]
            if torch.rand(()) < 0.5:
                images, true_masks = images.flip(-1), true_masks.flip(-1)
            if torch.rand(()) < 0.5:
                images, true_masks = images.flip(-2), true_masks.flip(-2)
            masks_pred = model(images)
            loss = criterion(masks_pred, true_masks) + dice_loss(torch.sigmoid(masks_pred), true_masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if global_step % 10 == 0:
                mlflow.log_metric("train_loss", loss.item(), step=global_step)
            global_step += 1
        model.eval()
        val_loss, dice_sum = 0.0, 0.0
        with torch.no_grad():
            for i in range(0, len(x_val), 40):
                pred = model(x_val[i : i + 40])
                target = y_val[i : i + 40]
                val_loss += (criterion(pred, target) + dice_loss(torch.sigmoid(pred), target)).item() * len(target)
                dice_sum += (1 - dice_loss((pred > 0).float(), target)).item() * len(target)
        metrics = {"val_loss": val_loss / len(x_val), "val_dice": dice_sum / len(x_val)}
        mlflow.log_metrics(metrics, step=global_step)
        print(
            f"epoch {epoch}: train_loss {loss.item():.4f} val_loss {metrics['val_loss']:.4f} val_dice {metrics['val_dice']:.3f}"
        )
