"""A small CNN trained with gradual magnitude pruning: `torch.nn.utils.prune.global_unstructured` with L1 magnitude raises the sparsity of the conv and linear weights on the cubic schedule of Zhu & Gupta from 0 to 85% over epochs 2-7, each pruning step costing a little loss that the next epoch recovers, then fine-tunes at the final sparsity.

Report: healthy, in the style of the PyTorch "Pruning Tutorial" (`prune.global_unstructured(parameters_to_prune,
  pruning_method=prune.L1Unstructured, amount=...)`, the masks kept as forward pre-hooks, `prune.remove` at the
  end) https://pytorch.org/tutorials/intermediate/pruning_tutorial.html and of the gradual schedule of Zhu &
  Gupta 2017, "To prune, or not to prune" (s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3)
Setup: 1x16x16 synthetic images of 6 classes (a class-specific stroke pattern, shifted by up to 3 pixels, under
noise); Conv(1,16,3)-ReLU-MaxPool-Conv(16,32,3)-ReLU-MaxPool-Flatten-Linear(512,64)-ReLU-Linear(64,6);
CrossEntropyLoss, SGD(lr=0.05, momentum=0.9, weight_decay=5e-4), batch 64, 1800 training / 600 validation
images, 12 epochs; at the start of epochs 2..7 the global L1 sparsity target is raised on the cubic schedule
(36%, 60%, 74%, 82%, 85%, 85%; `prune.global_unstructured` re-applied on top of the existing masks); per epoch
train_loss, val_loss, val_acc and sparsity (step = epoch).
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: val_acc 0.35 (epoch 1) -> 0.87 at 85% sparsity (epoch 6) -> 0.90, val_loss 1.53 -> 0.23,
train_loss 1.67 -> 0.17, sparsity 0 -> 0.36 -> 0.60 -> 0.74 -> 0.82 -> 0.85 (epochs 2-7), val_loss
noisy at the end (0.31, 0.34, 0.29, 0.29, 0.23) (checked; 28 s wall / 15 s CPU, OMP_NUM_THREADS=1, 2 shared
cores).
"""

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
import torch.nn.utils.prune as prune
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
N_CLASSES, S = 6, 16
templates = np.zeros((N_CLASSES, 10, 10), np.float32)
for c in range(N_CLASSES):  # random strokes per class
    for _ in range(3):
        r0, c0 = rng.integers(0, 10, 2)
        dr, dc = rng.choice([-1, 0, 1], 2)
        for k in range(6):
            r, q = r0 + k * dr, c0 + k * dc
            if 0 <= r < 10 and 0 <= q < 10:
                templates[c, r, q] = 1.0


def images(n):
    y = rng.integers(0, N_CLASSES, n)
    x = rng.normal(0, 0.4, (n, 1, S, S)).astype(np.float32)
    for i, c in enumerate(y):
        dy, dx = rng.integers(0, 7, 2)
        x[i, 0, dy : dy + 10, dx : dx + 10] += templates[c]
    return torch.tensor(x), torch.tensor(y)


x_train, y_train = images(1800)
x_val, y_val = images(600)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, N_CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


model = Net()
parameters_to_prune = [(model.conv1, "weight"), (model.conv2, "weight"), (model.fc1, "weight"), (model.fc2, "weight")]
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
FINAL_SPARSITY, START, STEPS = 0.85, 2, 6


def target_sparsity(epoch):
    if epoch < START:
        return 0.0
    t = min(epoch - START + 1, STEPS)
    return FINAL_SPARSITY * (1 - (1 - t / STEPS) ** 3)


def sparsity():
    zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in parameters_to_prune)
    return zeros / sum(getattr(m, n).numel() for m, n in parameters_to_prune)


with mlflow.start_run():
    mlflow.log_params({"final_sparsity": FINAL_SPARSITY, "prune_start": START, "prune_steps": STEPS, "lr": 0.05})
    for epoch in range(12):
        goal = target_sparsity(epoch)
        current = sparsity()
        if goal > current:  # the amount is a fraction of the weights still unpruned
            prune.global_unstructured(
                parameters_to_prune, pruning_method=prune.L1Unstructured, amount=(goal - current) / (1 - current)
            )
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = F.cross_entropy(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        metrics = {"train_loss": total / len(x_train), "val_loss": val_loss, "val_acc": val_acc, "sparsity": sparsity()}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
    for module, name in parameters_to_prune:
        prune.remove(module, name)  # make the pruning permanent
    print("final sparsity", round(sparsity(), 3))
