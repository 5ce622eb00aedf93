"""A handwriting-stroke LSTM whose depth was given the width by mistake, nn.LSTM(..., num_layers=args.rnn_size): a plain stack of 16 LSTM layers that never learns the next pen offset, where the intended 2 layers do.

Report: hardmaru/write-rnn-tensorflow pull request #30 "Fix number of layers when constructing MultiRNNCell"
  ("Without this, the code attempts to construct a net that is `rnn_size` deep -- as deep as it is wide":
  the model built MultiRNNCell([cell] * args.rnn_size) instead of args.num_layers)
  https://github.com/hardmaru/write-rnn-tensorflow/pull/30
Setup: pen trajectories as sequences of (dx, dy) offsets (each stroke a sum of two slow oscillations with a
random frequency, phase and slant, plus jitter), standardised; the model predicts the next offset from the
ones so far: nn.LSTM(2, args.rnn_size, num_layers=args.rnn_size, batch_first=True) with rnn_size 16 (so 16
stacked layers, no residual connections or normalisation) + Linear(16, 2), MSELoss (the report's mixture
density output replaced by its mean), Adam(lr=2e-3), gradient clipping at 10 as in the report's
grad_clip, batch 32, 500 training / 200 validation strokes of 24 steps, 6 epochs; train/loss per epoch,
val/loss per epoch.
Expected first: network_too_deep
Acceptable in top 3: vanishing_gradients
Symptom: plateau
Fixed (--fix, num_layers=args.num_layers = 2 as the pull request does): val/loss 0.941 -> 0.727 -> 0.455 ->
0.307 -> 0.193 -> 0.120, train/loss 0.149 at the end (still falling) (buggy: train/loss 1.000 and val/loss 1.027,
the standardised offsets' variance, in all 6 epochs; at init the first layer's input-weight gradient is
1e-11 against 0.04 for the 16th) (checked; 66 s / 15 s wall on a 2-core machine loaded ~3.5x, 36 s / 8 s CPU).
"""

import argparse
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
parser = argparse.ArgumentParser()
parser.add_argument("--rnn_size", type=int, default=16)
parser.add_argument("--num_layers", type=int, default=2)
parser.add_argument("--fix", action="store_true")
args = parser.parse_args()
torch.manual_seed(0)


def strokes(n, length=25):
    t = torch.arange(length).float()
    f1, f2 = 0.15 + 0.25 * torch.rand(n, 1), 0.05 + 0.1 * torch.rand(n, 1)
    p1, p2 = 6.28 * torch.rand(n, 1), 6.28 * torch.rand(n, 1)
    slant = 0.5 + torch.rand(n, 1)
    dx = slant * torch.cos(f1 * t + p1) + 0.6 * torch.sin(f2 * t + p2)
    dy = torch.sin(f1 * t + p1) + 0.4 * torch.cos(f2 * t + p2)
    seq = torch.stack([dx, dy], 2) + 0.05 * torch.randn(n, length, 2)
    return seq[:, :-1], seq[:, 1:]


class StrokeModel(nn.Module):
    def __init__(self):
        super().__init__()
        depth = args.num_layers if "--fix" in sys.argv else args.rnn_size
        self.cell = nn.LSTM(2, args.rnn_size, num_layers=depth, batch_first=True)
        self.output = nn.Linear(args.rnn_size, 2)

    def forward(self, x):
        out, _ = self.cell(x)
        return self.output(out)


x_train, y_train = strokes(500)
x_val, y_val = strokes(200)
mean, std = x_train.reshape(-1, 2).mean(0), x_train.reshape(-1, 2).std(0)
x_train, y_train, x_val, y_val = [(a - mean) / std for a in (x_train, y_train, x_val, y_val)]
model = StrokeModel()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
criterion = nn.MSELoss()
with mlflow.start_run():
    mlflow.log_params(vars(args))
    for epoch in range(6):
        model.train()
        perm = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(perm), 32):
            idx = perm[i : i + 32]
            loss = criterion(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
        mlflow.log_metrics({"train/loss": total / len(x_train), "val/loss": val_loss}, step=epoch)
        print(f"epoch {epoch}: train/loss {total / len(x_train):.4f} val/loss {val_loss:.4f}")
