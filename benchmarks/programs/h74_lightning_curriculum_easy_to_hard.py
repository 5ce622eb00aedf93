"""Curriculum learning in Lightning: the training set starts with the easiest third of the samples and the harder ones are added at epochs 4 and 8 (the dataloader is rebuilt every epoch), so the training loss jumps up at each stage while the validation loss on the full-difficulty set keeps falling.

Report: healthy, in the style of the curriculum-learning recipes built on Lightning's
  `reload_dataloaders_every_n_epochs=1` (a `train_dataloader` that reads `self.trainer.current_epoch`
  and widens the subset it samples from, as in the Lightning docs' "Reload DataLoaders Every Epoch"),
  after Bengio et al. 2009, "Curriculum Learning" (easy examples first, the full distribution later)
  https://lightning.ai/docs/pytorch/stable/common/trainer.html#reload-dataloaders-every-n-epochs
Setup: 6-class classification of 24 standardised features (class centroids plus a non-linear
nuisance and noise of varying strength per sample); difficulty = the sample's noise level, known
from the generator (as a teacher model's score would give it); 3600 training / 900 validation
samples; stage 1 (epochs 0-3) the easiest 33%, stage 2 (epochs 4-7) the easiest 66%, stage 3
(epochs 8-13) everything; MLP 24-128-128-6 with dropout 0.1, F.cross_entropy, Adam(lr=1e-3),
batch 64, 14 epochs; self.log train_loss every step (log_every_n_steps=10) and per epoch,
val_loss / val_acc per epoch and the curriculum share per epoch.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: val_loss 1.176 -> 0.273 by epoch 2, up a little to 0.307 while stage 2 (epochs 4-7) fits the
easier two thirds, down again to 0.251-0.267 in stage 3; val_acc 0.844 -> 0.917 -> 0.922 (best 0.931);
train_loss per epoch 1.53 -> 0.033 on the easiest third, jumping to 0.091 at epoch 4 and to 0.239 at
epoch 8 as harder samples come in, 0.152 at the end (checked; 37 s CPU, 131 s wall on a 2-core machine
loaded by other jobs, OMP_NUM_THREADS=1 as the runner sets).
"""

import lightning.pytorch as pl
import mlflow
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
CLASSES, FEATURES = 6, 24
STAGES = [(0, 0.33), (4, 0.66), (8, 1.0)]  # (first epoch, share of the easiest samples)


def make(n):
    y = torch.randint(0, CLASSES, (n,))
    centroids = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(1)) * 0.9
    difficulty = torch.rand(n)  # noise strength: 0 easy .. 1 hard
    nuisance = torch.sin(torch.randn(n, FEATURES) * 2)
    x = centroids[y] + (0.3 + 1.7 * difficulty[:, None]) * (torch.randn(n, FEATURES) + 0.5 * nuisance)
    return x, y, difficulty


x_train, y_train, difficulty = make(3600)
x_val, y_val, _ = make(900)
mean, std = x_train.mean(0), x_train.std(0)
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
order = difficulty.argsort()  # easiest first


class CurriculumData(pl.LightningDataModule):
    def share(self):
        epoch = self.trainer.current_epoch if self.trainer else 0
        return [s for start, s in STAGES if epoch >= start][-1]

    def train_dataloader(self):
        keep = order[: int(self.share() * len(order))]
        return DataLoader(TensorDataset(x_train[keep], y_train[keep]), batch_size=64, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(x_val, y_val), batch_size=300)


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(FEATURES, 128),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, CLASSES),
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def on_train_epoch_start(self):
        self.log("curriculum_share", self.trainer.datamodule.share())

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


trainer = pl.Trainer(
    max_epochs=14,
    reload_dataloaders_every_n_epochs=1,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=10,
    enable_model_summary=False,
)
trainer.fit(Classifier(), datamodule=CurriculumData())
print(trainer.callback_metrics)
