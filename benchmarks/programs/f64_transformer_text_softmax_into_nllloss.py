"""A Transformer text classifier ends in nn.Softmax and is trained with nn.NLLLoss: the "loss" is minus the probability of the right class, always negative.

Report: AnubhavGupta3377/Text-Classification-Models-Pytorch issue #9 "NLLLoss" ("the input of
  nn.NLLloss() is after logsoftmax ... however, here only softmax is provided in model.py therefore,
  the loss is always negative. I only check the Transformer model")
  https://github.com/AnubhavGupta3377/Text-Classification-Models-Pytorch/issues/9
Setup: token sequences (vocabulary 60, length 24), 4 topics: each topic has 6 keywords, a sequence
holds 2-4 keywords of its topic among random filler tokens and 1-2 keywords of other topics; model
= Embedding(60, 32) + learned positions + TransformerEncoder(2 layers, d_model 32, 4 heads,
feed-forward 64) + mean pooling + Linear(32, 4) + nn.Softmax(dim=1), nn.NLLLoss, Adam(lr=5e-4),
batch 32, 2400 training / 600 validation sequences, 8 epochs; `train_loss` logged every 25 steps,
val_loss / val_acc per epoch.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, nn.LogSoftmax(dim=1) before the NLLLoss): val_acc 0.852, val_loss 0.63 after 8 epochs, val_acc still rising (buggy: train_loss / val_loss negative from the first step, -0.05 -> -0.55, val_acc 0.08 -> 0.58 after 8 epochs: the gradient of -p is ~1/20 of the cross-entropy's while p is near 1/20) (checked; ~20 s each).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
VOCAB, LENGTH, TOPICS = 120, 24, 20
keywords = torch.arange(TOPICS * 4).view(TOPICS, 4)  # tokens 0-79 are keywords, 80-119 filler


def make(n):
    y = torch.randint(0, TOPICS, (n,))
    x = torch.randint(TOPICS * 4, VOCAB, (n, LENGTH))
    for i in range(n):
        pos = torch.randperm(LENGTH)
        k = int(torch.randint(2, 5, ()))
        m = int(torch.randint(1, 3, ()))
        x[i, pos[:k]] = keywords[y[i], torch.randint(0, 4, (k,))]
        other = (y[i] + torch.randint(1, TOPICS, (m,))) % TOPICS
        x[i, pos[k : k + m]] = keywords[other, torch.randint(0, 4, (m,))]
    return x, y


class TransformerClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.pos = nn.Parameter(torch.randn(LENGTH, 32) * 0.02)
        layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.fc = nn.Linear(32, TOPICS)
        self.softmax = nn.LogSoftmax(dim=1) if FIX else nn.Softmax(dim=1)

    def forward(self, x):
        h = self.encoder(self.embed(x) + self.pos)
        return self.softmax(self.fc(h.mean(1)))


x_train, y_train = make(2400)
x_val, y_val = make(600)
model = TransformerClassifier()
criterion = nn.NLLLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
step = 0
with mlflow.start_run():
    for epoch in range(8):
        model.train()
        perm = torch.randperm(2400)
        for i in range(0, 2400, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            if step % 25 == 0:
                mlflow.log_metric("train_loss", loss.item(), step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_acc": val_acc}, step=step)
        print(f"epoch {epoch}: train_loss {loss.item():.4f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}")
