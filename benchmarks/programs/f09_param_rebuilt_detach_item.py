"""Hand-written model whose scale parameter is rebuilt each step from .detach().item(): it never learns.

Report: Q&A "Optimizing a parameter that doesn't require gradients" (a parameter rebuilt or
  detached so no gradient reaches it) https://www.codegenes.net/blog/optimizing-a-parameter-that-doesnt-require-gradients-pytorch
Setup: y = a * tanh(x @ W) with W and a as tensors, Adam([W, a]); inside the loop the user writes
a = torch.tensor(a.detach().item(), requires_grad=True) "to keep it a float", so the optimiser
holds a tensor that is no longer used; per-step `loss`.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, a kept as the same leaf tensor): loss 7e-5 (checked).
"""

import sys

import mlflow
import torch

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

x = torch.randn(1000, 5)
y = 3.0 * torch.tanh(x @ torch.randn(5, 1))

W = torch.randn(5, 1, requires_grad=True)
a = torch.tensor(0.1, requires_grad=True)
optimizer = torch.optim.Adam([W, a], lr=0.02)

with mlflow.start_run():
    for step in range(300):
        idx = torch.randint(0, 1000, (64,))
        if not FIX:
            a = torch.tensor(a.detach().item(), requires_grad=True)
        pred = a * torch.tanh(x[idx] @ W)
        loss = ((pred - y[idx]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            mlflow.log_metric("loss", loss.item(), step=step)
    print(loss.item())
