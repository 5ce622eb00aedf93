"""A matrix-factorisation recommender whose item embeddings come from nn.Embedding.from_pretrained: frozen by default, so they never fit the ratings.

Report: RUCAIBox/RecBole issue #2046 "Context-aware D not learning" (pretrained embeddings loaded
  into the model; answer: "have you tried setting freeze=False? From pytorch from_pretrained
  documentation: freeze ... Default: True") https://github.com/RUCAIBox/RecBole/issues/2046
Setup: 200 users x 150 items, explicit ratings from a rank-4 latent model plus noise (standardised),
20000 observed training ratings and 2000 validation ratings, user Embedding(200, 8) trainable, item
embeddings nn.Embedding.from_pretrained(vectors) with vectors from an earlier run on other data
(random here), prediction = dot + user/item biases, MSELoss, Adam(lr=1e-2), batch 256, 12 epochs, per-epoch
train_loss / val_loss / val_rmse.
Expected first: frozen_parameters
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, from_pretrained(..., freeze=False)): val_loss 0.093 (buggy: train_loss 0.86, val_loss 0.976 ~ the ratings' variance) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

N_USERS, N_ITEMS = 200, 150
pu, qi = torch.randn(N_USERS, 4), torch.randn(N_ITEMS, 4)


def sample(n):
    u, i = torch.randint(0, N_USERS, (n,)), torch.randint(0, N_ITEMS, (n,))
    r = (pu[u] * qi[i]).sum(1) / 2 + 0.3 * torch.randn(n)
    return u, i, r


u_tr, i_tr, r_tr = sample(20000)
u_va, i_va, r_va = sample(2000)
mu, sd = r_tr.mean(), r_tr.std()
r_tr, r_va = (r_tr - mu) / sd, (r_va - mu) / sd
pretrained_item_vectors = 0.1 * torch.randn(N_ITEMS, 8)  # "pretrained" on another dataset


class MF(nn.Module):
    def __init__(self):
        super().__init__()
        self.user = nn.Embedding(N_USERS, 8)
        nn.init.normal_(self.user.weight, std=0.1)
        self.item = nn.Embedding.from_pretrained(pretrained_item_vectors, freeze=not FIX)
        self.user_bias = nn.Embedding(N_USERS, 1)
        self.item_bias = nn.Embedding(N_ITEMS, 1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, u, i):
        dot = (self.user(u) * self.item(i)).sum(1)
        return dot + self.user_bias(u).squeeze(1) + self.item_bias(i).squeeze(1)


model = MF()
criterion = nn.MSELoss()
optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
with mlflow.start_run():
    for epoch in range(12):
        model.train()
        total = 0.0
        perm = torch.randperm(20000)
        for k in range(0, 20000, 256):
            idx = perm[k : k + 256]
            optimizer.zero_grad()
            loss = criterion(model(u_tr[idx], i_tr[idx]), r_tr[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(u_va, i_va), r_va).item()
        mlflow.log_metrics({"train_loss": total / 20000, "val_loss": val_loss, "val_rmse": val_loss**0.5}, step=epoch)
        print(epoch, total / 20000, val_loss)
