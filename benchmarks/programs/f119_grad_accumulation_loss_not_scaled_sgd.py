"""Gradient accumulation over 8 micro-batches of 8 images with the loss not divided by the number of micro-batches: the summed gradient is 8x the mean one, so SGD at the rate tuned for a batch of 64 takes steps 8x too large: the loss starts above chance, swings, and climbs back up.

Report: fastai/fastai issue #3023 "Gradient Accumulation causes lower lr to be same as non-gradient
  accumulation" ("We do not scale the loss by number of batches to accumulate, so we end up with too large of
  gradients when doing gradient accumulation"; it follows fastai/fastai2 pull request #194, whose author saw
  "my loss (and gradients) suddenly explode after a while" accumulating 10 batches, later with fewer
  accumulated batches or a lower rate) https://github.com/fastai/fastai/issues/3023
Setup: the GradientAccumulation callback's loop written out in PyTorch: micro-batches of 8 (what fits in
memory), loss.backward() on each un-scaled micro-batch loss, optimizer.step() and zero_grad() once 64 samples
have been seen (n_acc=64); fastai's simple_cnn((3,16,32,64)) shape (stride-2 Conv-BN-ReLU blocks, then a
Linear to 10 classes), CrossEntropyLoss, SGD(lr=0.1, momentum=0.9) (a rate that suits a batch of 64),
synthetic 3x16x16 images of 10 classes (class templates, random shifts, noise), 1,600 training / 400
validation images, 8 epochs; per-epoch train_loss / valid_loss / accuracy (fastai's recorder names).
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: oscillating_loss, diverging
Fixed (--fix, each micro-batch loss divided by the 8 micro-batches accumulated, as the issue's fix does):
accuracy 0.85 ->
0.955, valid_loss 0.471 -> 0.145 (epoch 4) -> 0.152, train_loss 1.40 -> 0.002 after 8 epochs (buggy: train_loss
2.80 in the first epoch, above ln 10 = 2.30, down to 1.30 at epoch 5, back up to 1.54 and 1.93; valid_loss 2.27
-> 1.15 -> 2.32 and 2.27; accuracy 0.15 -> 0.63 at best -> 0.32 at the end) (checked; 49 s / 37 s wall on the
loaded 2-core machine, ~21 s / ~17 s CPU).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
MICRO_BS, N_ACC, EPOCHS, LR = 8, 64, 8, 0.1
TEMPLATES = torch.randn(10, 3, 16, 16).clamp(-2, 2)


def make(n):
    y = torch.randint(0, 10, (n,))
    x = TEMPLATES[y]
    shifts = torch.randint(-2, 3, (n, 2))
    x = torch.stack([torch.roll(img, (int(a), int(b)), dims=(1, 2)) for img, (a, b) in zip(x, shifts)])
    return x + 1.0 * torch.randn_like(x), y


x_train, y_train = make(1600)
x_valid, y_valid = make(400)


def conv_layer(ni, nf):
    return nn.Sequential(nn.Conv2d(ni, nf, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(nf), nn.ReLU())


model = nn.Sequential(
    conv_layer(3, 16), conv_layer(16, 32), conv_layer(32, 64), nn.Flatten(), nn.Linear(64 * 2 * 2, 10)
)
loss_func = nn.CrossEntropyLoss()
opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
train_dl = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x_train, y_train), batch_size=MICRO_BS, shuffle=True, drop_last=True
)
n_steps = N_ACC // MICRO_BS

with mlflow.start_run():
    mlflow.log_params({"micro_batch_size": MICRO_BS, "n_acc": N_ACC, "lr": LR, "momentum": 0.9, "epochs": EPOCHS})
    for epoch in range(EPOCHS):
        model.train()
        total, seen, count = 0.0, 0, 0
        for xb, yb in train_dl:
            loss = loss_func(model(xb), yb)
            total += loss.item() * len(xb)
            seen += len(xb)
            if FIX:
                loss = loss / n_steps
            loss.backward()
            count += len(xb)
            if count >= N_ACC:  # GradientAccumulation: step once n_acc samples were accumulated
                opt.step()
                opt.zero_grad()
                count = 0
        model.eval()
        with torch.no_grad():
            out = model(x_valid)
            valid_loss = loss_func(out, y_valid).item()
            accuracy = (out.argmax(1) == y_valid).float().mean().item()
        metrics = {"train_loss": total / seen, "valid_loss": valid_loss, "accuracy": accuracy}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
