"""A LightningModule with Adam(lr=3): the training loss climbs from ~1.4 to over 100.

Report: Lightning-AI/pytorch-lightning issue #4862 "Training loss not convergence" (Adam with a
  learning rate far above the default, loss stuck / not converging)
  https://github.com/Lightning-AI/pytorch-lightning/issues/4862
Setup as in issue 11: LightningModule, Adam(lr=3), train loss logged with self.log, val loss per epoch.
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: diverging, plateau, nonfinite_loss
Fixed (--fix, lr=1e-3): val_loss 0.23, val_acc 0.915 after 8 epochs (checked; buggy: val_loss 17.8, val_acc 0.28).
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


class Classifier(pl.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


w = torch.randn(20, 4)
x = torch.randn(1200, 20)
y = (x @ w + 0.3 * torch.randn(1200, 4)).argmax(1)
train = DataLoader(TensorDataset(x[:1000], y[:1000]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[1000:], y[1000:]), batch_size=200)

trainer = pl.Trainer(
    max_epochs=8,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=5,
    enable_model_summary=False,
)
trainer.fit(Classifier(1e-3 if FIX else 3.0), train, val)
print(trainer.callback_metrics)
