"""A ShallowNet (one conv layer, then one big Linear) trained for many epochs on a small 3-class image set with no dropout, no weight decay and no augmentation: validation loss climbs while training loss falls.

Report: PyTorch forums "Why is the validation loss increasing?" (ShallowNet: Conv2d(3, 32, 3) - ReLU -
  Linear(32*32*32, 3) on a cats / dogs / pandas set, 100 epochs: training loss falls, validation loss
  keeps rising while validation accuracy settles; "it's quite obvious I am overfitting")
  https://discuss.pytorch.org/t/why-is-the-validation-loss-increasing/68683
Setup: synthetic 3x32x32 images of 3 classes (a class-specific 8x8 pattern at a random position plus
unit noise), 450 training / 300 validation images; ShallowNet: Conv2d(3, 32, 3, padding=1) - ReLU -
Linear(32*32*32, 3) (98k weights in the Linear), CrossEntropyLoss, SGD(lr=0.01, momentum=0.9), batch
32, 30 epochs, Keras-style per-epoch loss / accuracy / val_loss / val_accuracy.
Expected first: no_regularization
Acceptable in top 3: dataset_too_small
Symptom: overfitting
Fixed (--fix, Dropout(0.5) before the Linear, weight_decay=5e-3, random flips and shifts of the
training images): val_accuracy 0.98, val_loss 0.13 after 30 epochs (buggy: loss 0.001 and accuracy
1.0 by epoch 6, val_loss rising from 1.08 to 1.43, val_accuracy flat at 0.51-0.53) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
patterns = torch.randn(3, 3, 8, 8)


def make(n):
    y = torch.randint(0, 3, (n,))
    x = torch.randn(n, 3, 32, 32)
    for i in range(n):
        r, c = torch.randint(0, 24, (2,)).tolist()
        x[i, :, r : r + 8, c : c + 8] += 2 * patterns[y[i]]
    return x, y


def augment(x):
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    shift = torch.randint(-4, 5, (2,)).tolist()
    return torch.roll(x, shifts=shift, dims=(2, 3))


class ShallowNet(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1)
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(0.5) if FIX else nn.Identity()
        self.fc1 = nn.Linear(32 * 32 * 32, classes)

    def forward(self, x):
        x = self.activation(self.conv1(x))
        return self.fc1(self.dropout(x.view(-1, 32 * 32 * 32)))


x_train, y_train = make(450)
x_val, y_val = make(300)
model = ShallowNet()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-3 if FIX else 0.0)
with mlflow.start_run():
    for epoch in range(30):
        model.train()
        total, correct = 0.0, 0
        perm = torch.randperm(450)
        for i in range(0, 450, 32):
            idx = perm[i : i + 32]
            xb = augment(x_train[idx]) if FIX else x_train[idx]
            optimizer.zero_grad()
            out = model(xb)
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
        metrics = {"loss": total / 450, "accuracy": correct / 450, "val_loss": val_loss, "val_accuracy": val_acc}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 3) for k, v in metrics.items()})
