"""A whale-call spectrogram CNN balanced with a WeightedRandomSampler given one weight per class instead of one per sample: the sampler draws indices 0 and 1 only, so every batch is the first two clips again and again.

Report: deep-voice/soundbay pull request #49 "hotfix changes" ("Bug using random sampler in a
  problematic way. in a nutshell: `WeightedRandomSampler` uses `torch.multinomial`. This class assigns
  weights to *each sample* and so it actually will choose the same samples (The first and second with
  the probabilities we assigned). What needed to be done is to assign to *each* sample the prior
  probability", with a link to the PyTorch forum thread "How to handle imbalanced classes")
  https://github.com/deep-voice/soundbay/pull/49
Setup: 1x40x40 synthetic spectrogram clips, 20% "call" (an up-sweeping tonal line at a random start
time and frequency, under noise) and 80% background (noise with a few random broadband clicks),
2400 training / 600 validation clips, standardised; a small CNN (3 Conv2d-BatchNorm-ReLU-MaxPool
blocks 16-32-64, global average pooling, Linear(64, 2)), CrossEntropyLoss, Adam(lr=1e-3), batch 32,
DataLoader(sampler=WeightedRandomSampler(weights, num_samples=len(train_set))) with weights = the
inverse class frequencies, a tensor of 2 (the bug), 8 epochs; plain loop, mlflow.log_metric per
epoch: train_loss, train_acc, val_loss, val_acc.
Expected first: repeated_batch
Acceptable in top 3: -
Symptom: overfitting
Fixed (--fix, weights = class_weights[labels], one per sample, the pull request's fix): balanced
batches, val_loss 0.095 -> 0.026 -> 0.0014, val_acc 0.992 -> 1.000 from epoch 2, train_loss 0.19 -> 0.002
(buggy: with this seed clips 0 and 1 are both background, so every batch is those two clips: train_loss
0.040 -> 0.0002 and train_acc 0.997 -> 1.000 from the first epoch, val_acc 0.790 at every epoch (the
background share: no call ever predicted), val_loss rising 0.824 -> 0.941 -> 1.084 -> 1.260) (checked; 98 s /
80 s wall on a 2-core machine shared by three helpers with OMP_NUM_THREADS=1, ~45 s / 49 s CPU).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
F_BINS, T_BINS = 40, 40


def make_clips(n):
    y = (torch.rand(n) < 0.2).long()
    x = torch.randn(n, 1, F_BINS, T_BINS)
    for i in range(n):
        if y[i] == 1:
            t0, f0 = int(torch.randint(0, 20, ())), int(torch.randint(5, 20, ()))
            for t in range(t0, t0 + 18):
                f = f0 + (t - t0) // 2
                x[i, 0, f : f + 2, t] += 2.5
        else:
            for t in torch.randint(0, T_BINS, (3,)):
                x[i, 0, :, int(t)] += 1.0
    return (x - x.mean()) / x.std(), y


def block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))


x, y = make_clips(3000)
x_train, y_train, x_val, y_val = x[:2400], y[:2400], x[2400:], y[2400:]
train_set = TensorDataset(x_train, y_train)
class_counts = torch.bincount(y_train)
class_weights = 1.0 / class_counts.double()
weights = class_weights[y_train] if FIX else class_weights
sampler = WeightedRandomSampler(weights, num_samples=len(train_set))
train = DataLoader(train_set, batch_size=32, sampler=sampler)

model = nn.Sequential(
    block(1, 16), block(16, 32), block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 2)
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

with mlflow.start_run():
    for epoch in range(8):
        model.train()
        total, correct, seen = 0.0, 0, 0
        for xb, yb in train:
            optimizer.zero_grad()
            out = model(xb)
            loss = criterion(out, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(yb)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metric("train_loss", total / seen, step=epoch)
        mlflow.log_metric("train_acc", correct / seen, step=epoch)
        mlflow.log_metric("val_loss", val_loss, step=epoch)
        mlflow.log_metric("val_acc", val_acc, step=epoch)
        print(
            f"epoch {epoch}: train_loss {total / seen:.4f} train_acc {correct / seen:.3f} "
            f"val_loss {val_loss:.4f} val_acc {val_acc:.3f}"
        )
