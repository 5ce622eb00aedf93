"""An LSTM (batch_first=False) fed x.view(seq, batch, feat) instead of x.transpose(0, 1): every sequence is stitched from other samples.

Report: HHTseng/video-classification issue #42 "Possible bug in DecoderRNN class" (the LSTM's
  input given with the wrong dimension order; the suggested fix with .view(seq, batch, feat) is
  answered: "This will not work ... X.view(5, 2) ... X.transpose(0,1) ... Both yield the same shape
  but first one is erroneous") https://github.com/HHTseng/video-classification/issues/42
Setup: sequences of 20 steps x 8 features, 4 classes told apart by the frequency of a sine in the
first features plus noise, DataLoader-style batches (batch, seq, feat) of 32, nn.LSTM(8, 64) with
batch_first=False, input x.view(20, batch, 8), Linear(64, 4) on the last hidden state,
CrossEntropyLoss, Adam(lr=1e-3), per-epoch train_loss / train_acc / val_loss / val_acc.
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, x.transpose(0, 1)): val_acc 0.998, val_loss 0.009 after 10 epochs (buggy: train/val loss 1.386 = ln 4, accuracy 0.25 = chance) (checked).
"""

import math
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

SEQ, FEAT = 20, 8


def make(n):
    y = torch.randint(0, 4, (n,))
    t = torch.arange(SEQ).float()
    phase = torch.rand(n, 1) * 2 * math.pi
    wave = torch.sin((0.3 + 0.35 * y.unsqueeze(1).float()) * t + phase)  # (n, SEQ)
    x = 0.5 * torch.randn(n, SEQ, FEAT)
    x[:, :, :3] += wave.unsqueeze(-1)
    return x, y


x_train, y_train = make(2000)
x_val, y_val = make(500)


class SeqClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(FEAT, 64)  # batch_first=False: expects (seq, batch, feat)
        self.fc = nn.Linear(64, 4)

    def forward(self, x):  # x: (batch, seq, feat)
        x = x.transpose(0, 1) if FIX else x.view(SEQ, x.size(0), FEAT)
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


model = SeqClassifier()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(10):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(2000)
        for i in range(0, 2000, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(x_val[i : i + 32]) for i in range(0, 500, 32)])
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics(
            {"train_loss": total / 2000, "train_acc": correct / 2000, "val_loss": val_loss, "val_acc": val_acc},
            step=epoch,
        )
        print(epoch, total / 2000, correct / 2000, val_loss, val_acc)
