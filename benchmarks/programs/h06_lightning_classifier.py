"""A LightningModule classifier with Adam(lr=1e-3), as in Lightning's own quick-start, with per-step and per-epoch logs.

Report: healthy, in the style of the Lightning quick-start LitModel
  https://lightning.ai/docs/pytorch/stable/starter/introduction.html
Setup: MLP 20-64-64-4, F.cross_entropy, self.log("train_loss") per step, val_loss / val_acc per
epoch, Adam(lr=1e-3), Trainer(max_epochs=8), mlflow.autolog() around fit.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss ~0.28, val_acc ~0.9 (this program with lr=3 is f03).
"""

import lightning.pytorch as pl
import mlflow
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)


class Classifier(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
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
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


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
trainer.fit(Classifier(), train, val)
print(trainer.callback_metrics)
