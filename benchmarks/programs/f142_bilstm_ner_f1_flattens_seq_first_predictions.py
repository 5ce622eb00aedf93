"""A BiLSTM named-entity tagger whose loss is right but whose accuracy and F1 compare the predictions, flattened from the LSTM's (seq_len, batch) layout, with the gold tags flattened from (batch, seq_len): the model learns, the logged F1 stays near 0.1 (it is right only with batch size 1).

Report: kmkurn/pytorch-crf issue #45 "The f1 score only increases when the batch size =1" ("I use a
  Bilstm+CRF to do NER tasks, the loss decreases and the f1 remains 0.12 ... I change my batch size from 8
  to 1, then the F1 score increases to 0.91"; the cause: "I put the standard label as a batch_size *
  seq_len matrix, and my prediction was a seq_len * batch_size matrix. In fact, the network was trained,
  but the label did not match when calculating the accuracy or f1 (I converted both matrices into a
  one-dimensional vector)") https://github.com/kmkurn/pytorch-crf/issues/45
Setup: synthetic NER sentences of 16 tokens (vocabulary 300): first names (ids 1-40) followed by a surname
(41-60) are B-PER I-PER, place names (61-80) are B-LOC, a place after "in"/"at" (ids 81, 82) counts too, the
rest O (5 tags, ~25% entity tokens); the tags come from the dataset as (batch, seq_len); Embedding(300, 64)
-> nn.LSTM(64, 64, bidirectional, seq-first as pytorch-crf's default layout) -> Linear(128, 5) emissions
(seq_len, batch, tags); CrossEntropyLoss over emissions and `tags.t()` (the loss is aligned, as in the
report), Adam(lr=1e-3), batch 32, 2,000 training / 400 validation sentences, 8 epochs; per-epoch
train_loss, val_loss, val_acc and val_f1 (micro F1 over entity tokens) where the metric flattens
`emissions.argmax(-1)` (seq_len, batch) against `tags` (batch, seq_len).
Expected first: loss_metric_disagreement
Acceptable in top 3: -
Symptom: loss_metric_disagreement
Fixed (--fix, the predictions transposed to (batch, seq_len) before flattening, as the reporter found):
val_acc
0.754 -> 0.986 -> 1.0, val_f1 0.05 -> 0.97 -> 1.0 from epoch 4 (buggy: the same training, train_loss
0.975 -> 0.002, val_loss 0.607 -> 0.0018, but val_acc 0.741 -> 0.579 and val_f1 0.002 -> 0.091, both
constant from epoch 3 on: the flattened predictions are compared with another sentence's tags) (checked;
49 s wall, 16 s CPU each on a loaded 2-core machine).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
VOCAB, LENGTH, TAGS = 300, 16, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
OUTSIDE, B_PER, I_PER, B_LOC = 0, 1, 2, 3


def sentences(n):
    ids = torch.randint(83, VOCAB, (n, LENGTH))
    tags = torch.zeros(n, LENGTH, dtype=torch.long)
    for i in range(n):
        t = 0
        while t < LENGTH - 1:
            r = torch.rand(()).item()
            if r < 0.12:  # "First Surname"
                ids[i, t], ids[i, t + 1] = torch.randint(1, 41, ()), torch.randint(41, 61, ())
                tags[i, t], tags[i, t + 1] = B_PER, I_PER
                t += 2
            elif r < 0.2:  # "in/at Place"
                ids[i, t], ids[i, t + 1] = torch.randint(81, 83, ()), torch.randint(61, 81, ())
                tags[i, t + 1] = B_LOC
                t += 2
            else:
                t += 1
    return ids, tags


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.lstm = nn.LSTM(64, 64, bidirectional=True)  # seq-first, as the CRF layer expects
        self.out = nn.Linear(128, len(TAGS))

    def forward(self, ids):  # ids (batch, seq_len)
        h, _ = self.lstm(self.embed(ids.t()))
        return self.out(h)  # emissions (seq_len, batch, tags)


def scores(emissions, tags):
    pred = emissions.argmax(-1)
    if FIX:
        pred = pred.t()
    pred, gold = pred.reshape(-1), tags.reshape(-1)  # the bug: (seq_len, batch) against (batch, seq_len)
    acc = (pred == gold).float().mean().item()
    tp = ((pred == gold) & (gold != OUTSIDE)).sum().item()
    precision = tp / max((pred != OUTSIDE).sum().item(), 1)
    recall = tp / max((gold != OUTSIDE).sum().item(), 1)
    return acc, 2 * precision * recall / max(precision + recall, 1e-9)


x_train, y_train = sentences(2000)
x_val, y_val = sentences(400)
loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
model = Tagger()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

with mlflow.start_run():
    mlflow.log_params({"batch_size": 32, "lr": 1e-3, "embedding_dim": 64, "hidden_dim": 64, "epochs": 8})
    for epoch in range(8):
        model.train()
        total = 0.0
        for ids, tags in loader:
            optimizer.zero_grad()
            emissions = model(ids)
            loss = criterion(emissions.reshape(-1, len(TAGS)), tags.t().reshape(-1))
            loss.backward()
            optimizer.step()
            total += loss.item() * len(ids)
        model.eval()
        with torch.no_grad():
            emissions = model(x_val)
            val_loss = criterion(emissions.reshape(-1, len(TAGS)), y_val.t().reshape(-1)).item()
            val_acc, val_f1 = scores(emissions, y_val)
        metrics = {"train_loss": total / len(x_train), "val_loss": val_loss, "val_acc": val_acc, "val_f1": val_f1}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
