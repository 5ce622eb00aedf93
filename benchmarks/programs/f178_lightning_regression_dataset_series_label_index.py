"""A Lightning tabular regression whose custom Dataset reads the target with `series[idx]`: the training frame was shuffled, so pandas looks the integer up as an index label, not a position, and every feature row gets another row's target.

Report: ratschlab/aestetik issue #7 "__getitem__ uses label-based pandas indexing instead of positional"
  ("CustomDataset.__getitem__ accesses cluster labels using self.label_transcriptomics[idx] ... where idx
  is a positional integer from the DataLoader. Pandas Series.__getitem__ with an integer uses label-based
  indexing, not positional"; fix: `.iloc[idx]`, pull request #11) https://github.com/ratschlab/aestetik/issues/7
Setup: the silent form of that bug (pandas-dev/pandas issue #51374 shows the mechanism: after
`df.sample(frac=1)`, `.loc[0]` still returns the old row 0): a building-energy style table, 1600
training rows read from their own file and shuffled once with `train_df.sample(frac=1)` (so its index
is a permutation of 0..1599 and no lookup fails), 400 validation rows in file order; 8 standardised
features, the target (standardised load) a smooth non-linear function of them plus noise. A Dataset
keeps the features as a tensor (positional) and the target as the pandas Series, read with
`self.targets[idx]`; a LightningModule Linear(8,64)-ReLU-Linear(64,64)-ReLU-Linear(64,1), MSELoss,
Adam(lr=1e-3), batch 64, shuffled, 20 epochs; `self.log` train_loss per epoch, val_loss and val_r2.
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, the target read by position, `self.targets.iloc[idx]` as in the report's pull request):
train_loss 0.92 -> 0.042,
val_loss 1.03 -> 0.096, val_r2 0.16 -> 0.92 after 20 epochs (buggy: train_loss 1.01 -> 0.88, slowly
memorising, val_loss 1.23 -> 1.23 (best 1.19), val_r2 -0.00 -> 0.00, never above 0.03) (checked; ~77 s
wall each on a 2-core machine shared by three helpers, ~36 s CPU, OMP_NUM_THREADS=1).
"""

import sys

import lightning.pytorch as pl
import mlflow
import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
FEATURES = ["temp", "humidity", "wind", "occupancy", "hour_sin", "hour_cos", "floor_area", "glazing"]


def table(n):
    x = rng.normal(size=(n, len(FEATURES)))
    load = (
        0.8 * x[:, 0] ** 2
        - 0.6 * x[:, 0]
        + 0.5 * x[:, 1] * x[:, 3]
        + np.sin(2 * x[:, 4])
        + 0.7 * x[:, 6]
        + 0.3 * np.abs(x[:, 7])
        + 0.2 * rng.normal(size=n)
    )
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["load"] = load
    return frame


train_df = table(1600).sample(frac=1, random_state=42)  # "mix the sites" before training
val_df = table(400)
mean, std = train_df["load"].mean(), train_df["load"].std()
train_df["load"] = (train_df["load"] - mean) / std
val_df["load"] = (val_df["load"] - mean) / std


class EnergyDataset(Dataset):
    def __init__(self, frame):
        self.features = torch.tensor(frame[FEATURES].values, dtype=torch.float32)
        self.targets = frame["load"]

    def __len__(self):
        return len(self.features)

    def __getitem__(self, idx):
        y = self.targets.iloc[idx] if FIX else self.targets[idx]
        return self.features[idx], torch.tensor([y], dtype=torch.float32)


class LoadRegressor(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        loss = F.mse_loss(pred, y)
        self.log("val_loss", loss)
        self.log("val_r2", 1 - loss / y.var(unbiased=False))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


train_loader = DataLoader(EnergyDataset(train_df), batch_size=64, shuffle=True)
val_loader = DataLoader(EnergyDataset(val_df), batch_size=400)
trainer = pl.Trainer(
    max_epochs=20,
    enable_progress_bar=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    logger=False,
)
trainer.fit(LoadRegressor(), train_loader, val_loader)
print(trainer.current_epoch, {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()})
