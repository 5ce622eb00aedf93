"""A Lightning bag-of-words intent classifier whose ReduceLROnPlateau is returned with `"interval": "step"` and monitors the per-batch training loss: `patience=10` now counts batches, every 11 batches without a new lowest batch loss cut the rate by 10, and the rate is ~0 within the first epoch.

Report: Lightning-AI/pytorch-lightning issue #1156 "ReduceLROnPlateau does not recognise val_loss despite
  progress_bar dict" (the reporter returned a ReduceLROnPlateau scheduler with `'interval': 'step'`; the
  maintainer's answer: "When you set 'interval': 'step' you are calling the .step() method for
  ReduceLROnPlateau after each batch", and the plateau test then runs on whatever is logged every step)
  https://github.com/Lightning-AI/pytorch-lightning/issues/1156
Setup: synthetic utterances of 24 token ids from a 600-word vocabulary, 6 intents (each intent raises the
frequency of its own 40 keywords; most tokens are shared filler), EmbeddingBag(600, 64, mode="mean") -
Linear(64, 64) - ReLU - Linear(64, 6), CrossEntropyLoss, Adam(lr=2e-3), ReduceLROnPlateau(factor=0.1,
patience=10) returned as {"scheduler": ..., "interval": "step", "monitor": "train_loss"}, batch 32,
4000 training / 1000 validation utterances, 4 epochs; self.log of train_loss every step (Lightning logs
every 10), val_loss / val_acc per epoch and the lr per epoch, through mlflow.autolog.
Expected first: lr_decay_too_fast
Acceptable in top 3: learning_rate_too_low
Symptom: plateau
Fixed (--fix, the scheduler left at Lightning's default interval, once an epoch, on val_loss): val_acc 0.445 ->
0.746 -> 0.843 -> 0.875, val_loss 1.597 -> 0.801 -> 0.499 -> 0.394 after 4 epochs, lr 2e-3 throughout (buggy: the
lr is below 5e-5 at the end of the first epoch and ends at 2e-9 (where the scheduler's eps stops the cuts),
while the batch loss is still at ln 6 = 1.79; val_loss
1.789 and val_acc 0.167 (chance) at every epoch, train_loss 1.77-1.80) (checked; ~75 s / ~90 s CPU, 4-6 min wall
on a 2-core machine loaded 3x over).
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
VOCAB, LEN, N_INTENTS = 600, 24, 6


class IntentClassifier(pl.LightningModule):
    def __init__(self, vocab=VOCAB, dim=64, n_classes=N_INTENTS, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, n_classes))

    def forward(self, tokens):
        return self.head(self.embedding(tokens))

    def training_step(self, batch, batch_idx):
        tokens, y = batch
        loss = F.cross_entropy(self(tokens), y)
        self.log("train_loss", loss, on_step=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        tokens, y = batch
        logits = self(tokens)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def on_validation_epoch_end(self):
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        print(self.current_epoch, {k: round(float(v), 4) for k, v in self.trainer.callback_metrics.items()})

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=10)
        if FIX:  # the default interval: once an epoch, on the validation loss
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "monitor": "train_loss"},
        }


def utterances(n):
    y = torch.randint(0, N_INTENTS, (n,))
    filler = torch.randint(N_INTENTS * 40, VOCAB, (n, LEN))
    keywords = y[:, None] * 40 + torch.randint(0, 40, (n, LEN))
    use_keyword = torch.rand(n, LEN) < 0.12
    return torch.where(use_keyword, keywords, filler), y


x_train, y_train = utterances(4000)
x_val, y_val = utterances(1000)
train = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x_val, y_val), batch_size=256)
trainer = pl.Trainer(
    max_epochs=4,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=10,
    enable_model_summary=False,
)
trainer.fit(IntentClassifier(), train, val)
print(trainer.callback_metrics)
