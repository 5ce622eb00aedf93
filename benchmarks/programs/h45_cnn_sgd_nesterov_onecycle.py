"""A small CNN trained with SGD (momentum 0.9, Nesterov, weight decay 5e-4) and OneCycleLR stepped every batch, the super-convergence recipe of the CIFAR speed-run examples.

Report: healthy, in the style of the PyTorch OneCycleLR recipe for image classifiers (SGD with
  momentum, `max_lr` with a warm-up then cosine annealing, `scheduler.step()` after every batch)
  https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html ; Smith & Topin,
  "Super-Convergence" https://arxiv.org/abs/1708.07120
Setup: synthetic 3x16x16 images of 6 classes (a class-specific oriented grating at a random phase plus
Gaussian noise of std 3, three times the grating; each batch shifted by up to 2 pixels as augmentation), Conv(3,32,3)-BN-ReLU-Conv(32,32,3)-BN-ReLU-MaxPool,
Conv(32,64,3)-BN-ReLU-MaxPool, global average pool, Linear(64, 6), CrossEntropyLoss,
SGD(lr=max_lr/25, momentum=0.9, nesterov=True, weight_decay=5e-4), OneCycleLR(max_lr=0.1, 6 epochs x
38 steps), batch 64, 2400 training / 600 validation images; train_loss and lr every 10 steps,
val_loss / val_acc per epoch.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_acc 0.552 -> 0.707 -> 0.752 -> 0.925 -> 0.947 -> 0.948, val_loss 1.251 -> 0.158 (best) -> 0.164, lr up to 0.1 by step ~68 then annealed to ~4e-7 (checked; 25 s on a machine loaded 3x over its 2 cores).
"""

import math

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
N_CLASSES, EPOCHS, BATCH = 6, 6, 64
angles = torch.arange(N_CLASSES) * math.pi / N_CLASSES
grid_y, grid_x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")


def make(n):
    y = torch.randint(0, N_CLASSES, (n,))
    phase = torch.rand(n, 1, 1) * 2 * math.pi
    proj = grid_x * torch.cos(angles[y]).view(n, 1, 1) + grid_y * torch.sin(angles[y]).view(n, 1, 1)
    grating = torch.sin(1.2 * proj + phase)
    colour = torch.rand(n, 3, 1, 1) * 0.5 + 0.5
    x = colour * grating.unsqueeze(1) + 3.0 * torch.randn(n, 3, 16, 16)
    return x, y


def block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


model = nn.Sequential(
    *block(3, 32),
    *block(32, 32),
    nn.MaxPool2d(2),
    *block(32, 64),
    nn.MaxPool2d(2),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(64, N_CLASSES),
)
x_train, y_train = make(2400)
x_val, y_val = make(600)
steps_per_epoch = math.ceil(len(x_train) / BATCH)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.004, momentum=0.9, nesterov=True, weight_decay=5e-4)
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=EPOCHS, steps_per_epoch=steps_per_epoch)
step = 0
with mlflow.start_run():
    mlflow.log_params({"max_lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": BATCH})
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), BATCH):
            idx = perm[i : i + BATCH]
            x = x_train[idx]
            x = torch.roll(x, shifts=(int(torch.randint(-2, 3, ())), int(torch.randint(-2, 3, ()))), dims=(2, 3))
            optimizer.zero_grad()
            loss = criterion(model(x), y_train[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step % 10 == 0:
                mlflow.log_metrics({"train_loss": loss.item(), "lr": scheduler.get_last_lr()[0]}, step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_acc": val_acc}, step=step)
        print(f"epoch {epoch}: val_loss {val_loss:.4f} val_acc {val_acc:.3f}")
