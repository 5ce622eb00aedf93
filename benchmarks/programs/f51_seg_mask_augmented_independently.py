"""A small U-Net-style segmenter whose random flips and rotations are drawn separately for the image and for its mask.

Report: bigmb/Unet-Segmentation-Pytorch-Nest-of-Unets pull request #30 "fix the random transformation on
  both image and target" (a U-Net training repository whose random transforms were not applied
  identically to an image and its mask) https://github.com/bigmb/Unet-Segmentation-Pytorch-Nest-of-Unets/pull/30;
  the same mistake in pytorch/vision issue #6753 (a RandomHorizontalFlip called once for the image and
  once for the mask: "the image and the mask are flipped in an uncoordinated fashion")
Setup: 1x24x24 grey images with one L-shaped object (random position and size) on a noisy
background, binary mask target; encoder-decoder CNN (two stride-2 convs, two transposed convs, a skip),
BCEWithLogitsLoss, Adam(lr=2e-3), batch 16; training-time augmentation = random horizontal flip,
vertical flip and 90-degree rotation, drawn once for the image and again for the mask (the bug);
validation without augmentation; per-epoch train_loss / val_loss / val_iou.
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, one draw applied to image and mask): val_iou 0.94, val_loss 0.014 after 7 epochs (buggy:
val_iou 0.00 (all background), val_loss 0.22 and train_loss 0.27 flat from epoch 2) (checked).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


def make(n):
    images = 0.2 * torch.randn(n, 1, 24, 24)
    masks = torch.zeros(n, 1, 24, 24)
    for i in range(n):
        h, w = torch.randint(7, 13, (2,)).tolist()
        r, c = torch.randint(0, 24 - h, (1,)).item(), torch.randint(0, 24 - w, (1,)).item()
        masks[i, 0, r : r + h, c : c + 3] = 1.0  # vertical bar of the L
        masks[i, 0, r + h - 3 : r + h, c : c + w] = 1.0  # foot of the L
    images += masks
    return images, masks


def random_dihedral(t, g):
    if torch.rand(1, generator=g).item() < 0.5:
        t = t.flip(-1)
    if torch.rand(1, generator=g).item() < 0.5:
        t = t.flip(-2)
    return torch.rot90(t, int(torch.randint(0, 4, (1,), generator=g)), dims=(-2, -1))


class SegDataset(Dataset):
    def __init__(self, images, masks, augment):
        self.images, self.masks, self.augment = images, masks, augment
        self.g = torch.Generator().manual_seed(1)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image, mask = self.images[i], self.masks[i]
        if self.augment:
            if FIX:
                both = random_dihedral(torch.cat([image, mask]), self.g)
                image, mask = both[:1], both[1:]
            else:
                image = random_dihedral(image, self.g)
                mask = random_dihedral(mask, self.g)
        return image, mask


class TinyUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.enc3 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.up1 = nn.Sequential(nn.ConvTranspose2d(32, 16, 2, stride=2), nn.ReLU())
        self.up2 = nn.Sequential(nn.ConvTranspose2d(16, 8, 2, stride=2), nn.ReLU())
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        d = self.up2(self.up1(self.enc3(self.enc2(e1))))
        return self.head(torch.cat([d, e1], 1))


x_train, m_train = make(640)
x_val, m_val = make(200)
train_loader = DataLoader(SegDataset(x_train, m_train, augment=True), batch_size=16, shuffle=True)
model = TinyUNet()
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
with mlflow.start_run():
    for epoch in range(7):
        model.train()
        total = 0.0
        for images, masks in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), masks)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(images)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, m_val).item()
            pred = out > 0
            inter = (pred & (m_val > 0.5)).sum().item()
            union = (pred | (m_val > 0.5)).sum().item()
        train_loss = total / len(x_train)
        mlflow.log_metrics({"train_loss": train_loss, "val_loss": val_loss, "val_iou": inter / union}, step=epoch)
        print(f"epoch {epoch}: train_loss {train_loss:.4f} val_loss {val_loss:.4f} val_iou {inter / union:.3f}")
