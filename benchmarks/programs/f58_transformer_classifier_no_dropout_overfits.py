"""A small Transformer text classifier built with dropout=0.0 and trained with no weight decay for 30 epochs on 300 sentences: it memorises them and val_loss climbs epoch after epoch.

Report: huggingface/pytorch-openai-transformer-lm issue #31 "Prevent model overfit" (a transformer
  text classifier: training accuracy 0.92 while dev accuracy stays ~0.7 and dev_loss keeps growing
  with more epochs; the user asks what to tune so that it stops overfitting)
  https://github.com/huggingface/pytorch-openai-transformer-lm/issues/31
Setup: Embedding(100, 64) + learned positions, nn.TransformerEncoder (2 layers, d_model 64, 4 heads,
dim_feedforward 128, dropout=0.0), mean pooling, Linear(64, 2); CrossEntropyLoss, Adam(lr=1e-3,
weight_decay=0), batch 20, 30 epochs, 300 training sentences of 12 token ids (label: one of the
"positive" words 5..9 occurs, 15% of the labels flipped); per-epoch train_loss / train_acc /
val_loss / val_acc.
Expected first: no_regularization
Acceptable in top 3: dataset_too_small
Symptom: overfitting
Fixed (--fix, dropout=0.3 in the encoder and on the embeddings, AdamW(weight_decay=0.05)): val_loss 0.90 (best 0.66), val_acc 0.76 after 30 epochs, train_acc 0.95 (buggy: train_loss 0.02, train_acc 1.00, val_loss climbing from 0.66 at epoch 2 to 1.55, val_acc 0.685; label-noise ceiling 0.85) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
DROPOUT = 0.3 if FIX else 0.0


def make(n):
    ids = torch.randint(5, 100, (n, 12))
    y = ((ids < 10).sum(1) > 0).long()
    flip = torch.rand(n) < 0.15
    y[flip] = 1 - y[flip]
    return ids, y


class TextClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 64)
        self.pos = nn.Parameter(torch.randn(12, 64) * 0.02)
        self.drop = nn.Dropout(DROPOUT)
        layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, dropout=DROPOUT, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(64, 2)

    def forward(self, ids):
        h = self.encoder(self.drop(self.emb(ids) + self.pos))
        return self.head(h.mean(1))


x_train, y_train = make(300)
x_val, y_val = make(400)
model = TextClassifier()
criterion = nn.CrossEntropyLoss()
if FIX:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
else:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(30):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(300)
        for i in range(0, 300, 20):
            idx = perm[i : i + 20]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        metrics = {"train_loss": total / 300, "train_acc": correct / 300, "val_loss": val_loss, "val_acc": val_acc}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 3) for k, v in metrics.items()})
