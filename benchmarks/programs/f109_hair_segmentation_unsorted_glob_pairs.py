"""A mobile U-Net for hair segmentation whose image and mask file lists come from two unsorted `glob`
calls: the file system returns each folder in its own order, so image i is paired with the mask of
another portrait and the network is trained (and validated) against masks unrelated to its inputs.

Report: TRANHV-VFA-DO-NOT-USE/MobileAILab-HairColor-iOS (formerly vfa-tranhv/) issue #2 "Model parameters" (the model "still segments poorly";
  answer: "You should debug each steps. For example, the set of image and mask is corresponding or not";
  the reporter: "In data.py, these two lines are adding files to the glob in an undefined order:
  `img_files = glob(data_dir + '/images/*.jpg')`, `mask_files = glob(data_dir + '/masks/*.ppm')`.
  Changing them to `sorted(glob(...))` fixes my segmentation")
  https://github.com/TRANHV-VFA-DO-NOT-USE/MobileAILab-HairColor-iOS/issues/2
Setup: as the project's data.py / train.py (a MobileNet-style U-Net, depthwise-separable convolutions, a
sigmoid mask, loss = 1 - dice coefficient, Adam): portraits and their hair masks written to
images/*.jpg and masks/*.ppm in a temporary folder (arrays saved under those names), listed with
`glob` (here in the order an ext4 directory returns them, the order of the names' hashes, so that the
run does not depend on this machine's file system), zipped, the first 600 pairs for training and the
last 200 for validation; synthetic 3x32x32 portraits (a skin-coloured face ellipse of random size and
place, hair of random colour, length and parting around it, textured background); batch 16, Adam(lr=1e-3),
10 epochs; per-epoch loss / dice_coef / val_loss / val_dice_coef (the Keras names the project printed).
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: plateau, overfitting
Fixed (--fix, `sorted(glob(...))` for both folders, as the reporter did): val_dice_coef 0.45 -> 0.77 (epoch 2)
-> 0.94 -> 0.976 after 10 epochs, val_loss 0.626 -> 0.193 (buggy: pairs such as 00420.jpg / 00317.ppm;
val_dice_coef 0.38 -> 0.48 by epoch 4, then flat at 0.49-0.50, the overlap of an average hair mask; val_loss
0.697 -> 0.534, train loss 0.714 -> 0.487 and still falling as the network memorises the wrong masks; a 12-epoch
run on 1,000 pairs had val_loss turn up from epoch 8, 0.504 -> 0.510, with val_dice_coef 0.514 -> 0.499)
(checked; ~44 s CPU each, 130-200 s wall on the heavily loaded 2-core machine).
"""

import glob as _glob
import os
import sys
import tempfile
import zlib

import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
SIZE = 32


def glob(pattern):
    """glob.glob as it behaved for the reporter: directory order (ext4 lists names by their hash), not by name."""
    return sorted(_glob.glob(pattern), key=lambda p: zlib.crc32(os.path.basename(p).encode()))


def portrait():
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    img = rng.uniform(0.3, 0.9, 3)[:, None, None] + 0.15 * rng.standard_normal((3, SIZE, SIZE))
    cy, cx = rng.uniform(12, 22), rng.uniform(9, 23)
    ry, rx = rng.uniform(6, 9), rng.uniform(4.5, 7)
    face = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    head = ((yy - cy + 2) / (ry + 3)) ** 2 + ((xx - cx) / (rx + 2.5)) ** 2 <= 1
    length = rng.uniform(-2, ry + 4)  # short hair stops above the eyes, long hair falls to the shoulders
    hair = head & ~face | (head & (yy < cy - ry * 0.45))
    hair &= yy < cy + length
    if rng.random() < 0.5:  # a fringe
        hair |= face & (yy < cy - ry * rng.uniform(0.2, 0.6))
    img[:, face] = (np.array([0.85, 0.65, 0.5]) * rng.uniform(0.6, 1.1))[:, None]
    colour = rng.choice([[0.1, 0.07, 0.05], [0.35, 0.2, 0.1], [0.8, 0.65, 0.3], [0.5, 0.1, 0.05]])
    img[:, hair] = (np.array(colour)[:, None] + 0.06 * rng.standard_normal((3, hair.sum()))).clip(0, 1)
    return img.astype(np.float32), hair.astype(np.float32)


data_dir = tempfile.mkdtemp()
os.makedirs(f"{data_dir}/images")
os.makedirs(f"{data_dir}/masks")
for i in range(800):
    img, mask = portrait()
    with open(f"{data_dir}/images/{i:05d}.jpg", "wb") as f:
        np.save(f, img)
    with open(f"{data_dir}/masks/{i:05d}.ppm", "wb") as f:
        np.save(f, mask)

# data.py
if FIX:
    img_files = sorted(glob(data_dir + "/images/*.jpg"))
    mask_files = sorted(glob(data_dir + "/masks/*.ppm"))
else:
    img_files = glob(data_dir + "/images/*.jpg")
    mask_files = glob(data_dir + "/masks/*.ppm")
pairs = list(zip(img_files, mask_files))
print("first pairs:", [(os.path.basename(a), os.path.basename(b)) for a, b in pairs[:3]])


class HairDataset(Dataset):
    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        img_path, mask_path = self.pairs[i]
        with open(img_path, "rb") as f:
            img = np.load(f)
        with open(mask_path, "rb") as f:
            mask = np.load(f)
        return torch.from_numpy((img - 0.5) / 0.5), torch.from_numpy(mask)[None]


train_loader = DataLoader(HairDataset(pairs[:600]), batch_size=16, shuffle=True)
val_loader = DataLoader(HairDataset(pairs[600:]), batch_size=50)


def separable(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU6(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class MobileUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(True))
        self.down1 = nn.Sequential(nn.MaxPool2d(2), separable(16, 32))
        self.down2 = nn.Sequential(nn.MaxPool2d(2), separable(32, 64), separable(64, 64))
        self.up1 = nn.Upsample(scale_factor=2)
        self.dec1 = separable(64 + 32, 32)
        self.up2 = nn.Upsample(scale_factor=2)
        self.dec2 = separable(32 + 16, 16)
        self.out = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        s = self.stem(x)
        d1 = self.down1(s)
        d2 = self.down2(d1)
        u1 = self.dec1(torch.cat([self.up1(d2), d1], 1))
        u2 = self.dec2(torch.cat([self.up2(u1), s], 1))
        return torch.sigmoid(self.out(u2))


def dice_coef(y_pred, y_true, smooth=1.0):
    inter = (y_pred * y_true).sum()
    return (2.0 * inter + smooth) / (y_pred.sum() + y_true.sum() + smooth)


def dice_coef_loss(y_pred, y_true):
    return 1.0 - dice_coef(y_pred, y_true)


model = MobileUNet()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

with mlflow.start_run():
    mlflow.log_params({"lr": 1e-3, "batch_size": 16, "img_size": SIZE, "n_train": 600, "n_val": 200})
    for epoch in range(10):
        model.train()
        losses, dices = [], []
        for x, y in train_loader:
            optimizer.zero_grad()
            pred = model(x)
            loss = dice_coef_loss(pred, y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            dices.append(dice_coef(pred.detach(), y).item())
        model.eval()
        val_losses, val_dices = [], []
        with torch.no_grad():
            for x, y in val_loader:
                pred = model(x)
                val_losses.append(dice_coef_loss(pred, y).item())
                val_dices.append(dice_coef((pred > 0.5).float(), y).item())
        metrics = {
            "loss": float(np.mean(losses)),
            "dice_coef": float(np.mean(dices)),
            "val_loss": float(np.mean(val_losses)),
            "val_dice_coef": float(np.mean(val_dices)),
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
