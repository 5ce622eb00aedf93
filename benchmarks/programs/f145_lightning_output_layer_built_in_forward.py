"""A LightningModule builds its output layer inside `forward()` (`nn.Linear(128, 10)(x)`): every batch gets a fresh, randomly initialised layer that no optimiser holds, so the classifier head never trains and the network's predictions stay at chance.

Report: "PyTorch Neural Network — The forward() Layer Bug" (thecodeforge.io: "Loss drops, validation
  accuracy stuck at 10% random? Layers in forward() create new weights each batch—optimizer updates old
  ones"; "Defining layers inside forward() creates new untrained weights every pass — the optimizer updates
  weights that are immediately discarded"; fix: define every layer in __init__)
  https://thecodeforge.io/ml-ai/pytorch-neural-network/
Setup: a 10-class digit classifier on 8x8 images (sklearn-digits-like: 10 stroke templates, shifted by a
pixel, random stroke intensity and noise, 0..16 grey levels divided by 16), flattened to 64 inputs;
LightningModule with `self.fc1 = nn.Linear(64, 128)` in __init__ and, in forward, ReLU then
`nn.Linear(128, 10)(x)` built on the spot; F.cross_entropy, Adam(lr=1e-3) over self.parameters() in
configure_optimizers, batch 64, 2,400 training / 600 validation images, 10 epochs; self.log train_loss
per step (log_every_n_steps=10) and per epoch, val_loss / val_acc per epoch.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, `self.fc2 = nn.Linear(128, 10)` in __init__ and `self.fc2(x)` in forward, as the page
says): val_acc 0.890, val_loss
0.506, train_loss 0.500 after 10 epochs (buggy: val_acc 0.097, val_loss 2.314, train_loss 2.302 = ln 10 at the
end: the hidden layer trains against a new random head every batch and nothing carries over) (checked; 68 s / 84 s
wall, ~43 s / ~52 s CPU on a 2-core machine loaded by two other helpers).
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
gen = torch.Generator().manual_seed(1)


def templates():
    """One 8x8 template per digit: two or three random strokes on the grid."""
    t = torch.zeros(10, 8, 8)
    for d in range(10):
        for _ in range(int(torch.randint(2, 4, (1,), generator=gen))):
            r0, c0, r1, c1 = torch.randint(1, 7, (4,), generator=gen).tolist()
            for s in torch.linspace(0, 1, 12):
                t[d, round(r0 + s.item() * (r1 - r0)), round(c0 + s.item() * (c1 - c0))] = 1.0
    return t


TEMPLATES = templates()


def make(n):
    y = torch.randint(0, 10, (n,), generator=gen)
    imgs = TEMPLATES[y] * (10 + 6 * torch.rand(n, 1, 1, generator=gen))
    imgs = torch.stack(
        [torch.roll(im, (int(torch.randint(-1, 2, (1,))), int(torch.randint(-1, 2, (1,)))), (0, 1)) for im in imgs]
    )
    imgs = (imgs + 3 * torch.randn(n, 8, 8, generator=gen)).clamp(0, 16) / 16.0
    return imgs.reshape(n, 64), y


class DigitNet(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.fc1 = nn.Linear(64, 128)
        if FIX:
            self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        if FIX:
            return self.fc2(x)
        return nn.Linear(128, 10)(x)  # the output layer, built on every call

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


x_train, y_train = make(2400)
x_val, y_val = make(600)
trainer = pl.Trainer(
    max_epochs=10,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=10,
    enable_model_summary=False,
)
trainer.fit(
    DigitNet(),
    DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True),
    DataLoader(TensorDataset(x_val, y_val), batch_size=300),
)
print(trainer.callback_metrics)
