"""A Lightning regression module with ReduceLROnPlateau on val_loss and per-step logging.

Report: healthy, in the style of the Lightning docs' `configure_optimizers` returning an
  `lr_scheduler` dict with ReduceLROnPlateau and `monitor="val_loss"`
  https://lightning.ai/docs/pytorch/stable/common/lightning_module.html#configure-optimizers
Setup: 12 standardised features, a standardised non-linear target plus noise (std 0.3 of the
target's), MLP 12-64-64-1, F.mse_loss, Adam(lr=3e-3), ReduceLROnPlateau(factor=0.3, patience=1)
on val_loss, self.log("train_loss") every step (log_every_n_steps=10), val_loss / val_mae / lr per
epoch, batch 32, 15 epochs.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss 0.114, val_mae 0.27 after 15 epochs (noise floor ~0.08); lr reduced 3e-3 -> 9e-4.
"""

import lightning.pytorch as pl
import mlflow
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)


class Regressor(pl.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.mse_loss(out, y))
        self.log("val_mae", (out - y).abs().mean())

    def on_validation_epoch_end(self):
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}


w1, w2 = torch.randn(12, 16), torch.randn(16)
x = torch.randn(2400, 12)
f = torch.tanh(x @ w1 / 3.5) @ w2
y = (f + 0.3 * f.std() * torch.randn(2400))[:, None]
y = (y - y[:2000].mean()) / y[:2000].std()
train = DataLoader(TensorDataset(x[:2000], y[:2000]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[2000:], y[2000:]), batch_size=400)
trainer = pl.Trainer(
    max_epochs=15,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=10,
    enable_model_summary=False,
)
trainer.fit(Regressor(), train, val)
print(trainer.callback_metrics)
