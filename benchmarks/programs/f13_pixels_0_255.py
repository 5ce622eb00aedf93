"""MLP on 28x28 images fed raw 0..255 pixel values: accuracy stuck near chance.

Report: Stack Exchange "Why normalize when all features are on the same scale?" (MNIST-style
  images; without dividing by 255 accuracy falls to 10%)
  https://datascience.stackexchange.com/questions/39929/why-normalize-when-all-features-are-on-the-same-scale
Setup: Flatten -> Linear(784, 128) -> ReLU -> Linear(128, 10), SGD(lr=0.01), CrossEntropyLoss,
batches of 64, per-epoch loss / val_accuracy.
Expected first: inputs_not_normalized
Acceptable in top 3: learning_rate_too_high
Symptom: plateau, diverging, oscillating_loss, nonfinite_loss
Fixed (--fix, x / 255): val_accuracy 1.0, loss 0.33 after 8 epochs (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

# synthetic "digits": each class is a random stroke template in the middle of the image, borders zero
templates = (torch.rand(10, 20, 20) > 0.6).float()


def make(n):
    y = torch.randint(0, 10, (n,))
    img = torch.zeros(n, 28, 28)
    img[:, 4:24, 4:24] = templates[y] * torch.randint(120, 256, (n, 1, 1)).float()
    img[:, 4:24, 4:24] += torch.randint(0, 60, (n, 20, 20)).float()
    return img.clamp(0, 255).round(), y


x_train, y_train = make(2000)
x_val, y_val = make(400)
if FIX:
    x_train, x_val = x_train / 255, x_val / 255

model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
criterion = nn.CrossEntropyLoss()
with mlflow.start_run():
    for epoch in range(8):
        perm = torch.randperm(2000)
        for i in range(0, 2000, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            acc = (model(x_val).argmax(1) == y_val).float().mean().item()
        mlflow.log_metric("loss", loss.item(), step=epoch)
        mlflow.log_metric("val_accuracy", acc, step=epoch)
        print(epoch, loss.item(), acc)
