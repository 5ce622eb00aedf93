"""The CIFAR-tutorial CNN trained with KLDivLoss on softmax probabilities (it expects log-probabilities) and one-hot targets.

Report: PyTorch Forums "Kullback-Leibler Divergence loss function giving negative values" (the tutorial
  CNN with F.softmax at the end and nn.KLDivLoss() against one-hot labels; the loss is negative and the
  network does not learn; answer: the input must be log-probabilities, and the default averaging is
  over every element, not per sample)
  https://discuss.pytorch.org/t/kullback-leibler-divergence-loss-function-giving-negative-values/763
Setup: synthetic 3x32x32 images (10 class templates plus noise, in [-1, 1]), the tutorial Net
(conv 3-6-5, pool, conv 6-16-5, fc 400-120-84-10) ending in F.softmax, nn.KLDivLoss() (reduction
"mean") against one-hot labels, SGD(lr=0.01, momentum=0.9) (the tutorial's 0.001 raised tenfold to fit
1,200 images and 5 epochs), batch 16; running_loss logged every 25 mini-batches as in the tutorial,
test_loss (cross-entropy of the predicted distribution) / test_accuracy per epoch.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, F.log_softmax and reduction="batchmean"): test_accuracy 0.98, test_loss 0.052 after 5 epochs
(buggy: test_accuracy 0.10, test_loss 2.307 = ln 10 throughout, running_loss -0.010 flat) (checked).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

templates = torch.rand(10, 3, 32, 32) * 2 - 1


def make(n):
    y = torch.randint(0, 10, (n,))
    x = (0.6 * templates[y] + 0.5 * torch.randn(n, 3, 32, 32)).clamp(-1, 1)
    return x, y


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
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return F.log_softmax(x, dim=1) if FIX else F.softmax(x, dim=1)


x_train, y_train = make(1200)
x_test, y_test = make(400)
net = Net()
criterion = nn.KLDivLoss(reduction="batchmean") if FIX else nn.KLDivLoss()
optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
step = 0
with mlflow.start_run():
    for epoch in range(5):
        running_loss = 0.0
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 16):
            idx = perm[i : i + 16]
            labels_one_hot = F.one_hot(y_train[idx], 10).float()
            optimizer.zero_grad()
            outputs = net(x_train[idx])
            loss = criterion(outputs, labels_one_hot)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            step += 1
            if step % 25 == 0:
                mlflow.log_metric("running_loss", running_loss / 25, step=step)
                running_loss = 0.0
        with torch.no_grad():
            out = net(x_test)
            log_probs = out if FIX else out.clamp_min(1e-12).log()
            test_loss = F.nll_loss(log_probs, y_test).item()
            test_acc = (out.argmax(1) == y_test).float().mean().item()
        mlflow.log_metrics({"test_loss": test_loss, "test_accuracy": test_acc}, step=step)
        print(f"[{epoch + 1}] loss {loss.item():.4f} test_loss {test_loss:.4f} test_accuracy {test_acc:.3f}")
