"""A LightningModule keeps its hidden layers in a plain Python list: they are not registered, never handed to the optimiser, and stay at their random initial weights.

Report: pytorch/pytorch issue #715 "Module: parameters are not included if the module is initialized
  in a list" (an SNLI classifier builds `self.hids = []` of Linear + activation layers in a loop;
  only `classifier` shows up in `parameters()`; answer: wrap them in nn.ModuleList)
  https://github.com/pytorch/pytorch/issues/715
Setup: a sentence-pair (NLI-style) classifier as a LightningModule: premise and hypothesis vectors
(2 x 16, concatenated), `self.hids` = a Python list of 2 x [Linear(., 64), ReLU] built in a loop,
`self.classifier = Linear(64, 3)`, label entailment / neutral / contradiction from the cosine of the
pair, F.cross_entropy, Adam(lr=3e-3) over self.parameters(), batch 64, 8 epochs; self.log train_loss
per step, val_loss / val_acc per epoch.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, self.hids = nn.ModuleList(...)): val_acc 0.73, val_loss 0.62 after 8 epochs (buggy: val_acc 0.43, val_loss 1.07, train_loss ~1.05: only the classifier learns, on fixed random ReLU features) (checked).
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


class PairClassifier(pl.LightningModule):
    def __init__(self, dim=16, n_hid=64, n_layers=2, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        hids = []
        indim = 2 * dim
        for _ in range(n_layers):
            hids.append(nn.Linear(indim, n_hid))
            hids.append(nn.ReLU())
            indim = n_hid
        self.hids = nn.ModuleList(hids) if FIX else hids
        self.classifier = nn.Linear(n_hid, 3)

    def forward(self, premise, hypothesis):
        h = torch.cat([premise, hypothesis], 1)
        for layer in self.hids:
            h = layer(h)
        return self.classifier(h)

    def training_step(self, batch, batch_idx):
        p, q, y = batch
        loss = F.cross_entropy(self(p, q), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        p, q, y = batch
        out = self(p, q)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def make(n):
    p = torch.randn(n, 16)
    q = torch.randn(n, 16)
    cos = F.cosine_similarity(p, q)
    y = torch.full((n,), 1)
    y[cos > 0.15] = 0  # entailment
    y[cos < -0.15] = 2  # contradiction
    return p, q, y


train = DataLoader(TensorDataset(*make(3000)), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(*make(1000)), batch_size=500)
trainer = pl.Trainer(
    max_epochs=8,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=10,
    enable_model_summary=False,
)
trainer.fit(PairClassifier(), train, val)
print(trainer.callback_metrics)
