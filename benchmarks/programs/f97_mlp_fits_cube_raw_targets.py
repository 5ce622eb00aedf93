"""A one-hidden-layer MLP asked to fit y = x**3 for x from 1 to 4000 with the raw targets (up to 6.4e10): the output layer cannot grow to that scale and the MSE stays near 1e21.

Report: PyTorch Forums "Neural network could not learn on this type of data, why?" (a Linear(1, 50)-ReLU-
  Linear(50, 1) network, Adam(lr=1e-3), MSELoss, input = range(1, 4000), target = d**3; ptrblck:
  "You could normalize the input (which is usually done anyway) and also normalize the target to train
  the model. After the training you could unnormalize the predictions using the target stats")
  https://discuss.pytorch.org/t/neural-network-could-not-learn-on-this-type-of-data-why/96648
Setup: the thread's data and model: x = 1..3999 (every fourth point held out for validation),
target x**3, Linear(1, 50)-ReLU-Linear(50, 1), MSELoss, Adam(lr=1e-3), full batch, 1500 epochs, with
the input standardised as the answer says is done anyway; `loss` and `max_pred` logged every 10
epochs, val_loss every 10 epochs (both MSE on the scale trained on) and val_rel_rmse (RMSE in the
targets' own units divided by their standard deviation, comparable between the two runs).
Expected first: targets_not_normalized
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, the target standardised with the training mean/std and the predictions unnormalised):
loss 0.021 at epoch 200 -> 0.0003 at 1500, val_rel_rmse 0.145 -> 0.017 (buggy: loss 5.85e20 at every
logged epoch, max_pred creeping from 9 to 539 against targets up to 6.4e10, val_rel_rmse 1.333, worse
than predicting the mean) (checked; 20 s / 17 s wall on a loaded 2-core machine, ~7.5 s CPU).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


class Network(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(in_features=1, out_features=50, bias=True)
        self.fc2 = nn.Linear(in_features=50, out_features=1, bias=True)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


x = torch.arange(1, 4000).float().unsqueeze(1)
y = x**3
is_val = torch.arange(len(x)) % 4 == 3
x_train, y_train, x_val, y_val = x[~is_val], y[~is_val], x[is_val], y[is_val]

x_mean, x_std = x_train.mean(), x_train.std()
x_train, x_val = (x_train - x_mean) / x_std, (x_val - x_mean) / x_std
y_mean, y_std = (y_train.mean(), y_train.std()) if FIX else (torch.tensor(0.0), torch.tensor(1.0))
target_train, target_val = (y_train - y_mean) / y_std, (y_val - y_mean) / y_std

model = Network()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.MSELoss()

with mlflow.start_run():
    mlflow.log_params({"lr": 1e-3, "epochs": 1500, "normalize_target": FIX})
    for epoch in range(1500):
        optimizer.zero_grad()
        out = model(x_train)
        loss = criterion(out, target_train)
        loss.backward()
        optimizer.step()
        if epoch % 10 == 9:
            with torch.no_grad():
                val_out = model(x_val)
                val_loss = criterion(val_out, target_val).item()
                pred = val_out * y_std + y_mean  # back to the targets' units
                rel_rmse = ((pred - y_val) ** 2).mean().sqrt().item() / y_val.std().item()
            mlflow.log_metrics(
                {"loss": loss.item(), "max_pred": out.max().item(), "val_loss": val_loss, "val_rel_rmse": rel_rmse},
                step=epoch,
            )
            if epoch % 100 == 99:
                print(
                    f"Epoch {epoch}, loss {loss.item():.4g}, max. pred val {out.max().item():.4g}, val_rel_rmse {rel_rmse:.4f}"
                )
