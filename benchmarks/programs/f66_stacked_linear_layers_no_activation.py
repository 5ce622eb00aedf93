"""Three nn.Linear layers stacked with no activation between them: the network is one linear map and cannot draw the curved boundary of a tabular risk label.

Report: "Pytorch Introduction — Enter NonLinear Functions" (daredata blog: a heart-failure classifier
  built as nn.Sequential(nn.Linear(12, 5), nn.Linear(5, 1)) with BCEWithLogitsLoss and SGD stays a
  linear model whatever its depth; adding nn.ReLU() between the layers lets it learn the non-linear
  pattern) https://blog.daredata.engineering/pytorch-introduction-enter-nonlinear-functions/
Setup: 12 standardised clinical-style features, a balanced binary `death_event` label from a
non-linear rule (a ring in two features plus an interaction), nn.Sequential(Linear(12, 64),
Linear(64, 64), Linear(64, 1)) with no activation, BCEWithLogitsLoss, SGD(lr=0.05, momentum=0.9),
batch 32, 2400 training / 600 test rows, 20 epochs; per-epoch train_loss / train_acc / test_loss /
test_acc.
Expected first: insufficient_capacity
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, nn.ReLU() after each hidden Linear): test_acc 0.963, test_loss 0.12 after 20 epochs (train_acc 0.995) (buggy: train_loss 0.690, train_acc 0.52, test_acc 0.46-0.51 on a 53/47 label: a linear map cannot separate a ring) (checked; 11 s / 12 s).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)


def make(n):
    x = torch.randn(n, 12)
    r = x[:, 0] ** 2 + x[:, 1] ** 2 + 0.8 * x[:, 2] * x[:, 3]
    return x, (r > 1.4).float()[:, None]


x_train, y_train = make(2400)
x_test, y_test = make(600)
print("positive share", y_train.mean().item())
if FIX:
    model = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
else:
    model = nn.Sequential(nn.Linear(12, 64), nn.Linear(64, 64), nn.Linear(64, 1))
loss_fn = nn.BCEWithLogitsLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
with mlflow.start_run():
    for epoch in range(20):
        model.train()
        total, correct = 0.0, 0.0
        perm = torch.randperm(2400)
        for i in range(0, 2400, 32):
            idx = perm[i : i + 32]
            logits = model(x_train[idx])
            loss = loss_fn(logits, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += ((logits > 0).float() == y_train[idx]).sum().item()
        model.eval()
        with torch.inference_mode():
            logits = model(x_test)
            test_loss = loss_fn(logits, y_test).item()
            test_acc = ((logits > 0).float() == y_test).float().mean().item()
        metrics = {
            "train_loss": total / 2400,
            "train_acc": correct / 2400,
            "test_loss": test_loss,
            "test_acc": test_acc,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
