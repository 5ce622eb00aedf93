"""A denoising generator trained with a perceptual (feature) loss from a frozen, pretrained CNN with BatchNorm: the loss network is set to eval() once, but the wrapper module that holds it is put back into train() every epoch, so the frozen network's BatchNorm normalises the fake and the real batch each with its own statistics (and keeps rewriting its running averages): the loss no longer sees brightness or contrast errors and the restored images stay far from the targets.

Report: Lightning-AI/pytorch-lightning issue #2824 "Disabling automatic .train() for loss criteria" (a
  pretrained network used inside the loss is switched back to training mode by the trainer's `.train()` on the
  whole model: "When I training a GAN model, use the pre-trained module for content loss, but the document didn't
  say the model will automatically switch to training mode"; "I spent a lot of time looking for a reason for
  decreased performance, turns out it was because PL put my pretrained (frozen) RNN/CNN into train mode (after I
  put them in eval mode)"; fix: put the frozen module back into eval mode after every `.train()` call)
  https://github.com/Lightning-AI/pytorch-lightning/issues/2824
Setup: 16x16 grey images of random rectangles and discs (intensities 0.2..1 on a 0..0.15 background), input =
the image blurred and with Gaussian noise (std 0.2), target = the clean image; a feature network
Conv(1,16)-BN-ReLU-Conv(16,32)-BN-ReLU-pool-Conv(32,32)-BN-ReLU pretrained in the script as a rectangle/disc
classifier (150 Adam steps on 800 clean images, `pretrain_loss` logged every 50 steps), then frozen
(`requires_grad_(False)`, `.eval()`) and kept as `model.loss_net` beside `model.generator` (4 conv layers, 32 channels, residual output); loss = MSE between the loss network's
features of the output and of the target (the perceptual loss alone); Adam(lr=1e-3) over the generator's
parameters, batch 32, 960 training / 320 validation pairs, 10 epochs; a plain loop that calls `model.train()` at the
start of every epoch (as Lightning's loop did before 2.2) and `model.eval()` for validation; per epoch `train_loss`, `val_loss` (the perceptual loss,
eval mode), `val_mse` and `val_psnr` (pixels against the clean targets).
Expected first: eval_mode_not_set
Acceptable in top 3: -
Symptom: overfitting, oscillating_loss
Fixed (--fix, `model.loss_net.eval()` right after `model.train()`, as the issue's answers say):
val_mse 0.93 -> 0.031 (the input noise
alone is 0.04), val_psnr 0.3 -> 15.1 dB, still rising, val_loss 0.86 -> 0.64, train_loss 1.50 -> 0.575 after 10
epochs (buggy: train_loss 1.07 -> 0.605, falling just as well, but val_loss 1.65 -> 0.448 at epoch 2, then
0.48-0.77 (0.770 last), and the restored images off in brightness and contrast: val_mse 1.04 -> 11.9 (epoch 2)
-> 0.98-8.7, 1.61 last, val_psnr -2.1 dB, 50x the fixed error) (checked; 52 s / 47 s wall, ~34 s CPU each, on
the 2-core machine shared by three helpers; `torch.set_num_threads(1)`, without it a step took ~1 s there).
"""

import sys

import mlflow
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
N_TRAIN, N_VAL, EPOCHS, BATCH = 960, 320, 10, 32


def make_images(n):
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    labels = torch.randint(0, 2, (n,))
    imgs = 0.15 * torch.rand(n, 1, 1, 1) * torch.ones(n, 1, 16, 16)
    for _ in range(2):
        cx, cy = torch.randint(3, 13, (2, n, 1, 1, 1)).float()
        r = torch.randint(2, 5, (n, 1, 1, 1)).float()
        val = 0.2 + 0.8 * torch.rand(n, 1, 1, 1)
        rect = ((xx - cx).abs() <= r) & ((yy - cy).abs() <= r - 1)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        mask = torch.where(labels.view(n, 1, 1, 1) == 0, rect, disc)
        mask &= torch.rand(n, 1, 1, 1) < 0.7  # one or two shapes per image
        imgs = torch.where(mask, val, imgs)
    return imgs, labels


def degrade(clean):
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16
    blurred = F.conv2d(clean, k.view(1, 1, 3, 3), padding=1)
    return blurred + 0.2 * torch.randn_like(clean)


class FeatureNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(32, 2)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class Restorer(nn.Module):
    def __init__(self, loss_net):
        super().__init__()
        self.generator = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 3, padding=1),
        )
        self.loss_net = loss_net  # frozen, pretrained: used for the perceptual loss only

    def forward(self, x):
        return x + self.generator(x)

    def perceptual_loss(self, output, target):
        return F.mse_loss(self.loss_net.features(output), self.loss_net.features(target))


clean_train, _ = make_images(N_TRAIN)
clean_val, _ = make_images(N_VAL)
noisy_train, noisy_val = degrade(clean_train), degrade(clean_val)

with mlflow.start_run():
    mlflow.log_params({"lr": 1e-3, "batch_size": BATCH, "epochs": EPOCHS, "loss": "perceptual"})
    # "pretrained" feature network: a rectangle/disc classifier on clean images
    clean_pre, labels_pre = make_images(800)
    feature_net = FeatureNet()
    opt_pre = torch.optim.Adam(feature_net.parameters(), lr=2e-3)
    for step in range(150):
        idx = torch.randint(0, len(clean_pre), (64,))
        loss = F.cross_entropy(feature_net(clean_pre[idx]), labels_pre[idx])
        opt_pre.zero_grad()
        loss.backward()
        opt_pre.step()
        if step % 50 == 49:
            mlflow.log_metric("pretrain_loss", loss.item(), step=step)
    feature_net.requires_grad_(False)
    feature_net.eval()

    model = Restorer(feature_net)
    optimizer = torch.optim.Adam(model.generator.parameters(), lr=1e-3)
    for epoch in range(EPOCHS):
        model.train()
        if FIX:
            model.loss_net.eval()
        perm = torch.randperm(N_TRAIN)
        total = 0.0
        for i in range(0, N_TRAIN, BATCH):
            idx = perm[i : i + BATCH]
            output = model(noisy_train[idx])
            loss = model.perceptual_loss(output, clean_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out_val = model(noisy_val)
            val_loss = model.perceptual_loss(out_val, clean_val).item()
            val_mse = F.mse_loss(out_val, clean_val).item()
        metrics = {
            "train_loss": total / N_TRAIN,
            "val_loss": val_loss,
            "val_mse": val_mse,
            "val_psnr": 10 * torch.log10(torch.tensor(1.0 / val_mse)).item(),
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 5) for k, v in metrics.items()})
