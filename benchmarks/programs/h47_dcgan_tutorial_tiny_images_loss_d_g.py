"""A DCGAN in the style of the PyTorch DCGAN tutorial on tiny 16x16 images: loss_D and loss_G logged once per epoch.

Report: healthy, in the style of the PyTorch DCGAN tutorial (transposed-conv generator with BatchNorm and
  ReLU, conv discriminator with LeakyReLU(0.2), weights_init N(0, 0.02), BCELoss with real label 1 and fake
  label 0, Adam(lr=2e-4, betas=(0.5, 0.999)) for both nets, Loss_D / Loss_G / D(x) / D(G(z)) reported)
  https://pytorch.org/tutorials/beginner/dcgan_faces_tutorial.html
Setup: 3000 grey 16x16 images of a bright disc of random position and radius (3-5 px) on a dark
background, scaled to [-1, 1]; generator z (32) -> ConvTranspose 4x4 -> 8x8 -> 16x16 with Tanh, 64-32
channels; discriminator 16x16 -> 8x8 -> 4x4 -> 1 with Sigmoid; batch 64, 8 epochs; per epoch the mean
loss_D and loss_G, D_x and D_G_z, and two quality checks on 256 generated images: disc_score (share of
samples whose number of bright pixels is that of one disc of radius 3-5) and mean_intensity_gap
(the generated images' mean pixel minus the real images').
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: loss_D 0.92 -> 0.77 -> 0.73 -> 0.57 -> 0.37 -> 0.27 -> 0.36 -> 0.24 and loss_G 0.84 -> 1.11 -> 1.17 ->
1.45 -> 1.87 -> 2.24 -> 2.26 -> 2.42 (the tutorial's usual picture: D ahead, D(x) 0.89, D(G(z)) 0.10, neither
loss at 0), generated samples with disc_score 0.77 -> 0.88 (real images 1.0) and mean_intensity_gap 0.37 ->
-0.04 (checked; 82 s CPU, 2 min 42 s wall on a machine loaded 2.5x over its 2 cores).
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
nz, ngf, ndf = 32, 32, 32


def make_images(n):
    yy, xx = torch.meshgrid(torch.arange(16).float(), torch.arange(16).float(), indexing="ij")
    cy, cx = torch.rand(n, 1, 1) * 8 + 4, torch.rand(n, 1, 1) * 8 + 4
    r = torch.rand(n, 1, 1) * 2 + 3
    disc = (((yy - cy) ** 2 + (xx - cx) ** 2).sqrt() < r).float()
    img = -0.8 + 1.6 * disc + 0.05 * torch.randn(n, 16, 16)
    return img.clamp(-1, 1).unsqueeze(1)


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input).view(-1)


def disc_score(imgs):
    """Share of images whose bright pixels (> 0) number like one disc of radius 3-5 (28 to 79 px)."""
    bright = (imgs > 0).float().sum(dim=(1, 2, 3))
    return ((bright >= 24) & (bright <= 85)).float().mean().item()


data = make_images(3000)
netG, netD = Generator(), Discriminator()
netG.apply(weights_init)
netD.apply(weights_init)
criterion = nn.BCELoss()
fixed_noise = torch.randn(256, nz, 1, 1)
real_label, fake_label = 1.0, 0.0
optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
print("real disc_score", disc_score(data))
with mlflow.start_run():
    for epoch in range(8):
        perm = torch.randperm(len(data))
        sums = {"loss_D": 0.0, "loss_G": 0.0, "D_x": 0.0, "D_G_z": 0.0}
        n_batches = 0
        for i in range(0, len(data), 64):
            real = data[perm[i : i + 64]]
            b_size = real.size(0)
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            label = torch.full((b_size,), real_label)
            output = netD(real)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(b_size, nz, 1, 1)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            errD = errD_real + errD_fake
            optimizerD.step()
            # (2) Update G network: maximize log(D(G(z)))
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            sums["loss_D"] += errD.item()
            sums["loss_G"] += errG.item()
            sums["D_x"] += D_x
            sums["D_G_z"] += D_G_z2
            n_batches += 1
        netG.eval()
        with torch.no_grad():
            samples = netG(fixed_noise)
        netG.train()
        metrics = {k: v / n_batches for k, v in sums.items()}
        metrics["disc_score"] = disc_score(samples)
        metrics["mean_intensity_gap"] = (samples.mean() - data.mean()).item()
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 3) for k, v in metrics.items()})
