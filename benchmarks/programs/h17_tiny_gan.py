"""A tiny GAN on a 2-D mixture of Gaussians: discriminator and generator losses logged every 10 steps.

Report: healthy, in the style of the PyTorch DCGAN tutorial's loop (BCE losses, Adam(lr=2e-4..1e-3,
  betas=(0.5, 0.999)), Loss_D and Loss_G reported as training goes)
  https://pytorch.org/tutorials/beginner/dcgan_faces_tutorial.html
Setup: 8 Gaussians on a ring (std 0.05, radius 2), generator MLP 8-64-64-2, discriminator MLP
2-64-64-1, BCEWithLogitsLoss, Adam(lr=1e-3, betas=(0.5, 0.999)) for both, batch 128, 1500 steps,
d_loss / g_loss / d_real / d_fake every 10 steps: they settle near the equilibrium (d_loss ~1.2-1.4,
g_loss ~0.7-1.0) and never go to 0.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: d_loss ~1.2, g_loss ~0.86-0.89 over the last 500 steps, neither monotone.
"""

import math

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

angles = torch.arange(8) * 2 * math.pi / 8
centers = torch.stack([2 * torch.cos(angles), 2 * torch.sin(angles)], 1)


def real_batch(n):
    return centers[torch.randint(0, 8, (n,))] + 0.05 * torch.randn(n, 2)


G = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
D = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
criterion = nn.BCEWithLogitsLoss()
opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
ones, zeros = torch.ones(128, 1), torch.zeros(128, 1)
with mlflow.start_run():
    for step in range(1500):
        real = real_batch(128)
        fake = G(torch.randn(128, 8))
        opt_d.zero_grad()
        out_real, out_fake = D(real), D(fake.detach())
        d_loss = criterion(out_real, ones) + criterion(out_fake, zeros)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = criterion(D(fake), ones)
        g_loss.backward()
        opt_g.step()
        if step % 10 == 0:
            mlflow.log_metrics(
                {
                    "d_loss": d_loss.item(),
                    "g_loss": g_loss.item(),
                    "d_real": torch.sigmoid(out_real).mean().item(),
                    "d_fake": torch.sigmoid(out_fake).mean().item(),
                },
                step=step,
            )
        if step % 100 == 0:
            print(step, d_loss.item(), g_loss.item())
