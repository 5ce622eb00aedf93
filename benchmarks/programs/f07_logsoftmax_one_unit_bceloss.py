"""Binary classifier with one output unit passed through log_softmax into BCELoss: the loss is constant.

Report: a Stack Overflow-style binary-classification mistake: log_softmax over a single output
  unit (always 0, i.e. probability 1) fed to BCELoss, which expects sigmoid probabilities; see
  the BCELoss/BCEWithLogitsLoss tutorial https://androidkt.com/pytorch-bcewithlogitsloss-with-example/
Setup: MLP 10-32-1, F.log_softmax(out, dim=1), nn.BCELoss, SGD(lr=0.01, momentum=0.9),
per-epoch loss and val_acc.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, torch.sigmoid): val_acc 0.995, loss 0.05 (checked; buggy: loss exactly constant).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(10)
x = torch.randn(1200, 10)
y = ((x @ w) > 0).float().unsqueeze(1)
x_train, y_train, x_val, y_val = x[:1000], y[:1000], x[1000:], y[1000:]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 32)
        self.fc2 = nn.Linear(32, 1)

    def forward(self, x):
        out = self.fc2(torch.relu(self.fc1(x)))
        return torch.sigmoid(out) if FIX else F.log_softmax(out, dim=1)


model = Net()
criterion = nn.BCELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
with mlflow.start_run():
    for epoch in range(15):
        for i in range(0, 1000, 50):
            optimizer.zero_grad()
            loss = criterion(model(x_train[i : i + 50]), y_train[i : i + 50])
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            p = model(x_val)
            acc = ((p > 0.5).float() == y_val).float().mean().item()
        mlflow.log_metric("loss", loss.item(), step=epoch)
        mlflow.log_metric("val_acc", acc, step=epoch)
        print(epoch, loss.item(), acc)
