"""A two-layer graph attention network written as in Diego999/pyGAT (dense GraphAttentionLayer: W, attention vector a,
LeakyReLU(0.2) scores masked by the adjacency, softmax, dropout on the attention), 8 heads of 8 hidden units with
ELU, one output head, trained full-batch with Adam and weight decay, stopped early on the validation loss.

Report: healthy, in the style of Diego999/pyGAT's train.py (`GAT(nfeat, nhid=8, nclass, dropout=0.6, nheads=8,
  alpha=0.2)`, `optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)`, F.nll_loss on log_softmax over the
  training nodes, one full-batch step per epoch printing loss_train / acc_train / loss_val / acc_val, patience 100
  on loss_val, the best epoch's weights restored for the test) https://github.com/Diego999/pyGAT
Setup: a synthetic citation-like graph: 6 classes of 60 papers (360 nodes), edges within a class with probability
0.05 and across classes 0.005 (about 3 and 1.5 neighbours), self-loops; bag-of-words features over 400 words
(each class favours its own 50 words, 20 words per paper), row-normalised; 120 training nodes (20 per class),
100 validation, 140 test; GAT(400 -> 8 heads x 8 -> 6), dropout 0.6 on the inputs and attention weights,
Adam(lr=0.005, weight_decay=5e-4), at most 1,000 epochs with patience 100 on loss_val; per-epoch loss_train /
acc_train / loss_val / acc_val, test_loss / test_acc (and best_epoch) once at the end with the best epoch's
weights.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (healthy; reached): loss_val 1.788 -> 1.055 (epoch 101) -> 0.718 (201) -> 0.579 (501) -> best 0.552 at epoch
710, early stopping at epoch 811 (loss_val 0.569); acc_val 0.30 -> 0.92 by epoch 71, then 0.88-0.92; loss_train
1.79 -> 0.63-0.89 from epoch 501 on (dropout 0.6 keeps it noisy and above loss_val), acc_train 0.22 -> 0.62-0.83;
test_loss 0.610, test_acc 0.864 with the best epoch's weights (checked; 79 s CPU, 2:55 wall on the 2-core machine
shared by four helpers; one logged step per epoch).
"""

import copy

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)

# ---- a synthetic citation graph ----
N_CLASSES, PER_CLASS, N_WORDS, WORDS_PER_PAPER = 6, 60, 400, 20
n = N_CLASSES * PER_CLASS
labels_np = rng.permutation(np.repeat(np.arange(N_CLASSES), PER_CLASS))
same = labels_np[:, None] == labels_np[None, :]
upper = np.triu(rng.random((n, n)) < np.where(same, 0.05, 0.005), 1)
adj_np = (upper | upper.T).astype(np.float32) + np.eye(n, dtype=np.float32)
word_p = np.ones((N_CLASSES, N_WORDS))
for c in range(N_CLASSES):
    word_p[c, 50 * c : 50 * c + 50] = 5.0
word_p /= word_p.sum(axis=1, keepdims=True)
features_np = np.zeros((n, N_WORDS), dtype=np.float32)
for i in range(n):
    features_np[i, rng.choice(N_WORDS, size=WORDS_PER_PAPER, p=word_p[labels_np[i]])] = 1.0
features_np /= np.maximum(features_np.sum(1, keepdims=True), 1.0)  # pyGAT's normalize_features

features = torch.tensor(features_np)
adj = torch.tensor(adj_np)
labels = torch.tensor(labels_np)
idx_train = torch.tensor(np.concatenate([np.flatnonzero(labels_np == c)[:20] for c in range(N_CLASSES)]))
rest = np.setdiff1d(np.arange(n), idx_train.numpy())
rest = rng.permutation(rest)
idx_val, idx_test = torch.tensor(rest[:100]), torch.tensor(rest[100:240])


class GraphAttentionLayer(nn.Module):
    def __init__(self, in_features, out_features, dropout, alpha, concat=True):
        super().__init__()
        self.dropout, self.out_features, self.concat = dropout, out_features, concat
        self.W = nn.Parameter(torch.empty(in_features, out_features))
        nn.init.xavier_uniform_(self.W.data, gain=1.414)
        self.a = nn.Parameter(torch.empty(2 * out_features, 1))
        nn.init.xavier_uniform_(self.a.data, gain=1.414)
        self.leakyrelu = nn.LeakyReLU(alpha)

    def forward(self, h, adj):
        Wh = torch.mm(h, self.W)
        e = self.leakyrelu(Wh @ self.a[: self.out_features, :] + (Wh @ self.a[self.out_features :, :]).T)
        attention = torch.where(adj > 0, e, -9e15 * torch.ones_like(e))
        attention = F.softmax(attention, dim=1)
        attention = F.dropout(attention, self.dropout, training=self.training)
        h_prime = torch.matmul(attention, Wh)
        return F.elu(h_prime) if self.concat else h_prime


class GAT(nn.Module):
    def __init__(self, nfeat, nhid, nclass, dropout, alpha, nheads):
        super().__init__()
        self.dropout = dropout
        self.attentions = nn.ModuleList(
            [GraphAttentionLayer(nfeat, nhid, dropout=dropout, alpha=alpha, concat=True) for _ in range(nheads)]
        )
        self.out_att = GraphAttentionLayer(nhid * nheads, nclass, dropout=dropout, alpha=alpha, concat=False)

    def forward(self, x, adj):
        x = F.dropout(x, self.dropout, training=self.training)
        x = torch.cat([att(x, adj) for att in self.attentions], dim=1)
        x = F.dropout(x, self.dropout, training=self.training)
        x = F.elu(self.out_att(x, adj))
        return F.log_softmax(x, dim=1)


def accuracy(output, target):
    return (output.argmax(1) == target).double().mean().item()


model = GAT(nfeat=N_WORDS, nhid=8, nclass=N_CLASSES, dropout=0.6, alpha=0.2, nheads=8)
optimizer = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)
PATIENCE, MAX_EPOCHS = 100, 1000

with mlflow.start_run():
    mlflow.log_params({"lr": 0.005, "weight_decay": 5e-4, "hidden": 8, "nb_heads": 8, "dropout": 0.6, "alpha": 0.2})
    best, best_epoch, bad_counter, best_state = float("inf"), 0, 0, None
    for epoch in range(MAX_EPOCHS):
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
        if epoch % 10 == 0:
            print(
                f"Epoch: {epoch + 1:04d} loss_train: {loss_train.item():.4f} acc_train: {acc_train:.4f} "
                f"loss_val: {loss_val:.4f} acc_val: {acc_val:.4f}"
            )
        if loss_val < best:
            best, best_epoch, bad_counter = loss_val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_counter += 1
        if bad_counter == PATIENCE:
            break

    print(f"Optimization Finished! Loading {best_epoch}th epoch")
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        output = model(features, adj)
        test_loss = F.nll_loss(output[idx_test], labels[idx_test]).item()
        test_acc = accuracy(output[idx_test], labels[idx_test])
    mlflow.log_metrics({"test_loss": test_loss, "test_acc": test_acc, "best_epoch": best_epoch})
    print(f"Test set results: loss= {test_loss:.4f} accuracy= {test_acc:.4f}")
