"""MNIST-example-style CNN with Adadelta(lr=1.0) and StepLR(gamma=0.7), logging every 10 batches.

Report: healthy, in the style of pytorch/examples mnist/main.py
  https://github.com/pytorch/examples/blob/main/mnist/main.py
Setup: Conv(1,32)-Conv(32,64)-MaxPool-Dropout-Linear(9216,128)-Dropout-Linear(128,10) shrunk to
16x16 synthetic digit-like images with zero borders, log_softmax + F.nll_loss (as the example),
Adadelta(lr=1.0), StepLR(step_size=1, gamma=0.7), `loss` every 10 batches, per-epoch test_loss / test_acc.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: test_acc ~0.98, test_loss ~0.07 after 3 epochs.
"""

import mlflow
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import StepLR

mlflow.autolog()
torch.manual_seed(1)

templates = (torch.rand(10, 10, 10) > 0.5).float()


def make(n):
    y = torch.randint(0, 10, (n,))
    img = torch.zeros(n, 1, 16, 16)
    img[:, 0, 3:13, 3:13] = templates[y]
    img[:, :, 2:14, 2:14] += 0.3 * torch.rand(n, 1, 12, 12)
    return (img - 0.1307) / 0.3081 * (img > 0), y  # normalised as the example does; borders stay 0


x_train, y_train = make(2400)
x_test, y_test = make(500)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(32 * 6 * 6, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


model = Net()
optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
with mlflow.start_run():
    step = 0
    for epoch in range(1, 4):
        model.train()
        perm = torch.randperm(len(x_train))
        for batch_idx, i in enumerate(range(0, len(x_train), 64)):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = F.nll_loss(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            step += 1
            if batch_idx % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
        model.eval()
        with torch.no_grad():
            out = model(x_test)
            test_loss = F.nll_loss(out, y_test).item()
            acc = (out.argmax(1) == y_test).float().mean().item()
        mlflow.log_metrics({"test_loss": test_loss, "test_acc": acc}, step=step)
        print(epoch, test_loss, acc)
        scheduler.step()
