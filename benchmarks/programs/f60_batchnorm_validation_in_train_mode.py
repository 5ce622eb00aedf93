"""A BatchNorm CNN validated without model.eval(), over a validation loader that is not shuffled and is stored class by class: every validation batch is normalised by its own one-class statistics and val accuracy sits near chance.

Report: wolny/pytorch-3dunet issue #53 "Need to set the model to 'eval' mode when assessing the
  validation data" (validation forward passes run in training mode; with batch normalisation the
  predictions made no sense until the model was put in eval mode) https://github.com/wolny/pytorch-3dunet/issues/53
Setup: Conv(3,16,3)-BN-ReLU-Pool-Conv(16,32,3)-BN-ReLU-global average pool-Linear(32,4) on
synthetic 3x16x16 images whose class sets the colour balance and texture; CrossEntropyLoss,
Adam(lr=2e-3), batch 32 (shuffled) for training, 6 epochs; the validation set is stored sorted by
class (as an ImageFolder lists it) and read with shuffle=False, batch 50, under torch.no_grad() but
without model.eval(); per-epoch train_loss / train_acc / val_loss / val_acc.
Expected first: eval_mode_not_set
Acceptable in top 3: -
Symptom: overfitting
Fixed (--fix, model.eval() before validation and model.train() after): val_acc 1.00, val_loss 0.003 after 6 epochs (buggy: train_acc 1.00 but val_acc 0.34, val_loss 1.62 rising) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

colours = torch.tensor([[0.6, 0.0, -0.6], [-0.6, 0.6, 0.0], [0.0, -0.6, 0.6], [0.3, 0.3, 0.3]])


def make(n):
    y = torch.randint(0, 4, (n,))
    freq = (1 + y).float()[:, None, None, None]
    grid = torch.arange(16).float()
    texture = torch.sin(freq * grid[None, None, :, None] * 0.4) * torch.cos(freq * grid[None, None, None, :] * 0.4)
    x = colours[y][:, :, None, None] + 0.5 * texture + 0.8 * torch.randn(n, 3, 16, 16)
    return x, y


x_train, y_train = make(1600)
x_val, y_val = make(400)
order = y_val.argsort(stable=True)  # stored class by class
x_val, y_val = x_val[order], y_val[order]
model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1),
    nn.BatchNorm2d(16),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1),
    nn.BatchNorm2d(32),
    nn.ReLU(),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(32, 4),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
with mlflow.start_run():
    for epoch in range(6):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(1600)
        for i in range(0, 1600, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
        if FIX:
            model.eval()
        val_total, val_correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, 400, 50):  # shuffle=False
                out = model(x_val[i : i + 50])
                val_total += criterion(out, y_val[i : i + 50]).item() * 50
                val_correct += (out.argmax(1) == y_val[i : i + 50]).sum().item()
        metrics = {
            "train_loss": total / 1600,
            "train_acc": correct / 1600,
            "val_loss": val_total / 400,
            "val_acc": val_correct / 400,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 3) for k, v in metrics.items()})
