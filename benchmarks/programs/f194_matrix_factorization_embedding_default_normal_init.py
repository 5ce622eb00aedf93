"""Explicit-feedback matrix factorisation (user and item `nn.Embedding` factors with per-user and per-item biases, prediction = dot product + biases, MSELoss, Adam) trained on a ratings table with the embeddings left at PyTorch's default initialisation, N(0, 1): the dot product of two 32-dimensional standard-normal vectors starts with a spread of about 5.7 stars on a 1-5 scale, the network spends its updates memorising around that noise, and the held-out RMSE stays far above what the same model reaches from small initial factors.

Report: pytorch/pytorch issue #3121 "Better initialization in Embedding class" ("the weight initialization in the
  Embedding class is: self.weight.data.normal_(0, 1). It took me many hours to find out the reason why my net did
  not train. The values are too high. I suggest to initialize with the same option as other linear layers. A
  workaround to this is just to make the initialization yourself")
  https://github.com/pytorch/pytorch/issues/3121
Setup: a synthetic MovieLens-like ratings table: 800 users, 500 items, 48,000 ratings (1-5 stars, rounded and clipped
from a rank-6 taste model plus user and item offsets and noise), a random 90/10 train/validation split; the
tutorials' `MatrixFactorization(n_users, n_items, n_factors=32)` with `user_factors`, `item_factors`, `user_biases`,
`item_biases` embeddings at their default init, prediction `(u * v).sum(1) + b_u + b_i`, MSELoss, Adam(lr=1e-3),
batch 1024 shuffled, 25 epochs; per epoch `train_loss` (mean batch MSE) and `val_loss` (MSE), `val_rmse` with
`mlflow.log_metric`.
Expected first: bad_weight_init
Acceptable in top 3: initial_loss_mismatch
Symptom: not_converged, overfitting
Fixed (--fix, the embeddings initialised "yourself", as the linear layers are: `kaiming_uniform_(a=sqrt(5))`, i.e.
U(-1/sqrt(32), 1/sqrt(32)) for the factors, biases zero): train_loss 13.39 -> 1.80 (epoch 14) -> 1.023, val_loss 13.18 -> 1.152 (val_rmse 3.63 ->
1.073; the first epochs learn the 3.5-star mean through the zero biases), settling at the end (buggy: train_loss 47.6
-> 20.5 and val_loss 46.2 -> 27.1 (val_rmse 6.80 -> 5.20, more than four times the spread of the stars) in a slow
steady fall still going at the 25th epoch, the gap between them growing from 1.4 to 6.6: the factors memorise the
training ratings around their random start) (checked; 39 s / 48 s wall, 18 s / 19 s CPU, on the 2-core machine shared
by three helpers).
"""

import math
import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)
N_USERS, N_ITEMS, N_RATINGS, N_FACTORS, EPOCHS, BATCH = 800, 500, 48_000, 32, 25, 1024


def ratings_table():
    users_f = rng.normal(0, 1, (N_USERS, 6))
    items_f = rng.normal(0, 1, (N_ITEMS, 6))
    user_off = rng.normal(0, 0.4, N_USERS)
    item_off = rng.normal(0, 0.5, N_ITEMS)
    pairs = rng.choice(N_USERS * N_ITEMS, N_RATINGS, replace=False)
    u, i = pairs // N_ITEMS, pairs % N_ITEMS
    raw = 3.5 + user_off[u] + item_off[i] + 0.45 * (users_f[u] * items_f[i]).sum(1) + rng.normal(0, 0.5, N_RATINGS)
    return u, i, np.clip(np.round(raw), 1, 5).astype(np.float32)


u, i, r = ratings_table()
perm = rng.permutation(N_RATINGS)
n_val = N_RATINGS // 10
val_idx, train_idx = perm[:n_val], perm[n_val:]
users, items, stars = torch.tensor(u), torch.tensor(i), torch.tensor(r)
print(f"{len(train_idx)} training ratings, {n_val} validation ratings, mean {r.mean():.2f} stars, std {r.std():.2f}")


class MatrixFactorization(nn.Module):
    def __init__(self, n_users, n_items, n_factors=20):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.user_biases = nn.Embedding(n_users, 1)
        self.item_biases = nn.Embedding(n_items, 1)
        if FIX:  # "make the initialization yourself", as nn.Linear does
            for emb in (self.user_factors, self.item_factors):
                nn.init.kaiming_uniform_(emb.weight, a=math.sqrt(5))
            nn.init.zeros_(self.user_biases.weight)
            nn.init.zeros_(self.item_biases.weight)

    def forward(self, user, item):
        pred = self.user_biases(user) + self.item_biases(item)
        pred += (self.user_factors(user) * self.item_factors(item)).sum(dim=1, keepdim=True)
        return pred.squeeze(1)


model = MatrixFactorization(N_USERS, N_ITEMS, n_factors=N_FACTORS)
loss_func = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

with mlflow.start_run():
    mlflow.log_params({"n_factors": N_FACTORS, "lr": 1e-3, "batch_size": BATCH, "epochs": EPOCHS})
    for epoch in range(EPOCHS):
        model.train()
        shuffled = torch.tensor(train_idx)[torch.randperm(len(train_idx))]
        losses = []
        for k in range(0, len(shuffled), BATCH):
            idx = shuffled[k : k + BATCH]
            optimizer.zero_grad()
            prediction = model(users[idx], items[idx])
            loss = loss_func(prediction, stars[idx])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            vi = torch.tensor(val_idx)
            val_loss = loss_func(model(users[vi], items[vi]), stars[vi]).item()
        train_loss = float(np.mean(losses))
        mlflow.log_metrics({"train_loss": train_loss, "val_loss": val_loss, "val_rmse": val_loss**0.5}, step=epoch)
        print(f"epoch {epoch}: train_loss {train_loss:.4f} val_loss {val_loss:.4f} val_rmse {val_loss**0.5:.4f}")
