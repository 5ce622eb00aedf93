"""A Lightning fruit-sorting CNN trained on RGB images (PIL) and validated on the same kind of images read as BGR (OpenCV).

Report: "Fix RGB vs BGR and Normalization Mismatch Between Training and Inference in Computer Vision"
  (Troubles Factory case: training read images with PIL / torchvision in RGB, the other pipeline read them
  with `cv2.imread`, which returns BGR; the red channel lands in the blue slot and predictions look
  random; fix: one shared preprocessing path, `cv2.cvtColor(img, cv2.COLOR_BGR2RGB)`)
  https://troubles-factory.com/cases/2026-06-18-01-rgb-bgr-normalization-train-inference-mismatch/
Setup: 3x24x24 photos of 4 kinds of fruit on a grey belt (ripe tomato: red disc, unripe tomato: green
disc, blueberry: small blue disc, lemon: yellow ellipse; position, size, shade and noise vary); the
training split goes through the PIL loader (RGB), the validation split through a second loader written
with OpenCV (BGR, no conversion); both normalised with the ImageNet mean/std in RGB order; a
LightningModule CNN (conv 16, conv 32, global average pool, linear 4), F.cross_entropy, SGD(lr=0.05,
momentum=0.9), batch 32, 1600 training / 400 validation images, 6 epochs; self.log train_loss and
train_acc per epoch, val_loss / val_acc per epoch.
Expected first: train_val_preprocessing_mismatch
Acceptable in top 3: -
Symptom: overfitting
Fixed (--fix, the validation loader converts BGR to RGB): val_acc 1.0, val_loss 0.0001 after 6 epochs
(buggy: train_acc 1.0 and train_loss 0.0002 as in the fix, val_acc 0.49 and val_loss 13.5: tomatoes read as
blueberries, lemons as cyan) (checked; ~10 s of training, ~53 s in all, OMP_NUM_THREADS=1).
"""

import sys

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)

# class: (RGB colour 0..255, radius range, elongation)
FRUIT = {
    0: ((200, 40, 35), (6, 9), 1.0),  # ripe tomato
    1: ((70, 170, 50), (6, 9), 1.0),  # unripe tomato
    2: ((45, 60, 170), (3, 5), 1.0),  # blueberry
    3: ((225, 205, 40), (5, 8), 1.6),  # lemon
}
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]


def photograph(label):
    """The file on disk, as PIL would read it: H x W x 3, uint8, RGB."""
    colour, (r_lo, r_hi), elong = FRUIT[label]
    img = np.full((24, 24, 3), 128.0) + rng.normal(0, 6, 3)
    cy, cx = rng.uniform(8, 16, 2)
    r = rng.uniform(r_lo, r_hi)
    yy, xx = np.mgrid[0:24, 0:24]
    mask = ((yy - cy) / r) ** 2 + ((xx - cx) / (r * elong)) ** 2 <= 1
    shade = rng.uniform(0.8, 1.15)
    img[mask] = np.clip(np.array(colour) * shade + rng.normal(0, 12, 3), 0, 255)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def to_tensor(img_rgb):
    x = img_rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
    return torch.tensor((x - MEAN) / STD)


class PILFruit(Dataset):
    """Training loader: Image.open(path).convert('RGB') -> ToTensor -> Normalize."""

    def __init__(self, files, labels):
        self.files, self.labels = files, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return to_tensor(self.files[i]), self.labels[i]


class OpenCVFruit(PILFruit):
    """Validation loader from the sorting-line script: cv2.imread(path) gives BGR."""

    def __getitem__(self, i):
        img = self.files[i][:, :, ::-1]  # what cv2.imread returns for the same file
        if FIX:
            img = img[:, :, ::-1]  # cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return to_tensor(np.ascontiguousarray(img)), self.labels[i]


def files(n):
    labels = rng.integers(0, 4, n)
    return [photograph(int(y)) for y in labels], torch.tensor(labels)


class FruitCNN(pl.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(32, 4)

    def forward(self, x):
        return self.classifier(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        self.log("train_acc", (out.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


train = PILFruit(*files(1600))
val = OpenCVFruit(*files(400))
trainer = pl.Trainer(
    max_epochs=6,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    enable_model_summary=False,
)
trainer.fit(FruitCNN(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=100))
print({k: round(float(v), 4) for k, v in trainer.callback_metrics.items()})
