"""A message-passing graph network regressing a per-molecule property, its graph readout of shape (N,) compared with labels of shape (N, 1) in MSELoss: the loss broadcasts to an N x N matrix, every prediction is pulled towards every label, and the network learns to predict the batch mean.

Report: IntelLabs/matsciml pull request #347 "Loss broadcasting fix" ("labels come out of the pipeline with an
  extra dimension (e.g. `[N, 1]`) compared to graph readouts. The resulting behavior is actually very different
  from the intention"; `MSELoss()(y, x)` with y of shape [8] and x of shape [8, 1] gives 0.1454 against 0.0535 once
  reshaped; the fix reshapes the model outputs to the labels' shape before computing the loss)
  https://github.com/IntelLabs/matsciml/pull/347
Setup: as a matsciml-style regression task on molecular graphs: synthetic molecules of 6-16 atoms (4 atom types,
a chain of bonds plus random extra bonds) whose target is a sum of per-atom and per-bond contributions, a
neighbour-count term and noise, standardised; labels kept as (N, 1) as the data pipeline yields them. Model:
atom embedding (16) -> 3 message-passing layers h <- ReLU(W_self h + W_neigh (A h)) (dense padded adjacency, 64
units) -> sum readout -> MLP(64-64-1) -> `.squeeze(-1)`, shape (N,); MSELoss(readout, labels) in training and
validation alike; Adam(lr=1e-3), batch 32, 1600 training / 400 validation molecules, 15 epochs; per epoch
train_loss and val_loss (the same criterion) and val_mae (element-wise, the labels flattened, as torchmetrics
computes it), in standardised units.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, `readout.view_as(labels)` before the loss, as the pull request does): train_loss 0.55 -> 0.0087,
val_loss 0.225 -> 0.011, val_mae 0.39 -> 0.085 after 15 epochs (buggy: train_loss 1.09 -> 1.00 and val_loss
1.00 at every epoch, the targets' variance in these standardised units: the readout sits at the batch mean;
val_mae 0.78 -> 0.77) (checked; ~17 s CPU, ~33 s wall each on a 2-core machine shared with other helpers).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
MAX_ATOMS, ATOM_TYPES = 16, 4
ATOM_ENERGY = torch.tensor([-1.0, 0.5, 1.5, -0.3])
BOND_ENERGY = torch.tensor(
    [[0.2, -0.4, 0.1, 0.0], [-0.4, 0.3, -0.2, 0.5], [0.1, -0.2, 0.6, -0.1], [0.0, 0.5, -0.1, 0.2]]
)


def molecule():
    n = int(torch.randint(6, MAX_ATOMS + 1, (1,)))
    atoms = torch.randint(0, ATOM_TYPES, (n,))
    adj = torch.zeros(MAX_ATOMS, MAX_ATOMS)
    for i in range(n - 1):  # a chain backbone
        adj[i, i + 1] = adj[i + 1, i] = 1
    for _ in range(int(torch.randint(0, 4, (1,)))):  # a few ring-closing bonds
        i, j = torch.randint(0, n, (2,)).tolist()
        if abs(i - j) > 1:
            adj[i, j] = adj[j, i] = 1
    a = adj[:n, :n]
    energy = ATOM_ENERGY[atoms].sum() + 0.5 * (a * BOND_ENERGY[atoms][:, atoms]).sum()
    energy = energy + 0.3 * (a.sum(1) ** 2).sum() / n + 0.1 * torch.randn(())
    x = torch.full((MAX_ATOMS,), ATOM_TYPES)  # padding atom type
    x[:n] = atoms
    return x, adj, energy


def dataset(n):
    xs, adjs, ys = zip(*(molecule() for _ in range(n)))
    return torch.stack(xs), torch.stack(adjs), torch.stack(ys)


train_x, train_adj, train_y = dataset(1600)
val_x, val_adj, val_y = dataset(400)
mean, std = train_y.mean(), train_y.std()
train_y = ((train_y - mean) / std).unsqueeze(-1)  # labels come out of the pipeline as (N, 1)
val_y = ((val_y - mean) / std).unsqueeze(-1)


class MPNN(nn.Module):
    def __init__(self, hidden=64, layers=3):
        super().__init__()
        self.embed = nn.Embedding(ATOM_TYPES + 1, 16, padding_idx=ATOM_TYPES)
        self.inp = nn.Linear(16, hidden)
        self.self_w = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.neigh_w = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, atoms, adj):
        mask = (atoms != ATOM_TYPES).float().unsqueeze(-1)
        h = torch.relu(self.inp(self.embed(atoms))) * mask
        for w_self, w_neigh in zip(self.self_w, self.neigh_w):
            h = torch.relu(w_self(h) + w_neigh(adj @ h)) * mask
        return self.head(h.sum(1)).squeeze(-1)  # graph readout: (N,)


model = MPNN()
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loader = DataLoader(TensorDataset(train_x, train_adj, train_y), batch_size=32, shuffle=True)


def compute_loss(readout, labels):
    if FIX:
        readout = readout.view_as(labels)
    return criterion(readout, labels)


with mlflow.start_run():
    mlflow.log_params({"hidden": 64, "mp_layers": 3, "lr": 1e-3, "batch_size": 32})
    for epoch in range(15):
        model.train()
        total = 0.0
        for xb, ab, yb in loader:
            optimizer.zero_grad()
            loss = compute_loss(model(xb, ab), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        model.eval()
        with torch.no_grad():
            readout = model(val_x, val_adj)
            val_loss = compute_loss(readout, val_y).item()
            val_mae = (readout - val_y.flatten()).abs().mean().item()
        metrics = {"train_loss": total / len(train_y), "val_loss": val_loss, "val_mae": val_mae}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
