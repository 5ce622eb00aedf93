"""A two-layer GCN whose forward pass calls `F.dropout(x, 0.5)` without `training=self.training`: the functional dropout ignores `model.eval()`, so every validation pass still drops half of the node features and hidden units.

Report: pytorch/pytorch issue #11999 "Dropout still active in .eval() mode" ("I'm finding that dropout is
  still left enabled during testing even though .eval() is used"; the reporter: "it's the use of the
  functional API version of dropout in the forward section of my NN model definition that's the problem";
  the fix: `nn.Dropout` modules, or `F.dropout(x, p, training=self.training)`; pytorch/pytorch issue #26338
  "Behavior of F.dropout in eval mode" asks the docs to say so) https://github.com/pytorch/pytorch/issues/11999
Setup: a Kipf & Welling-style GCN written by hand (dense layers on a symmetric-normalised adjacency with
self-loops, D^-1/2 (A + I) D^-1/2), dropout 0.5 on the input features and on the hidden layer as in the
paper, trained full-batch on a synthetic "co-purchase" graph: 6 classes of 150 products, edges within a
class with probability 0.03 and across 0.006, 200 binary features (each class favours its own 30; 10 per
node), 30 labelled nodes per class for training, 300 for validation, 300 for test; GCN(200 -> 32 -> 6),
CrossEntropyLoss, Adam(lr=0.01, weight_decay=5e-4), 150 epochs, `model.eval()` + `torch.no_grad()` for
validation; per-epoch train_loss / train_acc / val_loss / val_acc, test_loss / test_acc at the end.
Expected first: eval_mode_not_set
Acceptable in top 3: -
Symptom: oscillating_loss, overfitting
Fixed (--fix, `F.dropout(x, 0.5, training=self.training)` as the reports say): val_loss 1.79 -> 0.46 (best,
epoch 129), 0.49 at epoch 150, smooth (mean epoch-to-epoch change 0.013); val_acc 0.82-0.85 from epoch 15 on;
test_loss 0.520, test_acc 0.833 (buggy: the same training curve (train_loss 1.79 -> 0.20, train_acc 0.93) but
val_loss best 0.66 at epoch 67, then back up and jumping 0.70-0.93 from one epoch to the next (mean change
0.055), 0.76 at the end; val_acc 0.68-0.78, 0.733 at the end; test_loss 0.898, test_acc 0.707) (checked; 29 s /
24 s wall on a 2-core machine loaded by three helpers).
"""

import sys

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)

N_CLASSES, PER_CLASS, N_FEATURES = 6, 150, 200
n = N_CLASSES * PER_CLASS
labels_np = np.repeat(np.arange(N_CLASSES), PER_CLASS)
rng.shuffle(labels_np)
same = labels_np[:, None] == labels_np[None, :]
upper = np.triu(rng.random((n, n)) < np.where(same, 0.03, 0.006), 1)
adj_np = (upper | upper.T).astype(np.float32) + np.eye(n, dtype=np.float32)
deg = adj_np.sum(1)
adj_np = adj_np / np.sqrt(deg[:, None] * deg[None, :])
feat_p = np.ones((N_CLASSES, N_FEATURES))
for c in range(N_CLASSES):
    feat_p[c, 30 * c : 30 * c + 30] = 4.0
feat_p /= feat_p.sum(1, keepdims=True)
x_np = np.zeros((n, N_FEATURES), dtype=np.float32)
for i in range(n):
    x_np[i, rng.choice(N_FEATURES, size=10, replace=False, p=feat_p[labels_np[i]])] = 1.0

x = torch.tensor(x_np)
adj = torch.tensor(adj_np)
y = torch.tensor(labels_np)
order = torch.randperm(n)
train_idx = torch.cat([order[y[order] == c][:30] for c in range(N_CLASSES)])
rest = order[~torch.isin(order, train_idx)]
val_idx, test_idx = rest[:300], rest[300:600]


class GCNLayer(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, h, adj):
        return adj @ self.linear(h)


class GCN(nn.Module):
    def __init__(self, in_dim, hidden, n_classes, p=0.5):
        super().__init__()
        self.conv1 = GCNLayer(in_dim, hidden)
        self.conv2 = GCNLayer(hidden, n_classes)
        self.p = p

    def forward(self, h, adj):
        if FIX:
            h = F.dropout(h, self.p, training=self.training)
            h = F.relu(self.conv1(h, adj))
            h = F.dropout(h, self.p, training=self.training)
        else:
            h = F.dropout(h, self.p)  # training=True by default: still on after model.eval()
            h = F.relu(self.conv1(h, adj))
            h = F.dropout(h, self.p)
        return self.conv2(h, adj)


model = GCN(N_FEATURES, 32, N_CLASSES)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
criterion = nn.CrossEntropyLoss()


def accuracy(logits, target):
    return (logits.argmax(1) == target).float().mean().item()


with mlflow.start_run():
    mlflow.log_params({"hidden": 32, "dropout": 0.5, "lr": 0.01, "weight_decay": 5e-4, "epochs": 150})
    for epoch in range(150):
        model.train()
        optimizer.zero_grad()
        out = model(x, adj)
        loss = criterion(out[train_idx], y[train_idx])
        loss.backward()
        optimizer.step()
        train_acc = accuracy(out[train_idx], y[train_idx])

        model.eval()
        with torch.no_grad():
            out = model(x, adj)
            val_loss = criterion(out[val_idx], y[val_idx]).item()
            val_acc = accuracy(out[val_idx], y[val_idx])
        mlflow.log_metrics(
            {"train_loss": loss.item(), "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc}, step=epoch
        )
        if epoch % 15 == 0 or epoch == 149:
            print(
                f"epoch {epoch:3d} train_loss {loss.item():.4f} acc {train_acc:.3f} val_loss {val_loss:.4f} val_acc {val_acc:.3f}"
            )

    model.eval()
    with torch.no_grad():
        out = model(x, adj)
    test_loss = criterion(out[test_idx], y[test_idx]).item()
    test_acc = accuracy(out[test_idx], y[test_idx])
    mlflow.log_metrics({"test_loss": test_loss, "test_acc": test_acc}, step=149)
    print(f"test_loss {test_loss:.4f} test_acc {test_acc:.3f}")
