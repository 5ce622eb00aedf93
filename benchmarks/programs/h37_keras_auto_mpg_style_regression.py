"""A fuel-efficiency regression in the style of the Keras "Basic regression: Predict fuel efficiency" tutorial, ported to PyTorch: normalised inputs, two Dense(64, relu) layers, MAE loss, Adam 1e-3, 20% validation split.

Report: healthy, in the style of the TensorFlow/Keras tutorial "Basic regression: Predict fuel
  efficiency" (Normalization layer, Dense(64, relu) x 2, Dense(1), loss='mean_absolute_error',
  Adam(0.001), validation_split=0.2, history loss / val_loss) https://www.tensorflow.org/tutorials/keras/regression
Setup: 7 car features (cylinders, displacement, horsepower, weight, acceleration, model year, origin
one-hot collapsed to a code), MPG from a smooth physical-style formula plus noise (std 1.5 MPG),
392 + 100 rows like the Auto MPG set; inputs standardised on the training rows, MLP 7-64-64-1,
L1Loss (MAE in MPG, targets left in MPG as in the tutorial), Adam(lr=1e-3), batch 32, 100 epochs;
per-epoch loss / val_loss (MAE) as Keras history.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss (MAE) 1.155 MPG after 100 epochs, train loss 1.03 (noise MAE floor ~1.2 MPG, target std 4.45; 13 s).
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)


def make(n):
    cylinders = torch.tensor([4.0, 6.0, 8.0])[torch.randint(0, 3, (n,))]
    displacement = cylinders * (25 + 15 * torch.rand(n))
    horsepower = 0.35 * displacement + 30 + 10 * torch.randn(n)
    weight = 1500 + 6 * displacement + 300 * torch.randn(n)
    acceleration = 20 - 0.04 * horsepower + torch.randn(n)
    year = torch.randint(70, 83, (n,)).float()
    origin = torch.randint(1, 4, (n,)).float()
    mpg = 4.5e4 / weight + 0.6 * (year - 70) + 0.8 * (origin - 1) - 0.02 * horsepower + 1.5 * torch.randn(n)
    x = torch.stack([cylinders, displacement, horsepower, weight, acceleration, year, origin], 1)
    return x, mpg[:, None]


x, y = make(492)
x_train, y_train, x_val, y_val = x[:392], y[:392], x[392:], y[392:]
mean, std = x_train.mean(0), x_train.std(0)
x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
model = nn.Sequential(nn.Linear(7, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
loss_fn = nn.L1Loss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(100):
        model.train()
        total = 0.0
        perm = torch.randperm(392)
        for i in range(0, 392, 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(x_val), y_val).item()
        mlflow.log_metrics({"loss": total / 392, "val_loss": val_loss}, step=epoch)
        if epoch % 10 == 9:
            print(f"epoch {epoch}: loss {total / 392:.3f} val_loss {val_loss:.3f}")
print("noise MAE floor ~1.2 MPG, target std", y.std().item())
