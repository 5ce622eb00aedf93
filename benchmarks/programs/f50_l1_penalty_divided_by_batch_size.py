"""L1 regularisation added to the loss with lambda divided by the mini-batch size instead of the training-set size: every weight is pulled to zero and accuracy falls to chance.

Report: Stack Overflow "Why does my implementation of L1-regularization give poor performance?"
  (Nielsen's network, 30 hidden neurons, learning rate 0.5, lambda 5.0; L2 works, the L1 version
  with lambda / len(mini_batch) classifies at chance; answer: the penalty must be scaled by the
  training-set size n) https://stackoverflow.com/questions/58490646
Setup: 8x8 digit-like images (10 class templates plus noise, in 0..1), MLP 64-30-10 with sigmoid,
CrossEntropyLoss + (lmbda / len(batch)) * sum(|w|) over the weight matrices, lmbda = 5.0,
SGD(lr=0.5), mini-batch 10, 10 epochs, per-epoch train_loss / val_loss / val_acc.
Expected first: too_much_regularization
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, lmbda / n with n = 3000 training samples): val_acc 1.00, val_loss 0.056 after 10 epochs (buggy: val_acc 0.085-0.11 = chance, val_loss 2.31 = ln 10, train_loss (with the penalty) 141 flat) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

templates = (torch.rand(10, 64) > 0.6).float()


def make(n):
    y = torch.randint(0, 10, (n,))
    x = (0.7 * templates[y] + 0.3 * torch.rand(n, 64) + 0.15 * torch.randn(n, 64)).clamp(0, 1)
    return x, y


N = 3000
x_train, y_train = make(N)
x_val, y_val = make(600)
model = nn.Sequential(nn.Linear(64, 30), nn.Sigmoid(), nn.Linear(30, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
lmbda = 5.0
with mlflow.start_run():
    for epoch in range(10):
        model.train()
        total = 0.0
        perm = torch.randperm(N)
        for i in range(0, N, 10):
            idx = perm[i : i + 10]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            l1 = sum(p.abs().sum() for name, p in model.named_parameters() if name.endswith("weight"))
            loss = loss + (lmbda / N if FIX else lmbda / len(idx)) * l1
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / N, "val_loss": val_loss, "val_acc": val_acc}, step=epoch)
        print(f"Epoch {epoch}: train_loss {total / N:.4f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}")
