"""A Lightning BERT acceptability classifier whose `training_step` logs its loss but does not return it: Lightning skips backward and the optimizer step for every batch, so nothing ever trains.

Report: graviraja/MLOps-Basics issue #14 "Is training happening?" (week 0's ColaModel, a
  `pytorch_lightning.LightningModule` over `google/bert_uncased_L-2_H-128_A-2` with a Linear(128, 2)
  head on the [CLS] state: "here, the loss is not returned, is the model even training?"; the
  author: "we are logging in to the logger. No need to return the loss"; the reply: Lightning does
  not look in the logged metrics for a loss, it warns "training_step returned None" and skips the
  step; fixed by returning the loss)
  https://github.com/graviraja/MLOps-Basics/issues/14
Setup: a CoLA-like acceptability task over a 60-token vocabulary: acceptable sentences follow a
small grammar (determiner, 0-2 adjectives, noun, verb, determiner, noun, optional adverb), unacceptable
ones are the same words in a random order; 70% acceptable as in CoLA, 2400 training / 600
validation sentences padded to 16; `BertModel` built from a `BertConfig` with the checkpoint's
shape (2 layers, hidden 128, 2 heads, intermediate 512; no hub weights), Linear(128, 2) on the
[CLS] state, F.cross_entropy, Adam(lr=1e-3), batch 32, EarlyStopping(monitor="val_loss",
patience=3) and max_epochs=5 as in the repository's train.py; `pytorch_lightning` imported as in
the report, `self.log` of train_loss, val_loss, val_acc through mlflow.autolog (logger=False).
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, `return loss` at the end of training_step, the reply's fix): val_loss 0.219 -> 0.177 ->
0.174 -> 0.108 -> 0.113, val_acc 0.935 -> 0.940 -> 0.932 -> 0.970 -> 0.968 over the 5 epochs, train_loss
(epoch mean) 0.126 -> 0.015 (buggy: Lightning warns "`training_step` returned `None`" and skips every
step; val_loss 0.744 at every epoch, val_acc 0.272 at every epoch (the 30% minority class predicted
for all), train_loss 0.76, 0.72, 0.76, 0.71 (batch noise around an unchanged model); EarlyStopping ends
it after 4 epochs) (checked; 52 s / 113 s wall on a 2-core machine shared by three helpers with
OMP_NUM_THREADS=1, 44 s / 56 s CPU).
"""

import sys

import mlflow
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks.early_stopping import EarlyStopping
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from transformers import BertConfig, BertModel

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
PAD, CLS, SEP, LENGTH = 0, 1, 2, 16
DETS, ADJS, NOUNS, VERBS, ADVS = range(3, 7), range(7, 20), range(20, 40), range(40, 55), range(55, 60)


def pick(tokens):
    return int(torch.tensor(list(tokens))[torch.randint(0, len(tokens), ())])


def sentence():
    words = [pick(DETS)] + [pick(ADJS) for _ in range(int(torch.randint(0, 3, ())))]
    words += [pick(NOUNS), pick(VERBS), pick(DETS), pick(NOUNS)]
    if torch.rand(()) < 0.5:
        words.append(pick(ADVS))
    return words


class ColaLikeDataset(Dataset):
    def __init__(self, n):
        self.items = []
        for _ in range(n):
            words, label = sentence(), 1
            if torch.rand(()) < 0.3:
                order = torch.randperm(len(words))
                while bool((order == torch.arange(len(words))).all()):
                    order = torch.randperm(len(words))
                words, label = [words[i] for i in order], 0
            ids = [CLS] + words + [SEP]
            mask = [1] * len(ids) + [0] * (LENGTH - len(ids))
            self.items.append((torch.tensor(ids + [PAD] * (LENGTH - len(ids))), torch.tensor(mask), label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        ids, mask, label = self.items[i]
        return {"input_ids": ids, "attention_mask": mask, "label": label}


class ColaModel(pl.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        config = BertConfig(
            vocab_size=60,
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=512,
            max_position_embeddings=LENGTH,
        )
        self.bert = BertModel(config)
        self.W = nn.Linear(self.bert.config.hidden_size, 2)
        self.num_classes = 2

    def forward(self, input_ids, attention_mask):
        outputs = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        h_cls = outputs.last_hidden_state[:, 0]
        return self.W(h_cls)

    def training_step(self, batch, batch_idx):
        logits = self.forward(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits, batch["label"])
        self.log("train_loss", loss, prog_bar=True)
        if FIX:
            return loss

    def validation_step(self, batch, batch_idx):
        logits = self.forward(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits, batch["label"])
        _, preds = torch.max(logits, dim=1)
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_acc", (preds == batch["label"]).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])


train = DataLoader(ColaLikeDataset(2400), batch_size=32, shuffle=True)
val = DataLoader(ColaLikeDataset(600), batch_size=32, shuffle=False)
trainer = pl.Trainer(
    max_epochs=5,
    enable_progress_bar=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    logger=False,
    log_every_n_steps=10,
    callbacks=[EarlyStopping(monitor="val_loss", patience=3, verbose=True, mode="min")],
)
with mlflow.start_run():
    trainer.fit(ColaModel(), train, val)
print(trainer.callback_metrics)
