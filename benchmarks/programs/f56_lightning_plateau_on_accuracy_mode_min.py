"""A Lightning video-clip classifier whose ReduceLROnPlateau watches val_acc in its default "min" mode, so every gain in accuracy counts as no improvement.

Report: md-mohaiminul/ViS4mer issue #4 "ReduceLROnPlateau" (the scheduler is stepped on an accuracy
  metric but keeps its default mode "min", in which "lr will be reduced when the quantity monitored has
  stopped decreasing"; the author: not intended, change the mode to "max")
  https://github.com/md-mohaiminul/ViS4mer/issues/4
Setup: clips of 12 frame-feature vectors (24 dims), 5 classes told apart by a weak class pattern over
the frames plus unit noise, 2,048 training / 256 validation clips; LightningModule clip classifier
(flatten, Linear(288, 128), ReLU, Dropout(0.2), Linear(128, 5)), F.cross_entropy, AdamW(lr=2e-4),
ReduceLROnPlateau(factor=0.2, patience=1) returned from configure_optimizers with monitor="val_acc" and
no mode (the bug), batch 128, 12 epochs; self.log("train/loss") per step, val_loss / val_acc / lr per epoch.
Expected first: lr_decay_too_fast
Acceptable in top 3: learning_rate_too_low
Symptom: plateau
Fixed (--fix, mode="max"): val_acc 0.97, val_loss 0.47 (still falling) after 12 epochs, lr never reduced
(buggy: lr cut 5x every second epoch from epoch 3, 2e-4 -> 6e-8; val_acc 0.73 and val_loss 1.28 flat from
epoch 5, train/loss stuck at 1.22) (checked).
"""

import sys

import lightning.pytorch as pl
import mlflow
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


class ClipClassifier(pl.LightningModule):
    def __init__(self, n_frames=12, d_in=24, hidden=128, n_classes=5, lr=2e-4):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(n_frames * d_in, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, n_classes)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def on_validation_epoch_end(self):
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        if FIX:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.2, patience=1)
        else:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.2, patience=1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_acc"}}


patterns = torch.randn(5, 12, 24)
y = torch.randint(0, 5, (2304,))
x = 0.2 * patterns[y] + torch.randn(2304, 12, 24)
train = DataLoader(TensorDataset(x[:2048], y[:2048]), batch_size=128, shuffle=True)
val = DataLoader(TensorDataset(x[2048:], y[2048:]), batch_size=256)
trainer = pl.Trainer(
    max_epochs=12,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=4,
    enable_model_summary=False,
)
trainer.fit(ClipClassifier(), train, val)
print(trainer.callback_metrics)
