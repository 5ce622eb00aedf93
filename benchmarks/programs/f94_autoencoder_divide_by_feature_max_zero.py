"""A 1-D convolutional autoencoder over per-basic-block binary features, each feature divided by its maximum over the dataset: one feature is 0 in every block, so its maximum is 0 and 0 / 0 puts NaN in every sample.

Report: evandowning/deepreflect issue #11 "Nan value of lose and MSE" ("lose = nan - mse = nan while
  training the model"; answer: "This is due to the presence of a feature with a maximum value of 0,
  which leads to improper normalization that sets 0 as the denominator") https://github.com/evandowning/deepreflect/issues/11
Setup: as DeepReflect's autoencoder: each binary is its first 64 basic blocks x 18 features (counts
of instruction kinds, API-call categories, offspring, betweenness, ...; blocks past the end padded
with zeros), every feature divided by its maximum over the training and test files (`get_max`, then
`x / maximum_val`) and the autoencoder reconstructs its own input; here the "service API" count is 0
in every block of this corpus. Conv1d(18,32,5)-ReLU-Conv1d(32,16,5, stride 2)-ReLU ->
ConvTranspose1d(16,32,4, stride 2)-ReLU-Conv1d(32,18,5), MSELoss, Adam(lr=1e-3), batch 32,
600 training / 150 validation binaries, 8 epochs; per-epoch loss / val_loss (Keras-style names, as the report's `fit` printed them) and
val_r2 (1 - val_loss / the features' mean variance).
Expected first: constant_features
Acceptable in top 3: nonfinite_inputs
Symptom: nonfinite_loss
Fixed (--fix, a zero maximum replaced by 1 before dividing, so the all-zero feature stays 0, as the
thread's answer ("Remove those feature which are missing while normalisation") intends): loss 0.0214 ->
0.0088, val_loss 0.0153 -> 0.0084, val_r2 0.10 -> 0.51 after 8 epochs, still falling (buggy: loss,
val_loss and val_r2 NaN from the first epoch on; feature 11 is NaN in every sample) (checked; 21 s /
13 s wall on a loaded 2-core machine, ~8 s / ~7 s CPU).
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
BLOCKS, FEATURES, SERVICE_API = 64, 18, 11


def binary():
    """Feature rows of one binary's basic blocks (raw counts), zero-padded to BLOCKS rows."""
    n = int(rng.integers(20, BLOCKS + 1))
    kind = rng.integers(0, 3)  # rough "style" of the binary: arithmetic-heavy, call-heavy, branchy
    rates = np.array([6, 3, 2, 4, 1, 1, 0.5, 0.3, 0.3, 0.2, 0.2, 0.0, 0.4, 0.3, 1, 1, 2, 1], dtype=float)
    rates = rates * (1 + 0.8 * (np.arange(FEATURES) % 3 == kind))
    counts = rng.poisson(rates * rng.uniform(0.5, 2.0), size=(n, FEATURES)).astype(float)
    counts[:, 14] = np.cumsum(rng.random(n) < 0.3)  # offspring count grows along the listing
    counts[:, 15] = rng.uniform(0, 200, n) * (rng.random(n) < 0.2)  # betweenness, mostly 0
    counts[:, SERVICE_API] = 0.0  # no service-API call anywhere in this corpus
    x = np.zeros((BLOCKS, FEATURES))
    x[:n] = counts
    return x


train = np.stack([binary() for _ in range(600)])
test = np.stack([binary() for _ in range(150)])
maximum_val = np.concatenate([train, test]).max(axis=(0, 1))  # DeepReflect's get_max over both sets
print("features whose maximum is 0:", np.flatnonzero(maximum_val == 0))
if FIX:
    maximum_val[maximum_val == 0] = 1.0
with np.errstate(invalid="ignore"):
    x_train = torch.tensor(train / maximum_val, dtype=torch.float32).transpose(1, 2)  # (N, features, blocks)
    x_val = torch.tensor(test / maximum_val, dtype=torch.float32).transpose(1, 2)

model = nn.Sequential(
    nn.Conv1d(FEATURES, 32, 5, padding=2),
    nn.ReLU(),
    nn.Conv1d(32, 16, 5, stride=2, padding=2),
    nn.ReLU(),
    nn.ConvTranspose1d(16, 32, 4, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv1d(32, FEATURES, 5, padding=2),
)
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loader = torch.utils.data.DataLoader(x_train, batch_size=32, shuffle=True)

with mlflow.start_run():
    mlflow.log_params({"blocks": BLOCKS, "features": FEATURES, "batch_size": 32, "lr": 1e-3})
    for epoch in range(8):
        model.train()
        total = 0.0
        for xb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), xb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        model.eval()
        with torch.no_grad():
            recon = model(x_val)
            val_loss = criterion(recon, x_val).item()
            val_r2 = 1 - val_loss / x_val.var(dim=(0, 2)).mean().item()
        metrics = {"loss": total / len(x_train), "val_loss": val_loss, "val_r2": val_r2}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 5) for k, v in metrics.items()})
