"""A hyperspectral pixel classifier (a 1-D CNN over each pixel's spectrum, with BatchNorm and Dropout) validated DeepHyperX-style without `model.eval()`: the validation batches, taken in the scene's row order, each hold the pixels of one or two parcels, and BatchNorm normalises every such batch by its own statistics, wiping out the class signal it was trained to read.

Report: nshaud/DeepHyperX issue #51 "why during validation not using model.eval()?" ("Since some model have
  BN,dropout layers, why dont use model.eval() in the val function?"; answer: "i think it's necessary to use
  model.eval() before validation") https://github.com/nshaud/DeepHyperX/issues/51 (the same `val` function in
  its fork eecn/Hyperspectral-Classification issue #21, where the maintainer confirms it "needs to be added")
Setup: as DeepHyperX's `train` / `val`: a synthetic 60x60 scene of 6 crop parcels (horizontal strips of 10 rows),
each pixel a 64-band spectrum (a shared red-edge vegetation curve scaled by its crop's albedo, 0.25 to 0.75, with a
small crop-specific ripple, times a per-pixel illumination factor 0.9-1.1, plus sensor noise), 20% of the labelled pixels sampled for training and the rest for validation, the validation loader
unshuffled (pixels in the scene's row order, as HyperX lists them); a 1-D CNN Conv1d(1,16,7)-BN-ReLU-MaxPool-
Conv1d(16,32,5)-BN-ReLU-MaxPool-Flatten-Dropout(0.5)-Linear(n,6), CrossEntropyLoss, Adam(lr=1e-3), batch 64,
10 epochs; train_loss every 10 iterations (DeepHyperX plots a running mean), val_loss / val_acc per epoch.
Expected first: eval_mode_not_set
Acceptable in top 3: -
Symptom: overfitting
Fixed (--fix, `net.eval()` at the top of `val`, as the answer says): val_acc 0.34 -> 0.73 (epoch 2) -> 0.87 ->
0.94 (epoch 5) -> 0.92, val_loss 1.68 -> 0.96 -> 0.54 -> 0.42 after 10 epochs, train_loss 1.56 -> 0.74 (buggy: the
same training, train_loss 1.56 -> 0.74, but val_acc 0.23-0.27 at every epoch (chance 0.17) and val_loss rising from
1.81 to 2.30: each one-parcel validation batch is normalised by its own mean, which removes the albedo that tells
the crops apart) (checked; 18-60 s CPU each, 0.4-2.5 min wall on a machine loaded 3x over its 2 cores).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
H, W, BANDS, N_CLASSES = 60, 60, 64, 6

# scene: parcel k covers rows 10k..10k+9; each class has its own smooth reflectance curve
wavelengths = np.linspace(0, 1, BANDS)
vegetation = 0.5 + 0.4 * np.tanh(12 * (wavelengths - 0.45))  # shared red-edge shape, scaled by each crop's albedo
signatures = np.stack(
    [
        (0.25 + 0.1 * k) * vegetation + 0.03 * np.sin(2 * np.pi * (2 * wavelengths + k / N_CLASSES))
        for k in range(N_CLASSES)
    ]
)
gt = np.repeat(np.arange(N_CLASSES), 10)[:, None].repeat(W, axis=1)
illumination = rng.uniform(0.9, 1.1, (H, W, 1))
img = signatures[gt] * illumination + 0.05 * rng.standard_normal((H, W, BANDS))
indices = np.array(np.nonzero(gt >= 0)).T  # labelled pixels in row order, as HyperX lists them
train_mask = rng.random(len(indices)) < 0.2


def tensors(idx):
    x = torch.tensor(img[idx[:, 0], idx[:, 1]], dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(gt[idx[:, 0], idx[:, 1]])


train_set = torch.utils.data.TensorDataset(*tensors(indices[train_mask]))
val_set = torch.utils.data.TensorDataset(*tensors(indices[~train_mask]))
train_loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
val_loader = torch.utils.data.DataLoader(val_set, batch_size=64)  # not shuffled, as DeepHyperX

model = nn.Sequential(
    nn.Conv1d(1, 16, 7, padding=3),
    nn.BatchNorm1d(16),
    nn.ReLU(),
    nn.MaxPool1d(2),
    nn.Conv1d(16, 32, 5, padding=2),
    nn.BatchNorm1d(32),
    nn.ReLU(),
    nn.MaxPool1d(2),
    nn.Flatten(),
    nn.Dropout(0.5),
    nn.Linear(32 * (BANDS // 4), N_CLASSES),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def val(net, data_loader):
    if FIX:
        net.eval()
    correct, total, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for data, target in data_loader:
            output = net(data)
            loss_sum += criterion(output, target).item() * len(target)
            correct += (output.argmax(1) == target).sum().item()
            total += len(target)
    return loss_sum / total, correct / total


with mlflow.start_run():
    mlflow.log_params({"lr": 1e-3, "batch_size": 64, "epochs": 10, "training_sample": 0.2})
    iteration, mean_losses = 0, []
    for epoch in range(10):
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(data), target)
            loss.backward()
            optimizer.step()
            mean_losses.append(loss.item())
            if iteration % 10 == 0:
                mlflow.log_metric("train_loss", float(np.mean(mean_losses[-100:])), step=iteration)
            iteration += 1
        val_loss, val_acc = val(model, val_loader)
        mlflow.log_metrics({"val_loss": val_loss, "val_acc": val_acc}, step=iteration)
        print(
            f"epoch {epoch}: train_loss {np.mean(mean_losses[-100:]):.4f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}"
        )
