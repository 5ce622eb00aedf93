"""Healthy: a physics-informed neural network (PINN) solving a 1-D Poisson problem -u''(x) = f(x) on [0, 1] with u(0) = u(1) = 0: a tanh MLP u(x), the PDE residual taken by autograd at random collocation points resampled every step plus the boundary term, Adam with a step decay; the loss falls by orders of magnitude, noisily, and the error against the exact solution keeps shrinking.

Report: healthy, in the style of the PINN tutorials and examples (Raissi, Perdikaris & Karniadakis 2019,
  "Physics-informed neural networks"; the DeepXDE / PyTorch "solve the Poisson equation with a PINN" notebooks:
  residual via torch.autograd.grad with create_graph=True, MSE of the residual + boundary MSE, Adam)
  https://github.com/maziarraissi/PINNs
Setup: exact solution u(x) = sin(2 pi x) + 0.3 sin(6 pi x), f = -u''; MLP 1-32-32-32-1 with tanh; 128 uniform
collocation points drawn afresh each step; loss = mean(residual^2) + 10 * mean(boundary error^2); Adam(lr=2e-3)
with StepLR(step_size=600, gamma=0.5), 1,800 steps; every 30 steps `loss`, `pde_loss`, `bc_loss` and `lr`, and
`val_rel_l2` (relative L2 error of u on a 201-point grid against the exact solution).
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix: healthy): loss 6.8e3 (the mean square of f, whose magnitude reaches ~127) -> 402 at step 300 -> 2.1 at step
600 -> 0.25-0.5 over the last 500 steps, noisy from the resampled points; val_rel_l2 1.00, up to 2.5 at step 300
while the PDE term is still being fitted, then 0.15 at step 600 and 0.015 at the end (checked; 94 s wall / 23 s
CPU on the 2-core machine shared by three helpers, OMP_NUM_THREADS=1).
"""

import math

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)


def exact(x):
    return torch.sin(2 * math.pi * x) + 0.3 * torch.sin(6 * math.pi * x)


def forcing(x):  # f = -u''
    return (2 * math.pi) ** 2 * torch.sin(2 * math.pi * x) + 0.3 * (6 * math.pi) ** 2 * torch.sin(6 * math.pi * x)


model = nn.Sequential(
    nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)
)
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=600, gamma=0.5)
x_bc = torch.tensor([[0.0], [1.0]])
x_grid = torch.linspace(0, 1, 201).unsqueeze(1)
u_grid = exact(x_grid)

with mlflow.start_run():
    mlflow.log_params({"hidden": "32x3 tanh", "n_collocation": 128, "bc_weight": 10, "lr": 2e-3, "steps": 1800})
    for step in range(1800):
        x = torch.rand(128, 1, requires_grad=True)
        u = model(x)
        du = torch.autograd.grad(u, x, torch.ones_like(u), create_graph=True)[0]
        d2u = torch.autograd.grad(du, x, torch.ones_like(du), create_graph=True)[0]
        pde_loss = ((-d2u - forcing(x)) ** 2).mean()
        bc_loss = (model(x_bc) ** 2).mean()
        loss = pde_loss + 10 * bc_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 30 == 0 or step == 1799:
            with torch.no_grad():
                val_rel_l2 = (torch.linalg.norm(model(x_grid) - u_grid) / torch.linalg.norm(u_grid)).item()
            metrics = {
                "loss": loss.item(),
                "pde_loss": pde_loss.item(),
                "bc_loss": bc_loss.item(),
                "lr": scheduler.get_last_lr()[0],
                "val_rel_l2": val_rel_l2,
            }
            mlflow.log_metrics(metrics, step=step)
            if step % 150 == 0 or step == 1799:
                print(step, {k: float(f"{v:.4g}") for k, v in metrics.items()})
