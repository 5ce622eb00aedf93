"""A two-branch mixed-data house-price regressor (a CNN over the house's photo montage + an MLP over its attributes, concatenated) trained on raw prices in dollars and raw attributes (square feet in the thousands), skipping the tutorial's scaling: the output starts near 0 against targets of ~$500k, and a percentage-error loss leaves it crawling towards them.

Report: PyImageSearch, Adrian Rosebrock, "Keras: Multiple Inputs and Mixed Data" (house prices from 4 photos
  per house plus bedrooms, bathrooms, area and zip code; "we perform min-max scaling on our continuous
  features", and the prices are scaled to [0, 1] by the largest training price: "Scaling our house prices to
  the range [0, 1] will allow our model to more easily train and converge")
  https://pyimagesearch.com/2019/02/04/keras-multiple-inputs-and-mixed-data/
Setup: as the tutorial: 535 synthetic houses (zip codes with at least 25 houses), each a 3x16x16 montage
(stand-in for the 4 photos: a brightness/size cue tied to the price under noise) plus bedrooms, bathrooms, area
(sq ft) and a one-hot zip code; price = f(area, rooms, zip, photo cue) with noise ($150k-$1.2M); 75/25 split;
CNN branch Conv(3,16)-ReLU-BN-Pool-Conv(16,32)-ReLU-BN-Pool-Dense(16)-ReLU-BN-Dropout(0.5)-Dense(4)-ReLU, MLP
branch Dense(8)-ReLU-Dense(4)-ReLU, concat -> Dense(4)-ReLU -> Dense(1) linear; the tutorial's loss, mean
absolute percentage error (written by hand), Adam(lr=1e-3, weight_decay=1e-3 / 200: the tutorial's
`decay=1e-3 / 200`, a tiny learning-rate decay in Keras, ported as a tiny weight decay), batch 8 (last
partial batch dropped for BatchNorm), 40 epochs; per epoch train_loss, val_loss (MAPE, %) and val_mae_dollars.
Expected first: targets_not_normalized
Acceptable in top 3: inputs_not_normalized
Symptom: plateau
Fixed (--fix, the tutorial's preprocessing: min-max scaled area/bedrooms/bathrooms and prices divided by the
largest training price): val_loss (MAPE) 59.4% (epoch 0) -> 11.1% (epoch 5) -> 8.6%,
val_mae_dollars $345k -> $41k, train_loss 69.7 -> 6.9 after 40 epochs (buggy: train_loss and val_loss 99.7-98.0%
for the first 6 epochs (the output still near 0 against ~$550k), then down to a plateau at 28.0-28.1% from epoch 20
to 39, val_mae_dollars $148k, 3.6x the fixed error) (checked; 161 s wall under a load average of 12 / 60 s wall,
32 s / 29 s CPU, OMP_NUM_THREADS=1).
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
N, ZIPS = 535, 5

zipcode = rng.integers(0, ZIPS, N)
bedrooms = rng.integers(2, 6, N).astype(np.float32)
bathrooms = (rng.integers(2, 9, N) / 2).astype(np.float32)
area = (rng.normal(1300, 250, N) + 450 * bedrooms).clip(700, 5000).round().astype(np.float32)
zip_level = np.array([0.8, 1.0, 1.3, 1.6, 2.1])[zipcode]
quality = rng.normal(0, 1, N)  # what the photos show: finish, size of the kitchen, ...
price = (120 * area * zip_level + 25000 * bathrooms + 60000 * quality + rng.normal(0, 30000, N)).clip(150000, 1.2e6)
price = price.astype(np.float32)

images = rng.normal(0, 0.25, (N, 3, 16, 16)).astype(np.float32) + 0.5
for i in range(N):  # a brighter, larger bright block for a better-finished house
    s = int(np.clip(6 + 3 * quality[i], 2, 14))
    images[i, :, 8 - s // 2 : 8 + s // 2, 8 - s // 2 : 8 + s // 2] += 0.3 + 0.1 * quality[i]
images = (images * 255).clip(0, 255) / 255.0  # the tutorial reads the montage and divides by 255

idx = rng.permutation(N)
tr, va = idx[: int(0.75 * N)], idx[int(0.75 * N) :]
continuous = np.stack([bedrooms, bathrooms, area], 1)
if FIX:  # MinMaxScaler fitted on the training split
    lo, hi = continuous[tr].min(0), continuous[tr].max(0)
    continuous = (continuous - lo) / (hi - lo)
attributes = np.concatenate([continuous, np.eye(ZIPS, dtype=np.float32)[zipcode]], 1).astype(np.float32)
max_price = price[tr].max()
target = price / max_price if FIX else price


class MixedHousePriceModel(nn.Module):
    def __init__(self, n_attributes):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(16),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(32),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 16),
            nn.ReLU(),
            nn.BatchNorm1d(16),
            nn.Dropout(0.5),
            nn.Linear(16, 4),
            nn.ReLU(),
        )
        self.mlp = nn.Sequential(nn.Linear(n_attributes, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 1))

    def forward(self, attributes, images):
        return self.head(torch.cat([self.mlp(attributes), self.cnn(images)], 1)).squeeze(1)


def mape(pred, y):  # Keras' mean_absolute_percentage_error
    return 100.0 * torch.mean(torch.abs((y - pred) / torch.clamp(torch.abs(y), min=1e-7)))


a, im, t = (torch.tensor(v) for v in (attributes, images, target))
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(a[tr], im[tr], t[tr]), batch_size=8, shuffle=True, drop_last=True
)
model = MixedHousePriceModel(attributes.shape[1])
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3 / 200)

with mlflow.start_run():
    mlflow.log_params({"epochs": 40, "batch_size": 8, "lr": 1e-3, "loss": "mape", "scaled": FIX})
    for epoch in range(40):
        model.train()
        total = 0.0
        for ab, ib, yb in loader:
            optimizer.zero_grad()
            loss = mape(model(ab, ib), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
        model.eval()
        with torch.no_grad():
            pred = model(a[va], im[va])
            val_loss = mape(pred, t[va]).item()
            dollars = pred * max_price if FIX else pred
            val_mae = (dollars - torch.tensor(price[va])).abs().mean().item()
        metrics = {"train_loss": total / len(tr), "val_loss": val_loss, "val_mae_dollars": val_mae}
        mlflow.log_metrics(metrics, step=epoch)
        if epoch % 5 == 0 or epoch == 39:
            print(epoch, {k: round(v, 3) for k, v in metrics.items()})
