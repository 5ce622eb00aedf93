"""A small fully-convolutional per-pixel classifier trained with the 2-D `nn.NLLLoss` on the raw output of its last convolution, as the NLLLoss documentation's image example once read: with no LogSoftmax in front, the loss is minus the target's raw score, it goes negative and falls without bound while the pixel accuracy stalls.

Report: pytorch/pytorch pull request #12703 "Fix missing final activation in NLLLoss second example" ("The
  LogSoftmax activation was missing after the convolution layer. Without this activation, the second
  example loss was sometimes negative") https://github.com/pytorch/pytorch/pull/12703
Setup: as the documentation's 2-D example: inputs of 16 channels on a 10x10 grid, `nn.Conv2d(16, C, (3, 3))`
giving 8x8 maps, targets (N, 8, 8) of C = 4 classes, `nn.NLLLoss()`; here the inputs are noisy feature maps
whose per-pixel class is set by a fixed 3x3 "teacher" filter bank (classes 66/21/9/4% of pixels), the model
Conv2d(16, 32, 3, padding=1)-ReLU-Conv2d(32, 4, 3) and its output fed straight to NLLLoss, Adam(lr=1e-3),
batch 32, 2,000 training / 400 validation maps, 10 epochs; per-epoch train_loss, val_loss and
val_pixel_acc.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: diverging, not_converged
Fixed (--fix, `nn.LogSoftmax(dim=1)` after the last convolution, as the pull request adds): val_loss 0.780 -> 0.636,
val_pixel_acc 0.705 -> 0.740 after 10 epochs (the teacher's noise caps it), train_loss 0.91 -> 0.60 (buggy:
train_loss -3.7 -> -1,235, val_loss -10.4 -> -1,370 after 10 epochs, falling faster every epoch (the raw
scores grow without bound), val_pixel_acc 0.27 -> 0.53, under the 0.66 of always answering the majority
class) (checked; 34 s / 53 s wall, 13 s / 12 s CPU, on a loaded 2-core machine).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
C = 4
teacher = nn.Conv2d(16, C, 3)
with torch.no_grad():
    teacher.bias.copy_(torch.tensor([1.2, 0.5, 0.0, -0.4]))  # an uneven class mix, as in real maps


def maps(n):
    x = torch.randn(n, 16, 10, 10)
    with torch.no_grad():
        y = (teacher(x) + 0.5 * torch.randn(n, C, 8, 8)).argmax(1)
    return x, y


x_train, y_train = maps(2000)
x_val, y_val = maps(400)
print("class shares:", torch.bincount(y_train.flatten(), minlength=C).float().div(y_train.numel()).tolist())
layers = [nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, C, (3, 3))]
if FIX:
    layers.append(nn.LogSoftmax(dim=1))
model = nn.Sequential(*layers)
loss_fn = nn.NLLLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)

with mlflow.start_run():
    mlflow.log_params({"classes": C, "batch_size": 32, "lr": 1e-3, "epochs": 10})
    for epoch in range(10):
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = loss_fn(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        metrics = {"train_loss": total / len(x_train), "val_loss": val_loss, "val_pixel_acc": val_acc}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
