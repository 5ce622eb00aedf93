"""An MNIST-style MLP trained with L-BFGS whose closure computes the loss and calls backward() but never zero_grad(): zero_grad() runs once per batch, outside the closure, while L-BFGS evaluates the closure up to 20 times a step, so every evaluation after the first adds its gradient onto the earlier ones.

Report: Lightning-AI/pytorch-lightning issue #4083 "using LBFGS optimizer in pytorch lightening the model
  is not converging as compared to native pytoch + LBFGS" (an MNIST classifier, Linear(784,128) -
  Linear(128,256) - Linear(256,10), log_softmax + nll_loss: "LBFGS + Native pytorch works very well,
  however ... Pytorch lightening is not able to update weights and model is not converging")
  https://github.com/Lightning-AI/pytorch-lightning/issues/4083 ; the cause, from the fix (pull request
  #6147 "Call `optimizer.zero_grad()` before backward inside closure in AutoOpt"): "Lightning calls
  `closure` 20 times and `zero_grad` only 1 time while PyTorch calls `closure` 20 times and `zero_grad`
  20 times" https://github.com/Lightning-AI/pytorch-lightning/pull/6147
Setup: the issue's model and loss, written as a plain loop the way Lightning 1.0 ran it (the same bug
users write by hand: `optimizer.zero_grad()` before `optimizer.step(closure)` and a closure without it):
28x28 synthetic digit-like images (10 stroke templates, random shifts, stroke thickness and pixel noise,
clipped to [0, 1] and normalised with MNIST's 0.1307 / 0.3081), 8000 training / 1000 validation images,
Linear(784,128)-ReLU-Linear(128,256)-ReLU-Linear(256,10), log_softmax + F.nll_loss,
torch.optim.LBFGS(lr=1, max_iter=10, history_size=10, line_search_fn="strong_wolfe") (without the line
search even the fixed loop turns NaN on mini-batches), batch 1000, 4 epochs; per-epoch train_loss (the
closure's first loss of each step), val_loss and val_acc with mlflow.log_metrics.
Expected first: gradients_not_zeroed
Acceptable in top 3: -
Symptom: plateau, diverging
Fixed (--fix, optimizer.zero_grad() inside the closure, as the PyTorch docs' closure example and PR #6147 do):
val_acc 0.973, 0.980, 0.975, 0.976 and val_loss 0.14, 0.20, 0.63, 0.39 (L-BFGS fits each batch of 1000
almost exactly and grows confident: train_loss 0.66 -> 0.025), against the buggy val_acc 0.65, 0.75, 0.75,
0.77 and val_loss 1.03, 0.90, 0.91, 0.83 with train_loss 1.51 -> 0.90 (flattening well above the fix's)
(checked; 47 s / 37 s wall on a shared 2-core machine, ~21 s CPU each).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)

# ten stroke templates on a 28x28 grid: lists of line segments (x0, y0, x1, y1) in [0, 1]
TEMPLATES = [
    [(0.3, 0.2, 0.7, 0.2), (0.7, 0.2, 0.7, 0.8), (0.7, 0.8, 0.3, 0.8), (0.3, 0.8, 0.3, 0.2)],  # 0
    [(0.5, 0.15, 0.5, 0.85)],  # 1
    [(0.3, 0.2, 0.7, 0.2), (0.7, 0.2, 0.7, 0.5), (0.7, 0.5, 0.3, 0.8), (0.3, 0.8, 0.7, 0.8)],  # 2
    [(0.3, 0.2, 0.7, 0.2), (0.7, 0.2, 0.7, 0.8), (0.4, 0.5, 0.7, 0.5), (0.3, 0.8, 0.7, 0.8)],  # 3
    [(0.3, 0.2, 0.3, 0.5), (0.3, 0.5, 0.7, 0.5), (0.65, 0.2, 0.65, 0.85)],  # 4
    [(0.7, 0.2, 0.3, 0.2), (0.3, 0.2, 0.3, 0.5), (0.3, 0.5, 0.7, 0.55), (0.7, 0.55, 0.3, 0.8)],  # 5
    [(0.6, 0.2, 0.3, 0.5), (0.3, 0.5, 0.3, 0.8), (0.3, 0.8, 0.7, 0.8), (0.7, 0.8, 0.7, 0.55), (0.7, 0.55, 0.3, 0.55)],
    [(0.3, 0.2, 0.7, 0.2), (0.7, 0.2, 0.4, 0.85)],  # 7
    [(0.35, 0.2, 0.65, 0.2), (0.35, 0.2, 0.65, 0.8), (0.65, 0.2, 0.35, 0.8), (0.35, 0.8, 0.65, 0.8)],  # 8
    [(0.7, 0.5, 0.3, 0.5), (0.3, 0.5, 0.3, 0.2), (0.3, 0.2, 0.7, 0.2), (0.7, 0.2, 0.7, 0.85)],  # 9
]
yy, xx = np.mgrid[0:28, 0:28] / 27.0


def draw(label):
    dx, dy = rng.normal(0, 0.07, 2)
    width = rng.uniform(0.035, 0.06)
    img = np.zeros((28, 28))
    for x0, y0, x1, y1 in TEMPLATES[label]:
        x0, x1 = x0 + dx + rng.normal(0, 0.03), x1 + dx + rng.normal(0, 0.03)
        y0, y1 = y0 + dy + rng.normal(0, 0.03), y1 + dy + rng.normal(0, 0.03)
        t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2 + 1e-9), 0, 1)
        d = np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0)))
        img = np.maximum(img, np.exp(-((d / width) ** 2)))
    return np.clip(img + rng.normal(0, 0.25, img.shape), 0, 1)


def dataset(n):
    labels = rng.integers(0, 10, n)
    images = np.stack([draw(k) for k in labels]).astype(np.float32)
    images = (images - 0.1307) / 0.3081  # transforms.Normalize((0.1307,), (0.3081,))
    return TensorDataset(torch.tensor(images).unsqueeze(1), torch.tensor(labels))


train_set, val_set = dataset(8000), dataset(1000)
train_loader = DataLoader(train_set, batch_size=1000, shuffle=True)
val_loader = DataLoader(val_set, batch_size=1000)


class MNISTClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer_1 = nn.Linear(28 * 28, 128)
        self.layer_2 = nn.Linear(128, 256)
        self.layer_3 = nn.Linear(256, 10)

    def forward(self, x):
        batch_size = x.size(0)
        x = x.view(batch_size, -1)
        x = torch.relu(self.layer_1(x))
        x = torch.relu(self.layer_2(x))
        return torch.log_softmax(self.layer_3(x), dim=1)


model = MNISTClassifier()
optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=10, history_size=10, line_search_fn="strong_wolfe")

with mlflow.start_run():
    mlflow.log_params(
        {
            "optimizer": "LBFGS",
            "lr": 1,
            "max_iter": 10,
            "batch_size": 1000,
            "line_search_fn": "strong_wolfe",
            "epochs": 4,
        }
    )
    for epoch in range(4):
        model.train()
        total, n = 0.0, 0
        for x, y in train_loader:

            def closure(x=x, y=y):
                if FIX:
                    optimizer.zero_grad()
                loss = F.nll_loss(model(x), y)
                loss.backward()
                return loss

            if not FIX:
                optimizer.zero_grad()  # once per batch, as Lightning 1.0 did: the closure runs up to 20 times
            loss = optimizer.step(closure)  # returns the closure's first loss
            total += loss.item() * len(x)
            n += len(x)
        model.eval()
        with torch.no_grad():
            xv, yv = next(iter(val_loader))
            out = model(xv)
            val_loss = F.nll_loss(out, yv).item()
            val_acc = (out.argmax(1) == yv).float().mean().item()
        metrics = {"train_loss": total / n, "val_loss": val_loss, "val_acc": val_acc}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
