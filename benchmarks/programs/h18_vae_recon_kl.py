"""A VAE on 32-dim data: the loss (reconstruction + KL) falls but stays far from 0, by design.

Report: healthy, in the style of the pytorch/examples VAE (loss = reconstruction + KL divergence,
  summed over the batch, Adam(lr=1e-3), average loss per epoch)
  https://github.com/pytorch/examples/blob/main/vae/main.py
Setup: samples on a 4-dim non-linear manifold in 32 dims plus noise, encoder 32-64-(mu, logvar) in 8
dims, decoder 8-64-32, loss = MSE(sum) + KL per sample, Adam(lr=1e-3), batch 64, per-epoch
train_loss / val_loss / train_recon / train_kl.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: train_loss ~6.2 (recon ~2.9 + KL ~3.3), val_loss ~6.3, flat over the last epochs.
"""

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
torch.manual_seed(0)

A = torch.randn(4, 32) / 2


def make(n):
    return torch.tanh(torch.randn(n, 4) @ A) + 0.1 * torch.randn(n, 32)


x_train, x_val = make(3000), make(500)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(32, 64), nn.ReLU())
        self.mu, self.logvar = nn.Linear(64, 8), nn.Linear(64, 8)
        self.dec = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 32))

    def forward(self, x):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.dec(z), mu, logvar


def loss_function(recon, x, mu, logvar):
    rec = F.mse_loss(recon, x, reduction="sum") / len(x)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
    return rec + kl, rec, kl


model = VAE()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(20):
        model.train()
        tot, tot_rec, tot_kl, n = 0.0, 0.0, 0.0, 0
        perm = torch.randperm(3000)
        for i in range(0, 3000, 64):
            batch = x_train[perm[i : i + 64]]
            optimizer.zero_grad()
            recon, mu, logvar = model(batch)
            loss, rec, kl = loss_function(recon, batch, mu, logvar)
            loss.backward()
            optimizer.step()
            tot, tot_rec, tot_kl, n = tot + loss.item(), tot_rec + rec.item(), tot_kl + kl.item(), n + 1
        model.eval()
        with torch.no_grad():
            recon, mu, logvar = model(x_val)
            val_loss = loss_function(recon, x_val, mu, logvar)[0].item()
        mlflow.log_metrics(
            {"train_loss": tot / n, "val_loss": val_loss, "train_recon": tot_rec / n, "train_kl": tot_kl / n},
            step=epoch,
        )
        print(epoch, tot / n, val_loss, tot_rec / n, tot_kl / n)
