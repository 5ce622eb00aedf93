"""A Lightning BiLSTM sequence tagger on padded variable-length sentences, ignore_index for the padding.

Report: healthy, in the style of the PyTorch "Sequence Models and LSTM Networks" part-of-speech tagger
  (https://pytorch.org/tutorials/beginner/nlp/sequence_models_tutorial.html) moved into a
  LightningModule with batches, padding and `ignore_index` (https://lightning.ai/docs/pytorch/stable/starter/introduction.html)
Setup: sentences of 6-20 token ids over a vocabulary of 60 (0 = padding), 5 tags: a token's tag is its
word class (id // 12), except that words 48-59 are ambiguous and take the tag of the word before them;
Embedding(60, 32) -> bidirectional LSTM(32, 48) -> Linear(96, 5), F.cross_entropy(ignore_index=-100) on
the padded positions, Adam(lr=3e-3), batch 64, 6 epochs, 1,024 training sentences; self.log("train/loss") per step, val/loss and
val/token_acc per epoch (padding excluded).
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val/token_acc 0.999, val/loss 0.040 after 6 epochs (the ambiguous words need the left context).
"""

import lightning.pytorch as pl
import mlflow
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
MAX_LEN, N_TAGS = 20, 5


def make(n):
    ids = torch.zeros(n, MAX_LEN, dtype=torch.long)
    tags = torch.full((n, MAX_LEN), -100)
    for i in range(n):
        length = int(torch.randint(6, MAX_LEN + 1, (1,)))
        words = torch.randint(1, 60, (length,))
        word_tags = words // 12
        for t in range(length):
            if words[t] >= 48:
                word_tags[t] = word_tags[t - 1] if t > 0 else 0
        ids[i, :length], tags[i, :length] = words, word_tags
    return ids, tags


class Tagger(pl.LightningModule):
    def __init__(self, vocab=60, emb=32, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, N_TAGS)

    def forward(self, ids):
        hidden, _ = self.lstm(self.embedding(ids))
        return self.out(hidden)

    def training_step(self, batch, batch_idx):
        ids, tags = batch
        loss = F.cross_entropy(self(ids).reshape(-1, N_TAGS), tags.reshape(-1), ignore_index=-100)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        ids, tags = batch
        logits = self(ids)
        mask = tags != -100
        self.log("val/loss", F.cross_entropy(logits.reshape(-1, N_TAGS), tags.reshape(-1), ignore_index=-100))
        self.log("val/token_acc", (logits.argmax(-1) == tags)[mask].float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


x_train, y_train = make(1024)
x_val, y_val = make(256)
train = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(x_val, y_val), batch_size=256)
trainer = pl.Trainer(
    max_epochs=6,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=5,
    enable_model_summary=False,
)
trainer.fit(Tagger(), train, val)
print(trainer.callback_metrics)
