"""A batch-first Transformer encoder text classifier with a sinusoidal PositionalEncoding module whose positions are taken from the wrong axis, `pos = torch.arange(x.size(0)).unsqueeze(1)` on an input of shape (batch, seq, d_model): every token of a sequence gets the same vector (the one of the sequence's index in the batch), so the encoder has no word-order information and, with mean pooling, sees each sentence as a bag of words.

Report: cmu-l3/anlp-fall2025-code issue #1 "positional encoding fix for 05_transformers?" ("`pos = torch.arange(x.size(0),
  device=x.device).unsqueeze(1)` after broadcasting, all tokens in the same sequence get the SAME positional
  encoding; seems like it should be updated to `pos = torch.arange(x.size(1), device=x.device).unsqueeze(0)`";
  the maintainer: "Oops, good catch. I updated the code.") https://github.com/cmu-l3/anlp-fall2025-code/issues/1
Setup: the course notebook itself is not reproduced, only its PositionalEncoding line, in an ordinary
batch-first encoder classifier (nn.Embedding(32, 64) * sqrt(d_model) + sinusoidal PE computed from `pos`,
2 nn.TransformerEncoderLayer(64, 4 heads, ff 128, dropout 0.1, batch_first=True), mean pooling, Linear(64, 2));
a synthetic word-order task: 16-token sentences of filler words (ids 2..31) that always contain the two
marker words 0 and 1 once each, label 1 when marker 0 comes before marker 1 (so the bag of words carries no
signal); CrossEntropyLoss, Adam(lr=5e-4), batch 64, 3,000 training / 600 validation sentences, 15 epochs;
per epoch `train_loss`, `train_acc`, `val_loss`, `val_acc` with `mlflow.log_metrics`.
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: overfitting, plateau
Fixed (--fix, positions from `x.size(1)`, one encoding per position shared by all sequences, as the issue
proposes): train_loss 0.701 -> 0.191, val_loss 0.696 -> 0.105, val_acc 0.51 -> 0.955 after 15 epochs (chance
for 4 epochs, then rising, with dips to 0.87 at epochs 9 and 14) (buggy: train_loss 0.702 -> 0.652 and
train_acc 0.49 -> 0.62 as the model memorises sentences, while val_loss rises 0.696 -> 0.734 and val_acc stays
at 0.47-0.54 throughout) (checked; 121 s / 78 s wall, 38 s / 37 s CPU, on the 2-core machine shared by four
helpers).
"""

import math
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
VOCAB, SEQ_LEN, D_MODEL, N_TRAIN, N_VAL, BATCH, EPOCHS = 32, 16, 64, 3000, 600, 64, 15


def make_split(n):
    x = torch.randint(2, VOCAB, (n, SEQ_LEN))
    where = torch.stack([torch.randperm(SEQ_LEN)[:2] for _ in range(n)])
    x[torch.arange(n), where[:, 0]] = 0
    x[torch.arange(n), where[:, 1]] = 1
    y = (where[:, 0] < where[:, 1]).long()
    return x, y


class PositionalEncoding(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.register_buffer("div_term", torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model)))

    def forward(self, x):  # x: (batch, seq, d_model)
        if FIX:
            pos = torch.arange(x.size(1), device=x.device).unsqueeze(1)  # (seq, 1)
        else:
            pos = torch.arange(x.size(0), device=x.device).unsqueeze(1)  # (batch, 1): the notebook's line
        pe = torch.zeros(pos.size(0), x.size(-1), device=x.device)
        pe[:, 0::2] = torch.sin(pos * self.div_term)
        pe[:, 1::2] = torch.cos(pos * self.div_term)
        if FIX:
            return x + pe.unsqueeze(0)  # the same encoding for every sequence, one per position
        return x + pe.unsqueeze(1)  # one vector per sequence, broadcast over its tokens


class TransformerClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D_MODEL)
        self.pos = PositionalEncoding(D_MODEL)
        layer = nn.TransformerEncoderLayer(D_MODEL, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(D_MODEL, 2)

    def forward(self, tokens):
        h = self.pos(self.embed(tokens) * math.sqrt(D_MODEL))
        return self.head(self.encoder(h).mean(dim=1))


x_train, y_train = make_split(N_TRAIN)
x_val, y_val = make_split(N_VAL)
model = TransformerClassifier()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)

with mlflow.start_run():
    mlflow.log_params({"lr": 5e-4, "batch_size": BATCH, "epochs": EPOCHS, "d_model": D_MODEL})
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(N_TRAIN)
        total, correct = 0.0, 0
        for i in range(0, N_TRAIN, BATCH):
            idx = perm[i : i + BATCH]
            optimizer.zero_grad()
            logits = model(x_train[idx])
            loss = criterion(logits, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            val_loss, val_correct = 0.0, 0
            for i in range(0, N_VAL, BATCH):
                logits = model(x_val[i : i + BATCH])
                val_loss += criterion(logits, y_val[i : i + BATCH]).item() * len(logits)
                val_correct += (logits.argmax(1) == y_val[i : i + BATCH]).sum().item()
        metrics = {
            "train_loss": total / N_TRAIN,
            "train_acc": correct / N_TRAIN,
            "val_loss": val_loss / N_VAL,
            "val_acc": val_correct / N_VAL,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
