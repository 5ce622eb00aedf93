"""A physics-informed neural network (PINN) for the 1-D underdamped harmonic oscillator: a tanh MLP u(t) trained with Adam on the two initial-condition losses plus the ODE residual m u'' + mu u' + k u = 0 at 30 collocation points (derivatives by autograd), with no solution data; the error against the exact solution falls as the residual is driven down, still improving at the end.

Report: healthy, in the style of Ben Moseley's "So, what is a physics-informed neural network?" and its code
  (benmoseley/harmonic-oscillator-pinn: `FCN(1, 1, 32, 3)` with Tanh, d = 2, w0 = 20, mu = 2d, k = w0^2,
  boundary losses (u(0) - 1)^2 and lambda1 (du/dt(0))^2 with lambda1 = 1e-1, physics loss lambda2 mean(residual^2)
  with lambda2 = 1e-4, Adam(lr=1e-3), thousands of steps, the error against the exact solution plotted)
  https://benmoseley.blog/my-research/so-what-is-a-physics-informed-neural-network/
Setup: as the post's PINN: FCN(1 -> 32 -> 32 -> 32 -> 1, Tanh), t in [0, 1], 30 collocation points, d = 2, w0 = 20,
exact u(t) = e^{-dt} 2A cos(phi + wt); loss = (u(0) - 1)^2 + 1e-1 (u'(0))^2 + 1e-4 mean((u'' + mu u' + k u)^2);
Adam(lr=1e-3), 6000 steps; every 100 steps `loss`, `loss_boundary`, `loss_physics` and `l2_error` (relative L2
error of u on 300 test points against the exact solution).
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: loss 1.02 -> 0.186 (step 500) -> 0.050 -> 0.013 (2500) -> 0.0085 (4000) -> 0.0075, the boundary terms
at ~1e-4 from step 2500, l2_error 0.999 -> 0.76 -> 0.49 -> 0.25 -> 0.183 -> 0.169 at step 5999, still creeping down
(the post trains for 15000+ steps; a small bump at step 5000, 0.0082 -> 0.0085) (checked; 102 s wall under a load
average of 12, 49 s CPU, OMP_NUM_THREADS=1).
"""

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(123)


class FCN(nn.Module):
    "Defines a fully-connected network in PyTorch"

    def __init__(self, n_input, n_output, n_hidden, n_layers):
        super().__init__()
        self.fcs = nn.Sequential(nn.Linear(n_input, n_hidden), nn.Tanh())
        self.fch = nn.Sequential(
            *[nn.Sequential(nn.Linear(n_hidden, n_hidden), nn.Tanh()) for _ in range(n_layers - 1)]
        )
        self.fce = nn.Linear(n_hidden, n_output)

    def forward(self, x):
        return self.fce(self.fch(self.fcs(x)))


def exact_solution(d, w0, t):
    "Defines the analytical solution to the under-damped harmonic oscillator problem above."
    assert d < w0
    w = np.sqrt(w0**2 - d**2)
    phi = np.arctan(-d / w)
    A = 1 / (2 * np.cos(phi))
    return torch.exp(-d * t) * 2 * A * torch.cos(phi + w * t)


d, w0 = 2, 20
mu, k = 2 * d, w0**2
pinn = FCN(1, 1, 32, 3)
t_boundary = torch.tensor(0.0).view(-1, 1).requires_grad_(True)
t_physics = torch.linspace(0, 1, 30).view(-1, 1).requires_grad_(True)
t_test = torch.linspace(0, 1, 300).view(-1, 1)
u_exact = exact_solution(d, w0, t_test)
optimiser = torch.optim.Adam(pinn.parameters(), lr=1e-3)
lambda1, lambda2 = 1e-1, 1e-4

with mlflow.start_run():
    mlflow.log_params({"d": d, "w0": w0, "lr": 1e-3, "steps": 6000, "lambda1": lambda1, "lambda2": lambda2})
    for i in range(6000):
        optimiser.zero_grad()
        u = pinn(t_boundary)
        loss1 = (torch.squeeze(u) - 1) ** 2
        dudt = torch.autograd.grad(u, t_boundary, torch.ones_like(u), create_graph=True)[0]
        loss2 = (torch.squeeze(dudt) - 0) ** 2
        u = pinn(t_physics)
        dudt = torch.autograd.grad(u, t_physics, torch.ones_like(u), create_graph=True)[0]
        d2udt2 = torch.autograd.grad(dudt, t_physics, torch.ones_like(dudt), create_graph=True)[0]
        loss3 = torch.mean((d2udt2 + mu * dudt + k * u) ** 2)
        loss = loss1 + lambda1 * loss2 + lambda2 * loss3
        loss.backward()
        optimiser.step()
        if i % 100 == 0 or i == 5999:
            with torch.no_grad():
                l2_error = (torch.linalg.norm(pinn(t_test) - u_exact) / torch.linalg.norm(u_exact)).item()
            metrics = {
                "loss": loss.item(),
                "loss_boundary": (loss1 + lambda1 * loss2).item(),
                "loss_physics": (lambda2 * loss3).item(),
                "l2_error": l2_error,
            }
            mlflow.log_metrics(metrics, step=i)
            if i % 500 == 0 or i == 5999:
                print(i, {key: round(v, 5) for key, v in metrics.items()})
