"""A small 2-D U-Net trained nnU-Net style (Dice + cross-entropy, SGD with Nesterov momentum 0.99 and the poly schedule, a fixed number of iterations per epoch) on only 88 training images: the training loss keeps falling while the validation loss turns up.

Report: MIC-DKFZ/nnUNet issue #2715 "Validation loss less than train loss" ("I am implementing nnUNet with small
  dataset(88 images), and is overfitting. So I augmented the dataset to 880 and trained again. Now plot is ok")
  https://github.com/MIC-DKFZ/nnUNet/issues/2715
Setup: synthetic 1x32x32 grey images of a lesion-like region (a blob whose texture is a little finer and brighter
than the coarse noisy background), the mask its pixels; a 2-level U-Net (16-32-64 channels, Conv-InstanceNorm-
LeakyReLU pairs as nnU-Net's, transposed-conv up-sampling, skip connections, 2 output logits); loss = soft Dice
(foreground) + cross-entropy as nnU-Net's DC_and_CE_loss; SGD(lr=0.01, momentum=0.99, nesterov=True,
weight_decay=3e-5) with the poly schedule (1 - epoch / max_epochs) ** 0.9, gradients clipped at norm 12, batch 8,
20 random batches an "epoch" (nnU-Net's fixed iterations per epoch), 30 epochs, no on-the-fly augmentation; 88
training images, 60 validation images; per epoch train_loss, val_loss, val_dice and lr.
Expected first: dataset_too_small
Acceptable in top 3: no_regularization
Symptom: overfitting
Fixed (--fix, the training set augmented offline to 880 images as the reporter did: each image with 9 flipped or
rotated copies at a random intensity scale, the same iterations): val_loss 0.66 -> 0.38 (epoch 6) -> 0.37 at the
end, val_dice 0.76 -> 0.79-0.80 from epoch 6, train_loss 1.13 -> 0.35, level with validation (buggy: train_loss
1.16 -> 0.025 while val_loss reaches its best 0.42 at epoch 1 and then climbs steadily, 0.48 (epoch 6) -> 0.64 ->
0.80 -> 0.96 at the end; val_dice 0.78 at epoch 1, 0.73-0.74 from epoch 9 on) (checked; ~4.1 min CPU each, 5.8
min wall on a 2-core machine shared with other helpers).
"""

import sys

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
SIZE = 32
yy, xx = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")


def make(n):
    coarse = F.interpolate(torch.randn(n, 1, 8, 8), size=SIZE, mode="bilinear", align_corners=False)
    fine = torch.randn(n, 1, SIZE, SIZE)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    for i in range(n):
        cy, cx = torch.randint(8, 24, (2,)).tolist()
        ry, rx = (torch.rand(2) * 5 + 4).tolist()
        masks[i] = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).long()
    m = masks.unsqueeze(1).float()
    x = 1.0 * coarse + 0.7 * fine + m * (0.3 * fine + 0.15)
    return x, masks


x_train, m_train = make(88)
x_val, m_val = make(60)
if FIX:  # offline augmentation to 880 images
    augmented_x, augmented_m = [x_train], [m_train]
    for k in range(9):
        xa, ma = torch.rot90(x_train, k % 4, dims=(2, 3)), torch.rot90(m_train, k % 4, dims=(1, 2))
        if k >= 4:
            xa, ma = xa.flip(3), ma.flip(2)
        scale = 0.85 + 0.3 * torch.rand(len(xa), 1, 1, 1)
        augmented_x.append(xa * scale)
        augmented_m.append(ma)
    x_train, m_train = torch.cat(augmented_x), torch.cat(augmented_m)


def block(c_in, c_out):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.InstanceNorm2d(c_out, affine=True),
        nn.LeakyReLU(0.01),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.InstanceNorm2d(c_out, affine=True),
        nn.LeakyReLU(0.01),
    )


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1, self.enc2, self.bottom = block(1, 16), block(16, 32), block(32, 64)
        self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), block(64, 32)
        self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), block(32, 16)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        b = self.bottom(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)


def dice_and_ce(logits, target):
    ce = F.cross_entropy(logits, target)
    p = logits.softmax(1)[:, 1]
    t = target.float()
    dice = (2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5)
    return ce + (1 - dice)


def hard_dice(logits, target):
    p = (logits.argmax(1) == 1).float()
    t = target.float()
    return ((2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5)).item()


MAX_EPOCHS, ITERS, BATCH, LR = 30, 20, 8, 0.01
model = UNet()
optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.99, nesterov=True, weight_decay=3e-5)
g = torch.Generator().manual_seed(1)

with mlflow.start_run():
    mlflow.log_params({"n_train": len(x_train), "batch_size": BATCH, "iters_per_epoch": ITERS, "lr": LR})
    for epoch in range(MAX_EPOCHS):
        lr = LR * (1 - epoch / MAX_EPOCHS) ** 0.9
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        total = 0.0
        for _ in range(ITERS):
            idx = torch.randint(0, len(x_train), (BATCH,), generator=g)
            optimizer.zero_grad()
            loss = dice_and_ce(model(x_train[idx]), m_train[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 12)
            optimizer.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = dice_and_ce(out, m_val).item()
        metrics = {"train_loss": total / ITERS, "val_loss": val_loss, "val_dice": hard_dice(out, m_val), "lr": lr}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
