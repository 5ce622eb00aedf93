"""Healthy: a mixture density network (MDN) on Bishop's inverse-sine toy problem: the forward map x = y + 0.3 sin(2 pi y) + noise is single-valued, its inverse y(x) is not (up to three branches for one x), so a network predicting the mean fails while an MDN fits a 5-component Gaussian mixture p(y | x); trained full-batch with Adam on the mixture's negative log-likelihood, which goes below zero as the components narrow.

Report: healthy, in the style of hardmaru/pytorch_notebooks "mixture_density_networks.ipynb" (David Ha's "Mixture
  Density Networks with PyTorch": `MDN(n_hidden=20, n_gaussians=5)`: Linear(1, 20) - Tanh, heads `z_pi`
  (softmax), `z_sigma` (exp), `z_mu`; `mdn_loss_fn` = -log(sum pi * N(y; mu, sigma)), mean over the batch; Adam;
  full-batch epochs) on the toy of Bishop (1994), "Mixture Density Networks", section 5
  https://github.com/hardmaru/pytorch_notebooks/blob/master/mixture_density_networks.ipynb
Setup: 1,000 training and 300 validation pairs, y ~ U(0, 1), x = y + 0.3 sin(2 pi y) + U(-0.1, 0.1), the network
given x and asked for p(y | x); MDN(n_hidden=20, n_gaussians=5) as in the notebook, the loss written with logsumexp
over the components (the notebook's log of a sum, computed stably), Adam at its default lr 1e-3 as in the notebook, 4,000
full-batch epochs; every 20 epochs `train_loss` and `val_loss` (mean negative log-likelihood, nats) and `val_mse_mean`
(the squared error of the mixture's mean, which cannot fall far on a multi-valued inverse) with `mlflow.log_metric`.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix: healthy): train_loss 1.025 -> -0.930 (epoch 500) -> -1.075, val_loss 1.006 -> -0.853 -> -0.968
(negative from about epoch 100: densities above 1 on y in [0, 1]), both still creeping down at the end; val_mse_mean
0.377 -> 0.043 (the mean of a multi-valued inverse: it stays well above the noise); at x = 0.5 the mixture puts its
weight on the three branches y = 0.19/0.26, 0.51 and 0.76/0.82 (checked; 87 s wall, 31 s CPU, on the 2-core machine
shared by three helpers).
"""

import math

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
torch.set_num_threads(1)
N_TRAIN, N_VAL, EPOCHS, LOG_EVERY = 1000, 300, 4000, 20


def bishop_inverse_problem(n):
    y = torch.rand(n, 1)
    x = y + 0.3 * torch.sin(2 * math.pi * y) + torch.empty(n, 1).uniform_(-0.1, 0.1)
    return x, y  # the network sees x and must model the multi-valued y


x_train, y_train = bishop_inverse_problem(N_TRAIN)
x_val, y_val = bishop_inverse_problem(N_VAL)


class MDN(nn.Module):
    def __init__(self, n_hidden, n_gaussians):
        super().__init__()
        self.z_h = nn.Sequential(nn.Linear(1, n_hidden), nn.Tanh())
        self.z_pi = nn.Linear(n_hidden, n_gaussians)
        self.z_sigma = nn.Linear(n_hidden, n_gaussians)
        self.z_mu = nn.Linear(n_hidden, n_gaussians)

    def forward(self, x):
        z_h = self.z_h(x)
        pi = nn.functional.softmax(self.z_pi(z_h), -1)
        sigma = torch.exp(self.z_sigma(z_h))
        mu = self.z_mu(z_h)
        return pi, sigma, mu


def mdn_loss_fn(pi, sigma, mu, y):
    log_prob = torch.distributions.Normal(loc=mu, scale=sigma).log_prob(y)
    return -torch.logsumexp(torch.log(pi) + log_prob, dim=1).mean()


network = MDN(n_hidden=20, n_gaussians=5)
optimizer = torch.optim.Adam(network.parameters())

with mlflow.start_run():
    mlflow.log_params({"n_hidden": 20, "n_gaussians": 5, "lr": 1e-3, "epochs": EPOCHS, "optimizer": "Adam"})
    for epoch in range(EPOCHS):
        pi, sigma, mu = network(x_train)
        loss = mdn_loss_fn(pi, sigma, mu, y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if epoch % LOG_EVERY == 0 or epoch == EPOCHS - 1:
            with torch.no_grad():
                pi_v, sigma_v, mu_v = network(x_val)
                val_loss = mdn_loss_fn(pi_v, sigma_v, mu_v, y_val).item()
                val_mse_mean = (((pi_v * mu_v).sum(1, keepdim=True) - y_val) ** 2).mean().item()
            mlflow.log_metrics(
                {"train_loss": loss.item(), "val_loss": val_loss, "val_mse_mean": val_mse_mean}, step=epoch
            )
            if epoch % 500 == 0 or epoch == EPOCHS - 1:
                print(f"epoch {epoch}: loss {loss.item():.4f} val_loss {val_loss:.4f} val_mse_mean {val_mse_mean:.4f}")
    with torch.no_grad():
        pi_v, sigma_v, mu_v = network(torch.tensor([[0.5]]))
        print("p(y | x=0.5): pi", pi_v.numpy().round(3), "mu", mu_v.numpy().round(3), "sigma", sigma_v.numpy().round(3))
