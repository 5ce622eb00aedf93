"""An LSTM that predicts a campus shuttle's minutes to its next stop from its last 10 GPS pings, fed raw latitude, longitude and speed: latitude ~42.73 and longitude ~-73.68 vary by a few thousandths of a degree along the route, speed by tens of mph, so the position hides under a huge constant offset.

Report: Shubble-LLC/shubble pull request #353 "348 normalize features lstm" ("Scaled input values.
  The problem was that latitude, longitude were on different scales than velocity. Scalers are stored
  as pkl files"; reviewer: "What's the MSE/RMSE of this new LSTM model?")
  https://github.com/Shubble-LLC/shubble/pull/353
Setup: a shuttle loop around a campus (an ellipse of ~0.006 x 0.008 degrees around 42.730 N,
73.677 W, ~3.7 km) with 2 stops (the Union and the far end); each sample is 10 pings 5 s apart of
(latitude, longitude, speed_mph) with GPS noise, the target the minutes to the next stop ahead
(distance along the loop / speed, with 10% multiplicative noise; 0-9 min, std ~2); nn.LSTM(3, 64,
batch_first=True) on the pings, Linear(64, 1) on the last hidden state, MSELoss, Adam(lr=3e-3),
batch 64, shuffled, 3000 training / 600 validation windows, 20 epochs; per-epoch train_loss,
val_loss, val_mae (minutes) and val_r2 with mlflow.log_metrics. On the raw pings 61% of the LSTM's
gate pre-activations start beyond |3| (latitude 42.7 and longitude -73.7 times weights of +-0.125).
Expected first: inputs_not_normalized
Acceptable in top 3: saturated_activations
Symptom: plateau
Fixed (--fix, a StandardScaler per feature fitted on the training pings, as the pull request does):
val_loss 2.93 -> 0.37 (best 0.32), val_r2 0.29 -> 0.91 (best 0.92), val_mae 1.29 -> 0.31 min after 20
epochs, noisy from epoch to epoch at lr 3e-3 (buggy: val_loss 3.51 -> 2.95 by epoch 4 and flat there
(2.88 at the end), val_r2 0.15 -> 0.30, val_mae 1.45 -> 1.36 min, train_loss 3.8 -> 2.6 flat from
epoch 2: only the speed is usable, the position hides under the coordinates' offsets) (checked; 16 s /
23 s wall with OMP_NUM_THREADS=1 as the runner sets, ~15 s CPU).
"""

import math
import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
CENTER_LAT, CENTER_LON, R_LAT, R_LON = 42.7300, -73.6770, 0.0060, 0.0080
ROUTE_M = 3700.0
STOPS = np.array([0.0, 0.5])  # fraction of the loop: the Union and the far end
PINGS, DT = 10, 5.0


def windows(n):
    frac = rng.random(n)  # where the shuttle is on the loop at the last ping
    speed = rng.uniform(3.0, 11.0, n)  # m/s
    steps = np.arange(PINGS - 1, -1, -1) * DT  # seconds before the last ping
    speeds = speed[:, None] * (1 + 0.08 * rng.standard_normal((n, PINGS)))
    pos = (frac[:, None] - speed[:, None] * steps / ROUTE_M) % 1.0
    angle = 2 * math.pi * pos
    lat = CENTER_LAT + R_LAT * np.sin(angle) + 1e-5 * rng.standard_normal((n, PINGS))
    lon = CENTER_LON + R_LON * np.cos(angle) + 1e-5 * rng.standard_normal((n, PINGS))
    mph = np.clip(speeds * 2.237, 0, None)
    x = np.stack([lat, lon, mph], axis=2)
    ahead = (STOPS[None, :] - frac[:, None]) % 1.0
    ahead[ahead < 1e-3] += 1.0
    minutes = ahead.min(axis=1) * ROUTE_M / speed / 60 * np.exp(0.1 * rng.standard_normal(n))
    return x, minutes


x_train, y_train = windows(3000)
x_val, y_val = windows(600)
if FIX:
    mean, std = x_train.reshape(-1, 3).mean(0), x_train.reshape(-1, 3).std(0)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
x_train, x_val = (torch.tensor(a, dtype=torch.float32) for a in (x_train, x_val))
y_train, y_val = (torch.tensor(a, dtype=torch.float32)[:, None] for a in (y_train, y_val))
print("first window, raw-or-scaled pings:\n", x_train[0, -3:], "target", y_train[0].item())


class EtaLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 64, batch_first=True)
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


model = EtaLSTM()
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=64, shuffle=True)

with mlflow.start_run():
    mlflow.log_params({"hidden": 64, "pings": PINGS, "batch_size": 64, "lr": 3e-3, "scaled_inputs": FIX})
    for epoch in range(20):
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        model.eval()
        with torch.no_grad():
            pred = model(x_val)
            val_loss = criterion(pred, y_val).item()
            val_mae = (pred - y_val).abs().mean().item()
        metrics = {
            "train_loss": total / len(x_train),
            "val_loss": val_loss,
            "val_mae": val_mae,
            "val_r2": 1 - val_loss / y_val.var().item(),
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
