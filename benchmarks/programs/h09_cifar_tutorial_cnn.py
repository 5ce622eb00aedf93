"""The "Training a classifier" CIFAR-10 tutorial CNN: SGD(lr=0.001, momentum=0.9), running loss printed every 200 mini-batches.

Report: healthy, in the style of https://pytorch.org/tutorials/beginner/blitz/cifar10_tutorial.html
Setup: Conv(3,6,5)-Pool-Conv(6,16,5)-Pool-Linear(400,120)-Linear(120,84)-Linear(84,10) on
synthetic 3x32x32 images normalised to [-1, 1], batch size 4, running_loss logged every 200
mini-batches as `loss` (the tutorial prints it), final accuracy.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: running loss from ~2.30 to ~0.2, accuracy ~0.9 after 2 epochs.
"""

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
torch.manual_seed(0)

templates = torch.rand(10, 3, 8, 8)


def make(n):
    y = torch.randint(0, 10, (n,))
    img = F.interpolate(templates[y], size=32, mode="bilinear") + 0.3 * torch.rand(n, 3, 32, 32)
    return (img.clamp(0, 1) - 0.5) / 0.5, y


x_train, y_train = make(4000)
x_test, y_test = make(500)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


net = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
with mlflow.start_run():
    step = 0
    for epoch in range(2):
        running_loss = 0.0
        perm = torch.randperm(4000)
        for i in range(0, 4000, 4):
            idx = perm[i : i + 4]
            optimizer.zero_grad()
            loss = criterion(net(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            step += 1
            running_loss += loss.item()
            if step % 200 == 0:
                mlflow.log_metric("loss", running_loss / 200, step=step)
                running_loss = 0.0
    with torch.no_grad():
        acc = (net(x_test).argmax(1) == y_test).float().mean().item()
    mlflow.log_metric("accuracy", acc)
    print("accuracy", acc)
