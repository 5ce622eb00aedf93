"""A Lightning BERT multi-label comment tagger whose `get_linear_schedule_with_warmup` is stepped every batch but sized with `num_training_steps=self.trainer.max_epochs`: the rate warms up for 10 steps and is 0 from then on.

Report: Lightning-AI/pytorch-lightning issue #18570 "Schedulers don't work" (`get_linear_schedule_with_warmup(
  optimizer, num_warmup_steps=10, num_training_steps=self.trainer.max_epochs)` returned with
  `interval="step"`; the maintainer: "You set the num training steps to max_epochs but the interval
  for scheduling to 'step' ... If `num_warmup_steps > num_training_step` it can't decay!"; the total
  is the number of optimizer steps, `self.trainer.estimated_stepping_batches`)
  https://github.com/Lightning-AI/pytorch-lightning/issues/18570
Setup: a toxic-comment-style multi-label task: sequences of 24 tokens over a 60-token vocabulary,
4 labels, each present when one of its 3 cue tokens occurs (about 35% per label), 1200 training /
400 validation comments; `BertModel` built from a `BertConfig` (2 layers, hidden 128, 2 heads,
intermediate 512; no hub weights), dropout, Linear(128, 4) on the [CLS] state,
BCEWithLogitsLoss, AdamW(lr=1e-3), `get_linear_schedule_with_warmup(num_warmup_steps=10,
num_training_steps=self.trainer.max_epochs)` with `"interval": "step"` as in the report, batch 32,
max_epochs=4 (152 steps); `self.log` of train_loss, lr, val_loss and val_acc (per label) through
mlflow.autolog (logger=False).
Expected first: lr_decay_too_fast
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, num_training_steps=self.trainer.estimated_stepping_batches, the maintainer's fix):
lr 1e-3 after the warm-up falling linearly to 0 at step 152, val_loss 0.635 -> 0.076 -> 0.061 -> 0.057,
val_acc (per label) 0.661 -> 0.993 from the second epoch, train_loss 0.62 -> 0.12 (buggy: lr 1e-4 to
9e-4 over steps 1-9, then 0 for the remaining 142 steps; val_loss 0.720 at every epoch (ln 2 = 0.693),
val_acc 0.659 at every epoch (all four tags predicted absent), train_loss 0.68, 0.67, 0.68, 0.78: batch
noise around a fixed model) (checked; 113 s / 76 s wall on a 2-core machine shared by three helpers
with OMP_NUM_THREADS=1, 49 s / 45 s CPU).
"""

import sys

import lightning.pytorch as pl
import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import BertConfig, BertModel, get_linear_schedule_with_warmup

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
VOCAB, LENGTH, LABELS = 60, 24, 4
cues = torch.arange(2, 14).view(LABELS, 3)


def make_comments(n):
    x = torch.randint(14, VOCAB, (n, LENGTH))
    x[:, 0] = 1  # [CLS]
    y = (torch.rand(n, LABELS) < 0.35).float()
    for i in range(n):
        for k in range(LABELS):
            if y[i, k]:
                pos = int(torch.randint(1, LENGTH, ()))
                x[i, pos] = cues[k, int(torch.randint(0, 3, ()))]
    return x, y


class CommentTagger(pl.LightningModule):
    def __init__(self, lr=1e-3, n_warmup_steps=10):
        super().__init__()
        self.save_hyperparameters()
        config = BertConfig(
            vocab_size=VOCAB,
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=512,
            max_position_embeddings=LENGTH,
        )
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(128, LABELS)
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, input_ids):
        return self.classifier(self.dropout(self.bert(input_ids=input_ids).last_hidden_state[:, 0]))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train_loss", loss)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.criterion(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches if FIX else self.trainer.max_epochs
        scheduler = get_linear_schedule_with_warmup(
            optimizer, num_warmup_steps=self.hparams.n_warmup_steps, num_training_steps=total
        )
        return dict(optimizer=optimizer, lr_scheduler=dict(scheduler=scheduler, interval="step", frequency=1))


x, y = make_comments(1600)
train = DataLoader(TensorDataset(x[:1200], y[:1200]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[1200:], y[1200:]), batch_size=200)
trainer = pl.Trainer(
    max_epochs=4,
    enable_progress_bar=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    logger=False,
    log_every_n_steps=10,
)
trainer.fit(CommentTagger(), train, val)
print(trainer.callback_metrics)
