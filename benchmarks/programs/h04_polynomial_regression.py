"""Polynomial regression as in pytorch/examples regression: fit a degree-4 polynomial to a tiny loss.

Report: healthy, in the style of https://github.com/pytorch/examples/tree/main/regression
Setup: features [x, x^2, x^3, x^4] of x ~ N(0, 1), targets from a random polynomial with
coefficients ~5 (target std ~12), Linear(4, 1), MSELoss (smooth_l1 in the example), SGD(lr=0.005,
momentum 0.9), mini-batches of 32, per-batch `loss` every 10 batches.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: loss ~1e-3 or less from ~150 at the start.
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

POLY_DEGREE = 4
W_target = torch.randn(POLY_DEGREE, 1) * 5
b_target = torch.randn(1) * 5


def make_features(x):
    x = x.unsqueeze(1)
    return torch.cat([x**i for i in range(1, POLY_DEGREE + 1)], 1)


x = torch.randn(2000).clamp(-2, 2)
X = make_features(x)
Y = X @ W_target + b_target

fc = nn.Linear(POLY_DEGREE, 1)
optimizer = torch.optim.SGD(fc.parameters(), lr=0.005, momentum=0.9)
with mlflow.start_run():
    step = 0
    for epoch in range(20):
        perm = torch.randperm(2000)
        for i in range(0, 2000, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(fc(X[idx]), Y[idx])
            loss.backward()
            optimizer.step()
            step += 1
            if step % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
    print("loss", loss.item())
