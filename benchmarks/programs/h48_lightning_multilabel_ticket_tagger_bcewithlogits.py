"""Multi-label support-ticket tagging in Lightning: an EmbeddingBag text model with one logit per tag, nn.BCEWithLogitsLoss, micro-F1 on the validation set.

Report: healthy, in the style of the Lightning multi-label text classification examples (a LightningModule
  with one logit per label, `nn.BCEWithLogitsLoss` on float multi-hot targets, a sigmoid and a 0.5
  threshold for micro-F1 and subset accuracy, `self.log` of train_loss / val_loss / val_f1_micro) and the
  PyTorch text-classification tutorial's EmbeddingBag model
  https://pytorch.org/tutorials/beginner/text_sentiment_ngrams_tutorial.html
Setup: synthetic "support tickets" of 10-24 tokens over a vocabulary of 400 ids (0 is padding); 5 topic
tags (billing, login, shipping, refund, bug), each present with probability 15-40% and signalled by its own
keyword ids (12 per tag) appearing 1-3 times among filler words, plus keywords of an absent tag in 5% of
tickets as noise; EmbeddingBag(400, 64, mode="mean", padding_idx=0) -> Linear(64, 64) -> ReLU ->
Linear(64, 5), BCEWithLogitsLoss, Adam(lr=3e-3), batch 32, 2000 training / 500 validation tickets,
8 epochs; self.log train_loss per step (Lightning logs every 10 steps), val_loss / val_f1_micro /
val_subset_accuracy per epoch (mlflow autolog records them).
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss 0.516 -> 0.405 -> 0.306 -> 0.241 -> 0.205 -> 0.180 -> 0.170 -> 0.163, val_f1_micro 0.13 -> 0.56
-> 0.73 -> 0.81 -> 0.84 -> 0.86 -> 0.88 -> 0.89, val_subset_accuracy 0.22 -> 0.74, train_loss 0.54 -> 0.056 at the
end (still improving slowly; checked; 37 s CPU, 58 s wall on a loaded machine).
"""

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
VOCAB, LENGTH, TAGS = 400, 24, ["billing", "login", "shipping", "refund", "bug"]
RATES = [0.4, 0.3, 0.25, 0.15, 0.3]
KEYWORDS = [list(range(10 + 12 * k, 22 + 12 * k)) for k in range(len(TAGS))]


class TicketDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        self.ids = torch.zeros(n, LENGTH, dtype=torch.long)
        self.mask = torch.zeros(n, LENGTH, dtype=torch.long)
        self.labels = torch.zeros(n, len(TAGS))
        for i in range(n):
            length = int(rng.integers(10, LENGTH + 1))
            tokens = list(rng.integers(100, VOCAB, length))
            slots = list(rng.permutation(np.arange(1, length)))
            for k in range(len(TAGS)):
                if rng.random() < RATES[k]:
                    self.labels[i, k] = 1.0
                    for _ in range(min(int(rng.integers(1, 4)), len(slots) - 1)):
                        tokens[slots.pop()] = int(rng.choice(KEYWORDS[k]))
                elif rng.random() < 0.05 and len(slots) > 1:
                    tokens[slots.pop()] = int(rng.choice(KEYWORDS[k]))
            tokens[0] = 1  # [CLS]
            self.ids[i, :length] = torch.tensor(tokens)
            self.mask[i, :length] = 1

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]


class TicketTagger(pl.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.EmbeddingBag(VOCAB, 64, mode="mean", padding_idx=0)
        self.classifier = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, len(TAGS)))
        self.criterion = nn.BCEWithLogitsLoss()

    def forward(self, ids):
        return self.classifier(self.embedding(ids))

    def training_step(self, batch, batch_idx):
        ids, labels = batch
        loss = self.criterion(self(ids), labels)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        ids, labels = batch
        logits = self(ids)
        predictions = (torch.sigmoid(logits) > 0.5).float()
        tp = (predictions * labels).sum()
        precision = tp / predictions.sum().clamp(min=1)
        recall = tp / labels.sum().clamp(min=1)
        self.log("val_loss", self.criterion(logits, labels))
        self.log("val_f1_micro", 2 * precision * recall / (precision + recall).clamp(min=1e-9))
        self.log("val_subset_accuracy", (predictions == labels).all(dim=1).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


train = DataLoader(TicketDataset(2000), batch_size=32, shuffle=True)
val = DataLoader(TicketDataset(500), batch_size=500)
trainer = pl.Trainer(
    max_epochs=8,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=10,
    enable_model_summary=False,
)
trainer.fit(TicketTagger(), train, val)
print(trainer.callback_metrics)
