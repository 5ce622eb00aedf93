"""Matrix factorisation of a user x item rating matrix by SGD, ported to PyTorch from the "Matrix Factorization: A Simple Tutorial and Implementation in Python" code, with the step size alpha set too high: the latent factors overflow within the first epoch and the error is NaN from then on.

Report: albertauyeung/matrix-factorization-in-python issue #5 "I have encountered a error in model training
  and the error is _main__:79: RuntimeWarning: overflow encountered in multiply ... Iteration: 10 ; error = nan
  ... my training_process shows all nan's" (resolved: "The problem has been solved as i reduced the alpha value
  and increased the number of epochs for gradient descent to converge")
  https://github.com/albertauyeung/matrix-factorization-in-python/issues/5
Setup: the tutorial's model: prediction = b + b_u[i] + b_i[j] + P[i] . Q[j] (K = 8 latent factors, P and Q
drawn from N(0, 1/K), biases at 0, b the global mean rating), the squared error plus beta = 0.05 times the
squared factors, plain SGD with step alpha (here torch.optim.SGD over nn.Embedding tables, the error summed
over mini-batches of 32 observed ratings, as per-sample SGD summed); 200 users x 150 items, 12,000 observed
ratings 1..5 (a rank-4 taste model plus noise, rounded and clipped) of which 2,400 held out; alpha = 0.5;
12 iterations (epochs); per iteration `error` (the training RMSE the tutorial prints) and val_rmse.
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: nonfinite_loss
Fixed (--fix, alpha = 0.02, as the thread's answer says): error 1.09 -> 0.44,
val_rmse 1.10 -> 0.55 after 12 iterations (buggy: error and val_rmse NaN from the first iteration on: the
factors overflow within the first epoch) (checked; 32 s / 25 s wall, ~15 s CPU each on a loaded 2-core machine).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
USERS, ITEMS, K, BETA = 200, 150, 8, 0.05
ALPHA = 0.02 if FIX else 0.5

taste_u, taste_i = rng.standard_normal((USERS, 4)), rng.standard_normal((ITEMS, 4))
pairs = rng.choice(USERS * ITEMS, size=12000, replace=False)
u_idx, i_idx = pairs // ITEMS, pairs % ITEMS
ratings = np.clip(
    np.rint(3.2 + 0.6 * (taste_u[u_idx] * taste_i[i_idx]).sum(1) + 0.4 * rng.standard_normal(12000)), 1, 5
)
u_idx, i_idx, ratings = torch.tensor(u_idx), torch.tensor(i_idx), torch.tensor(ratings, dtype=torch.float32)
train, val = slice(0, 9600), slice(9600, 12000)


class MF(nn.Module):
    def __init__(self, b):
        super().__init__()
        self.P, self.Q = nn.Embedding(USERS, K), nn.Embedding(ITEMS, K)
        self.b_u, self.b_i = nn.Embedding(USERS, 1), nn.Embedding(ITEMS, 1)
        nn.init.normal_(self.P.weight, std=1 / K)
        nn.init.normal_(self.Q.weight, std=1 / K)
        nn.init.zeros_(self.b_u.weight)
        nn.init.zeros_(self.b_i.weight)
        self.b = b

    def forward(self, u, i):
        p, q = self.P(u), self.Q(i)
        pred = self.b + self.b_u(u).squeeze(1) + self.b_i(i).squeeze(1) + (p * q).sum(1)
        return pred, (p**2).sum() + (q**2).sum()


model = MF(ratings[train].mean().item())
optimizer = torch.optim.SGD(model.parameters(), lr=ALPHA)
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(u_idx[train], i_idx[train], ratings[train]), batch_size=32, shuffle=True
)


def rmse(sl):
    with torch.no_grad():
        pred, _ = model(u_idx[sl], i_idx[sl])
        return ((pred - ratings[sl]) ** 2).mean().sqrt().item()


with mlflow.start_run():
    mlflow.log_params({"K": K, "alpha": ALPHA, "beta": BETA, "iterations": 12, "batch_size": 32})
    for it in range(12):
        for u, i, r in loader:
            optimizer.zero_grad()
            pred, reg = model(u, i)
            loss = ((r - pred) ** 2).sum() + BETA * reg
            loss.backward()
            optimizer.step()
        metrics = {"error": rmse(train), "val_rmse": rmse(val)}
        mlflow.log_metrics(metrics, step=it)
        print(f"Iteration: {it + 1} ; error = {metrics['error']:.4f} ; val_rmse = {metrics['val_rmse']:.4f}")
