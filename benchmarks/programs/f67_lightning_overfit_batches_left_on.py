"""A Lightning Trainer keeps `overfit_batches=2` from a debugging session: every epoch trains on the same two batches and the model memorises 128 rows.

Report: Lightning-AI/pytorch-lightning issue #12668 "What does `overfit_batches` do in trainer?" (the
  user trained with `overfit_batches=10` and found the results bad; the flag makes the Trainer reuse
  the same few batches every epoch, a debugging aid) https://github.com/Lightning-AI/pytorch-lightning/issues/12668
Setup: a LightningModule MLP 16-128-128-5 (ReLU) on 16 standardised features with 5 classes from a
random teacher network, F.cross_entropy, Adam(lr=1e-3), batch 64, 4000 training / 1000 validation
rows, 15 epochs, `pl.Trainer(max_epochs=15, overfit_batches=2, ...)`; self.log train_loss per step
(log_every_n_steps=1 so the two steps an epoch are logged), train_acc, val_loss / val_acc per epoch.
Expected first: repeated_batch
Acceptable in top 3: -
Symptom: overfitting, not_converged
Fixed (--fix, no overfit_batches): val_acc 0.912, val_loss 0.22, train_acc 0.97 after 15 epochs (37 s) (buggy: Lightning warns it turns shuffling off; 2 steps an epoch on the same 128 rows, 30 steps in all: train_loss 0.90, train_acc 0.67, val_loss 1.05, val_acc 0.62 after 15 epochs, 23 s) (checked).
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

teacher = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 5))


def make(n):
    x = torch.randn(n, 16)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    return x, y


class Classifier(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 5))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        loss = F.cross_entropy(out, y)
        self.log("train_loss", loss)
        self.log("train_acc", (out.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


train = DataLoader(TensorDataset(*make(4000)), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(*make(1000)), batch_size=500)
trainer = pl.Trainer(
    max_epochs=15,
    overfit_batches=0.0 if FIX else 2,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=1,
    enable_model_summary=False,
)
trainer.fit(Classifier(), train, val)
print(trainer.callback_metrics)
