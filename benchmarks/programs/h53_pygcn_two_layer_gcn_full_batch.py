"""A two-layer graph convolutional network in plain PyTorch, trained full-batch on one citation-style graph with 20 labelled nodes per class, as tkipf/pygcn does on Cora.

Report: healthy, in the style of tkipf/pygcn's train.py (GraphConvolution layers computing adj @ (x @ W) with
  a sparse row-normalised adjacency with self-loops, ReLU and dropout 0.5 between them, log_softmax and
  F.nll_loss on the training nodes only, Adam(lr=0.01, weight_decay=5e-4), 200 epochs, printing
  loss_train / acc_train / loss_val / acc_val every epoch) https://github.com/tkipf/pygcn
Setup: a synthetic "citation graph": 7 classes of 100 papers each, edges within a class with
probability 0.04 and across classes 0.004 (about 4 and 2.4 neighbours), bag-of-words features over 300
words (each class favours its own 40 words; 12 words per paper), row-normalised; Cora's split sizes
scaled down: 140 training nodes (20 per class), 200 validation, 300 test; GCN(300 -> 16 -> 7), NLLLoss
on log_softmax, Adam(lr=0.01, weight_decay=5e-4), 200 full-batch epochs; per-epoch loss_train /
acc_train / loss_val / acc_val, and test_loss / test_acc once at the end.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (healthy; reached): loss_val 1.968 -> 1.770 (epoch 41) -> 1.148 (81) -> 0.730 (121) -> 0.584 at
epoch 200, still falling slowly; acc_val 0.14 -> 0.80 (epoch 41) -> 0.92-0.94 from epoch 81 on;
loss_train 1.97 -> 0.39 (dropout 0.5 keeps it noisy), acc_train 0.96; test_loss 0.616, test_acc 0.900
(checked; 57 s CPU, 7 min 39 s wall on a 2-core machine loaded ~8-15x by other jobs).
"""

import math

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)

# ---- a synthetic citation graph ----
N_CLASSES, PER_CLASS, N_WORDS = 7, 100, 300
n = N_CLASSES * PER_CLASS
labels_np = np.repeat(np.arange(N_CLASSES), PER_CLASS)
rng.shuffle(labels_np)
same = labels_np[:, None] == labels_np[None, :]
upper = np.triu(rng.random((n, n)) < np.where(same, 0.04, 0.004), 1)
adj_np = (upper | upper.T).astype(np.float32)
word_p = np.full((N_CLASSES, N_WORDS), 1.0)
for c in range(N_CLASSES):
    word_p[c, 40 * c : 40 * c + 40] = 6.0
word_p /= word_p.sum(axis=1, keepdims=True)
features_np = np.zeros((n, N_WORDS), dtype=np.float32)
for i in range(n):
    features_np[i, rng.choice(N_WORDS, size=12, p=word_p[labels_np[i]])] = 1.0


def normalize(mx):
    """Row-normalise a matrix (pygcn's utils.normalize)."""
    rowsum = mx.sum(1)
    r_inv = np.where(rowsum > 0, 1.0 / np.maximum(rowsum, 1e-12), 0.0)
    return mx * r_inv[:, None]


features = torch.tensor(normalize(features_np))
adj = torch.tensor(normalize(adj_np + np.eye(n, dtype=np.float32))).to_sparse()
labels = torch.tensor(labels_np)
order = torch.randperm(n)
idx_train = torch.cat([order[labels[order] == c][:20] for c in range(N_CLASSES)])
rest = order[~torch.isin(order, idx_train)]
idx_val, idx_test = rest[:200], rest[200:500]


class GraphConvolution(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        stdv = 1.0 / math.sqrt(out_features)
        self.weight.data.uniform_(-stdv, stdv)
        self.bias.data.uniform_(-stdv, stdv)

    def forward(self, input, adj):
        return torch.sparse.mm(adj, input @ self.weight) + self.bias


class GCN(nn.Module):
    def __init__(self, nfeat, nhid, nclass, dropout):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout

    def forward(self, x, adj):
        x = F.relu(self.gc1(x, adj))
        x = F.dropout(x, self.dropout, training=self.training)
        x = self.gc2(x, adj)
        return F.log_softmax(x, dim=1)


def accuracy(output, labels):
    return (output.argmax(1) == labels).double().mean().item()


model = GCN(nfeat=N_WORDS, nhid=16, nclass=N_CLASSES, dropout=0.5)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)

with mlflow.start_run():
    mlflow.log_params({"epochs": 200, "lr": 0.01, "weight_decay": 5e-4, "hidden": 16, "dropout": 0.5})
    for epoch in range(200):
        model.train()
        optimizer.zero_grad()
        output = model(features, adj)
        loss_train = F.nll_loss(output[idx_train], labels[idx_train])
        acc_train = accuracy(output[idx_train], labels[idx_train])
        loss_train.backward()
        optimizer.step()

        model.eval()
        with torch.no_grad():
            output = model(features, adj)
        loss_val = F.nll_loss(output[idx_val], labels[idx_val]).item()
        acc_val = accuracy(output[idx_val], labels[idx_val])
        mlflow.log_metrics(
            {"loss_train": loss_train.item(), "acc_train": acc_train, "loss_val": loss_val, "acc_val": acc_val},
            step=epoch,
        )
        if epoch % 20 == 0 or epoch == 199:
            print(
                f"Epoch: {epoch + 1:04d} loss_train: {loss_train.item():.4f} acc_train: {acc_train:.4f} loss_val: {loss_val:.4f} acc_val: {acc_val:.4f}"
            )

    model.eval()
    with torch.no_grad():
        output = model(features, adj)
    loss_test = F.nll_loss(output[idx_test], labels[idx_test]).item()
    acc_test = accuracy(output[idx_test], labels[idx_test])
    mlflow.log_metrics({"test_loss": loss_test, "test_acc": acc_test}, step=199)
    print(f"Test set results: loss= {loss_test:.4f} accuracy= {acc_test:.4f}")
