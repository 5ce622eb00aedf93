"""Embedding-LSTM-Linear text classifier with nn.Softmax before nn.CrossEntropyLoss: loss pinned near ln 3.

Report: PyTorch Forums "Cross Entropy loss is not decreasing" (solution 1: you pass the softmax
  into CrossEntropyLoss) https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814/16
Setup: Embedding(500, 32) -> LSTM(32, 64) -> Linear(64, 3) -> Softmax(dim=1), CrossEntropyLoss,
Adam(lr=1e-3), per-epoch train_loss / val_loss / val_acc, 3 sentiment classes.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau, not_converged
Fixed (--fix, no Softmax): val_acc 0.987, val_loss 0.041 after 12 epochs (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

VOCAB, SEQ = 500, 20


def make(n):
    x = torch.randint(3, VOCAB, (n, SEQ))
    y = torch.randint(0, 3, (n,))
    x[torch.arange(n), torch.randint(0, SEQ, (n,))] = y  # the class shows as a sentiment word somewhere
    return x, y


x_train, y_train = make(1200)
x_val, y_val = make(300)


class SentimentLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 32)
        self.lstm = nn.LSTM(32, 64, batch_first=True)
        self.fc = nn.Linear(64, 3)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        _, (h, _) = self.lstm(self.embedding(x))
        out = self.fc(h[-1])
        return out if FIX else self.softmax(out)


model = SentimentLSTM()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(12):
        model.train()
        total = 0.0
        for i in range(0, len(x_train), 32):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 32]), y_train[i : i + 32])
            loss.backward()
            optimizer.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics(
            {"train_loss": total / (len(x_train) // 32), "val_loss": val_loss, "val_acc": val_acc}, step=epoch
        )
        print(epoch, total / (len(x_train) // 32), val_loss, val_acc)
