"""A vanilla fully connected GAN (code-soup's chapter 5 MNIST GAN: LeakyReLU MLP generator with a tanh output,
dropout MLP discriminator with a sigmoid output, BCELoss, one Adam per network) whose `step` never calls
`discriminator.zero_grad()`: the discriminator's gradients pile up from every step since the start (and the
generator step's backward through D adds its "call the fakes real" gradient on top), so D is pushed along stale,
partly reversed directions and the generator never gets a useful signal.

Report: Adversarial-Deep-Learning/code-soup issue #69 "Zero Grad and Generator error missing in GAN" ("add
  self.discriminator.zero_grad()"; fixed by pull request #73 "bug fixed in gan.py": "added zero_grad() method for
  discriminator") https://github.com/Adversarial-Deep-Learning/code-soup/issues/69
Setup: 16x16 synthetic one-channel "digit" images (a bar, a ring or a cross per sample, random position, size and
thickness, light noise), normalised to [-1, 1] as `Normalize((0.5,), (0.5,))` does; Generator Linear(128, 256)-
LeakyReLU-Linear(512)-LeakyReLU-Linear(1024)-LeakyReLU-Linear(256)-Tanh, Discriminator Linear(256, 1024)-LeakyReLU-
Dropout(0.3)-Linear(512)-...-Linear(256, 1)-Sigmoid, BCELoss, Adam(lr=2e-4) for each, batch 64, 2,048 images,
20 epochs; per-epoch means of errD, errG, D_x, D_G_z1, D_G_z2 (the values `step` returns) and an MMD (Gaussian
kernel, pixel space) between 512 generated and 512 held-out real images.
Expected first: gradients_not_zeroed
Acceptable in top 3: -
Symptom: plateau, diverging
Fixed (--fix, `self.discriminator.zero_grad()` at the top of `step`, as pull request #73 adds): a normal adversarial
game: Loss_D between 0.21 and 1.97 and Loss_G between 0.67 and 4.23 throughout the 20 epochs (1.03 / 2.22 at the
end), D(x) 0.44-0.89, D(G(z)) 0.07-0.66; MMD 0.457 -> 0.396-1.095 (0.690 at the end), the generator still moving
(buggy: Loss_D 1.87 -> 2.0-4.5 over epochs 0-5, 32.6 at epoch 6, then 91.8-108.8 and exactly 100.0 (BCELoss's
clamp at log 0) from epoch 11 to 19 with Loss_G 0.0000, D(x) = D(G(z)) = 1.0000: the discriminator calls
everything real, the generator gets no gradient and its samples stop changing (MMD frozen at 0.9078 from epoch 11
on)) (checked; 42 s / 47 s CPU, 1:24 / 1:20 wall on the 2-core machine shared by four helpers).
"""

import sys

import mlflow
import torch
from torch import nn, optim

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
IMAGE_SIZE, CHANNELS, LATENT, LR, BATCH, EPOCHS = 16, 1, 128, 2e-4, 64, 20


def make_images(n):
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    kind = torch.randint(0, 3, (n, 1, 1))
    cx, cy = (5 + 6 * torch.rand(2, n, 1, 1)).unbind(0)
    size = 3 + 2 * torch.rand(n, 1, 1)
    width = 0.8 + 0.6 * torch.rand(n, 1, 1)
    r = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()
    ring = (r - size).abs() < width
    bar = ((xx - cx).abs() < width) & ((yy - cy).abs() < size + 1)
    cross = bar | (((yy - cy).abs() < width) & ((xx - cx).abs() < size + 1))
    img = torch.where(kind == 0, bar, torch.where(kind == 1, ring, cross)).float()
    img = (img + 0.05 * torch.randn(n, 16, 16)).clamp(0, 1)
    return ((img - 0.5) / 0.5).unsqueeze(1)  # transforms.Normalize((0.5,), (0.5,))


class Generator(nn.Module):
    def __init__(self, image_size, channels, latent_dims, lr):
        super().__init__()
        self.image_size, self.channels, self.latent_dims = image_size, channels, latent_dims
        self.main = nn.Sequential(
            nn.Linear(latent_dims, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 1024),
            nn.LeakyReLU(0.2),
            nn.Linear(1024, image_size * image_size * channels),
            nn.Tanh(),
        )
        self.optimizer = optim.Adam(self.parameters(), lr=lr)

    def forward(self, x):
        return self.main(x).view(-1, self.channels, self.image_size, self.image_size)


class Discriminator(nn.Module):
    def __init__(self, image_size, channels, lr):
        super().__init__()
        self.image_size, self.channels = image_size, channels
        self.main = nn.Sequential(
            nn.Linear(image_size * image_size * channels, 1024),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.3),
            nn.Linear(1024, 512),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.3),
            nn.Linear(512, 256),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.3),
            nn.Linear(256, 1),
            nn.Sigmoid(),
        )
        self.optimizer = optim.Adam(self.parameters(), lr=lr)

    def forward(self, x):
        return self.main(x.view(-1, self.image_size * self.image_size * self.channels))


class GAN:
    def __init__(self, image_size, channels, latent_dims, lr):
        self.latent_dims = latent_dims
        self.generator = Generator(image_size, channels, latent_dims, lr)
        self.discriminator = Discriminator(image_size, channels, lr)
        self.criterion = nn.BCELoss()
        self.real_label, self.fake_label = 1.0, 0.0

    def step(self, real_image):
        batch_size = real_image.shape[0]
        label = torch.full((batch_size,), self.real_label)
        if FIX:
            self.discriminator.zero_grad()
        output = self.discriminator(real_image).view(-1)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(batch_size, self.latent_dims)
        fake = self.generator(noise)
        label.fill_(self.fake_label)
        output = self.discriminator(fake.detach()).view(-1)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.discriminator.optimizer.step()

        self.generator.zero_grad()
        label.fill_(self.real_label)
        output = self.discriminator(fake).view(-1)
        errG = self.criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.generator.optimizer.step()
        return D_x, D_G_z1, errD.item(), D_G_z2, errG.item()


def mmd(a, b, sigma=8.0):
    a, b = a.flatten(1), b.flatten(1)
    k = lambda x, y: torch.exp(-(torch.cdist(x, y) ** 2) / (2 * sigma**2)).mean()  # noqa: E731
    return (k(a, a) + k(b, b) - 2 * k(a, b)).item()


train_images = make_images(2048)
held_out = make_images(512)
gan = GAN(IMAGE_SIZE, CHANNELS, LATENT, LR)
fixed_noise = torch.randn(512, LATENT)

with mlflow.start_run():
    mlflow.log_params({"lr": LR, "batch_size": BATCH, "latent_dims": LATENT, "epochs": EPOCHS})
    for epoch in range(EPOCHS):
        gan.generator.train()
        gan.discriminator.train()
        perm = torch.randperm(len(train_images))
        sums = torch.zeros(5)
        n_batches = 0
        for i in range(0, len(train_images), BATCH):
            sums += torch.tensor(gan.step(train_images[perm[i : i + BATCH]]))
            n_batches += 1
        D_x, D_G_z1, errD, D_G_z2, errG = (sums / n_batches).tolist()
        gan.generator.eval()
        with torch.no_grad():
            sample_mmd = mmd(gan.generator(fixed_noise), held_out)
        mlflow.log_metrics(
            {"errD": errD, "errG": errG, "D_x": D_x, "D_G_z1": D_G_z1, "D_G_z2": D_G_z2, "mmd": sample_mmd},
            step=epoch,
        )
        print(
            f"[{epoch}/{EPOCHS}] Loss_D: {errD:.4f} Loss_G: {errG:.4f} D(x): {D_x:.4f} "
            f"D(G(z)): {D_G_z1:.4f} / {D_G_z2:.4f} MMD: {sample_mmd:.4f}"
        )
