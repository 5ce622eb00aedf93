"""A Lightning GRU on accelerometer windows read recording by recording, with shuffle=False: long runs of one activity.

Report: "Mistake 11: Not shuffling the training data" (Most common ML mistakes; the WISDM activity
  recognition rows come sorted by user, each user's recording sessions one after another; neural
  networks trained by gradient descent see batches that do not represent the whole distribution
  unless the rows are shuffled)
  https://enriquegit.github.io/most-common-ml-mistakes/notshuffling.html
Setup: WISDM-style tri-axial accelerometer windows (32 steps x 3 axes) of 6 activities (walking,
jogging, upstairs, downstairs, sitting, standing), read in file order: 4 users, each recording the 6
activities one after another (100 windows per recording), 2400 training windows; validation from 2
other users; a LightningModule GRU(3, 32) + Linear(32, 6), F.cross_entropy, Adam(lr=3e-3), batch 32,
`DataLoader(train, batch_size=32, shuffle=False)`, 6 epochs; self.log train_loss per step
(log_every_n_steps=5), val_loss / val_acc per epoch.
Expected first: data_not_shuffled
Acceptable in top 3: -
Symptom: oscillating_loss, plateau
Fixed (--fix, shuffle=True): val_acc 0.893, val_loss 0.29, last step's train_loss 0.44 after 6 epochs (buggy:
val_acc 0.671, val_loss 0.78, last step's train_loss 1.50, three steps into the last recording, `standing`)
(checked; ~10 s of training, ~55 s with imports and autolog's model logging, OMP_NUM_THREADS=1 on a
loaded shared 2-core machine).
"""

import math
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

ACTIVITIES = ["walking", "jogging", "upstairs", "downstairs", "sitting", "standing"]
# step frequency (Hz), swing amplitude (g), gravity direction (x, y, z)
PROFILE = {
    0: (1.9, 0.45, (0.0, 1.0, 0.1)),
    1: (2.8, 1.10, (0.0, 1.0, 0.1)),
    2: (1.6, 0.40, (0.25, 0.95, 0.2)),
    3: (2.1, 0.55, (-0.25, 0.95, 0.2)),
    4: (0.0, 0.03, (0.1, 0.3, 0.95)),
    5: (0.0, 0.03, (0.0, 0.98, 0.2)),
}


def recording(activity, n_windows, user_gain):
    freq, amp, grav = PROFILE[activity]
    t = torch.arange(32) / 20.0  # 20 Hz, 1.6 s windows
    phase = torch.rand(n_windows, 1) * 2 * math.pi
    f = freq * (1 + 0.1 * torch.randn(n_windows, 1))
    swing = amp * user_gain * torch.sin(2 * math.pi * f * t + phase)
    axes = torch.stack([0.3 * swing, swing, 0.5 * swing.roll(3, 1)], -1)
    g = torch.tensor(grav) + 0.08 * torch.randn(n_windows, 1, 3)
    return axes + g + 0.25 * torch.randn(n_windows, 32, 3), torch.full((n_windows,), activity)


def read_users(n_users, per_recording):
    xs, ys = [], []
    for _ in range(n_users):
        gain = 0.8 + 0.4 * torch.rand(1)
        for activity in range(6):  # each user's file: one recording per activity, in order
            x, y = recording(activity, per_recording, gain)
            xs.append(x)
            ys.append(y)
    return torch.cat(xs), torch.cat(ys)


class HARClassifier(pl.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(3, 32, batch_first=True)
        self.head = nn.Linear(32, 6)

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])

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


train = TensorDataset(*read_users(4, 100))
val = TensorDataset(*read_users(2, 60))
train_loader = DataLoader(train, batch_size=32, shuffle=FIX)
val_loader = DataLoader(val, batch_size=256)
trainer = pl.Trainer(
    max_epochs=6,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=5,
    enable_model_summary=False,
)
trainer.fit(HARClassifier(), train_loader, val_loader)
print({k: round(float(v), 4) for k, v in trainer.callback_metrics.items()})
