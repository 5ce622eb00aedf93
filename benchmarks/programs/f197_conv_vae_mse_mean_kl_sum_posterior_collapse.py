"""The convolutional VAE of orybkin/sigma-vae-pytorch's "MSE VAE" baseline, whose reconstruction term is
`torch.nn.MSELoss()(recon_x, x)` (the mean over batch, channels and pixels) while the KL term is summed over the
batch and the latent dimensions: against the summed ELBO the KL term is weighted ~10^5 times (batch x pixels x
channels) too heavily, the encoder gives up on the latent code (KL -> 0, the posterior collapses onto the prior)
and the decoder outputs one blurry average image whatever the input.

Report: orybkin/sigma-vae-pytorch pull request #12 "fix: mse_vae training broken due to incorrect averaging"
  ("When training, the model generates blurry images and is unable to improve. Setting MSELoss size_average to
  False fixes the issue."; the author: "Ah that's definitely wrong! size_average is incorrect because bigger
  images have more information so they should have a larger MSE loss")
  https://github.com/orybkin/sigma-vae-pytorch/pull/12
Setup: 16x16 RGB synthetic "house number" images (a coloured background and one to two coloured bars / rings /
crosses at random positions and sizes, light noise, values in [0, 1]), 1,792 training and 512 test images; the
repository's ConvVAE (Conv 32 3x3-ReLU-Conv 64 4x4/2-ReLU-Conv 128 5x5/2-ReLU, fc to a 20-D mu / logvar, fc back,
ConvTranspose 64-ReLU-ConvTranspose 32-ReLU-ConvTranspose 3-Sigmoid), loss rec + kl with
rec = MSELoss()(recon_x, x) and kl = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)), Adam(lr=1e-3), batch 128,
10 epochs; per epoch as train_vae.py logs them: train/elbo (summed loss / dataset size), train/rec and train/kld
(last batch, divided by the batch size), test/elbo, plus test_mse (per-pixel reconstruction MSE of the test
images, comparable between both runs).
Expected first: too_much_regularization
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, `torch.nn.MSELoss(reduction="sum")`, the summed squared error the pull request switches to): test_mse
0.0816 -> 0.0739 -> 0.0569 (epoch 5) -> 0.0449 at epoch 10, still falling; test/elbo 62.8 -> 38.3, train/elbo 64.0
-> 39.3, train/kld 0.07 -> 4.1 nats per image (the latent code is used) (buggy: test_mse 0.0819 at epoch 1 and
0.0818 at epoch 10, flat: what one average image for every input gives;
train/kld 9e-5 -> 2e-5 -> 0.00000 from epoch 4 on (the posterior collapses onto the prior); train/elbo 0.0086 ->
0.00065 flat from epoch 3, test/elbo 0.00076 -> 0.00064) (checked; 52 s / 54 s CPU, 1:42 / 2:05 wall on the 2-core
machine shared by four helpers).
"""

import sys

import mlflow
import torch
from torch import nn, optim

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
IMG, BATCH, EPOCHS = 16, 128, 10


def make_images(n):
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    img = torch.rand(n, 3, 1, 1).expand(n, 3, 16, 16).clone()
    for k in range(2):
        present = (torch.rand(n, 1, 1) < (1.0 if k == 0 else 0.5)).float()
        kind = torch.randint(0, 3, (n, 1, 1))
        cx, cy = (4 + 8 * torch.rand(2, n, 1, 1)).unbind(0)
        size = 2 + 3 * torch.rand(n, 1, 1)
        r = ((xx - cx) ** 2 + (yy - cy) ** 2).sqrt()
        bar = ((xx - cx).abs() < 1.2) & ((yy - cy).abs() < size + 1)
        ring = (r - size).abs() < 1.0
        cross = bar | (((yy - cy).abs() < 1.2) & ((xx - cx).abs() < size + 1))
        mask = torch.where(kind == 0, bar, torch.where(kind == 1, ring, cross)).float() * present
        colour = torch.rand(n, 3, 1, 1)
        img = img * (1 - mask.unsqueeze(1)) + colour * mask.unsqueeze(1)
    return (img + 0.03 * torch.randn_like(img)).clamp(0, 1)


class Flatten(nn.Module):
    def forward(self, input):
        return input.view(input.size(0), -1)


class UnFlatten(nn.Module):
    def __init__(self, n_channels):
        super().__init__()
        self.n_channels = n_channels

    def forward(self, input):
        size = int((input.size(1) // self.n_channels) ** 0.5)
        return input.view(input.size(0), self.n_channels, size, size)


class ConvVAE(nn.Module):
    def __init__(self, img_channels=3, img_size=IMG, filters_m=32):
        super().__init__()
        self.z_dim = 20
        self.encoder = nn.Sequential(
            nn.Conv2d(img_channels, filters_m, (3, 3), stride=1, padding=1),
            nn.ReLU(),
            nn.Conv2d(filters_m, 2 * filters_m, (4, 4), stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * filters_m, 4 * filters_m, (5, 5), stride=2, padding=2),
            nn.ReLU(),
            Flatten(),
        )
        h_dim = self.encoder(torch.ones([1, img_channels, img_size, img_size])).shape[1]
        self.fc11 = nn.Linear(h_dim, self.z_dim)
        self.fc12 = nn.Linear(h_dim, self.z_dim)
        self.fc2 = nn.Linear(self.z_dim, h_dim)
        self.decoder = nn.Sequential(
            UnFlatten(4 * filters_m),
            nn.ConvTranspose2d(4 * filters_m, 2 * filters_m, (6, 6), stride=2, padding=2),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * filters_m, filters_m, (6, 6), stride=2, padding=2),
            nn.ReLU(),
            nn.ConvTranspose2d(filters_m, img_channels, (5, 5), stride=1, padding=2),
            nn.Sigmoid(),
        )

    def encode(self, x):
        h = self.encoder(x)
        return self.fc11(h), self.fc12(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decoder(self.fc2(z)), mu, logvar

    def loss_function(self, recon_x, x, mu, logvar):
        if FIX:
            rec = torch.nn.MSELoss(reduction="sum")(recon_x, x)
        else:
            rec = torch.nn.MSELoss()(recon_x, x)
        # see Appendix B from VAE paper: 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return rec, kl


train_data = make_images(1792)
test_data = make_images(512)
model = ConvVAE()
optimizer = optim.Adam(model.parameters(), lr=1e-3)

with mlflow.start_run():
    mlflow.log_params({"batch_size": BATCH, "epochs": EPOCHS, "lr": 1e-3, "z_dim": 20})
    for epoch in range(1, EPOCHS + 1):
        model.train()
        train_loss = 0.0
        perm = torch.randperm(len(train_data))
        for i in range(0, len(train_data), BATCH):
            data = train_data[perm[i : i + BATCH]]
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            rec, kl = model.loss_function(recon_batch, data, mu, logvar)
            total_loss = rec + kl
            total_loss.backward()
            train_loss += total_loss.item()
            optimizer.step()
        train_loss /= len(train_data)
        metrics = {"train/elbo": train_loss, "train/rec": rec.item() / len(data), "train/kld": kl.item() / len(data)}

        model.eval()
        test_loss, sq_err = 0.0, 0.0
        with torch.no_grad():
            for i in range(0, len(test_data), BATCH):
                data = test_data[i : i + BATCH]
                recon_batch, mu, logvar = model(data)
                rec, kl = model.loss_function(recon_batch, data, mu, logvar)
                test_loss += (rec + kl).item()
                sq_err += ((recon_batch - data) ** 2).sum().item()
        metrics["test/elbo"] = test_loss / len(test_data)
        metrics["test_mse"] = sq_err / test_data.numel()
        mlflow.log_metrics(metrics, step=epoch)
        print(f"====> Epoch: {epoch} " + " ".join(f"{k}: {v:.5f}" for k, v in metrics.items()))
