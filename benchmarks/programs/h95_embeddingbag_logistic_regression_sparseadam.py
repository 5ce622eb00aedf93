"""Healthy: a sparse-input logistic regression (hashed one-hot features summed by an nn.EmbeddingBag with sparse gradients, one weight per feature) for click-through prediction, trained with SparseAdam for the embedding table and Adam for the dense bias.

Report: healthy, in the style of the PyTorch documentation of `torch.optim.SparseAdam` and `nn.EmbeddingBag(...,
  sparse=True)` ("Only `optim.SGD` (CUDA and CPU), `optim.SparseAdam` (CUDA and CPU) and `optim.Adagrad` (CPU)
  support sparse gradients") and the hashed-feature logistic-regression baselines of the CTR tutorials (the
  Criteo / Avazu "hashing trick" baseline) https://pytorch.org/docs/stable/generated/torch.optim.SparseAdam.html
Setup: 24,000 training / 6,000 validation impressions, each with 12 categorical fields hashed into 2^15 buckets (a
field's value drawn from a Zipf-like distribution over 500 values, so rare values abound), clicks drawn from a
logistic model in which half the values move the log-odds, plus noise (32% positive); model: EmbeddingBag(2^15, 1,
mode="sum", sparse=True) plus a dense bias; BCEWithLogitsLoss; SparseAdam(embedding, lr 0.01) and Adam(bias, lr
0.01), both stepped each batch; batch 256, 5 epochs; train_loss every 20 steps, per epoch val_loss, val_auc and
val_logloss_baseline (the constant click-rate predictor's loss, logged each epoch for comparison).
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix: healthy): train_loss 0.693 -> 0.44 (batch noise 0.41-0.53 late), val_loss 0.543 -> 0.514 (best,
epoch 4 of 5) -> 0.517, against the constant click-rate predictor's 0.629; val_auc 0.761 -> 0.780 -> 0.778: the
usual hashed-LR picture, most of the gain in the first epoch, a hint of over-fitting of rare values at the end
(checked; 33 s wall / 16 s CPU on the 2-core machine shared by three helpers, OMP_NUM_THREADS=1).
"""

import mlflow
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
NUM_BUCKETS, NUM_FIELDS, VALUES_PER_FIELD = 2**15, 12, 500

# ground truth: each field's value has a log-odds effect, mostly small, some large
value_effects = rng.normal(0.0, 0.7, size=(NUM_FIELDS, VALUES_PER_FIELD)) * (
    rng.random((NUM_FIELDS, VALUES_PER_FIELD)) < 0.5
)
value_probs = 1.0 / np.arange(1, VALUES_PER_FIELD + 1) ** 1.1
value_probs /= value_probs.sum()
field_salts = rng.integers(1, 2**31, size=NUM_FIELDS)


def make_impressions(n):
    values = np.stack([rng.choice(VALUES_PER_FIELD, size=n, p=value_probs) for _ in range(NUM_FIELDS)], axis=1)
    logits = -1.6 + value_effects[np.arange(NUM_FIELDS)[None, :], values].sum(1) + rng.normal(0, 0.5, size=n)
    clicks = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    hashed = (values * 2654435761 + field_salts[None, :]) % NUM_BUCKETS  # the hashing trick
    return torch.tensor(hashed, dtype=torch.long), torch.tensor(clicks)


class SparseLogisticRegression(nn.Module):
    def __init__(self, num_buckets):
        super().__init__()
        self.weights = nn.EmbeddingBag(num_buckets, 1, mode="sum", sparse=True)
        nn.init.zeros_(self.weights.weight)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, feature_ids):
        return self.weights(feature_ids).squeeze(1) + self.bias


x_train, y_train = make_impressions(24000)
x_val, y_val = make_impressions(6000)
print("click rate:", round(y_train.mean().item(), 3))
model = SparseLogisticRegression(NUM_BUCKETS)
sparse_optimizer = torch.optim.SparseAdam(list(model.weights.parameters()), lr=0.01)
dense_optimizer = torch.optim.Adam([model.bias], lr=0.01)
criterion = nn.BCEWithLogitsLoss()
rate = y_train.mean().item()
baseline = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))

with mlflow.start_run():
    mlflow.log_params({"num_buckets": NUM_BUCKETS, "lr": 0.01, "batch_size": 256, "optimizer": "SparseAdam+Adam"})
    step = 0
    for epoch in range(5):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(perm), 256):
            idx = perm[i : i + 256]
            loss = criterion(model(x_train[idx]), y_train[idx])
            sparse_optimizer.zero_grad()
            dense_optimizer.zero_grad()
            loss.backward()
            sparse_optimizer.step()
            dense_optimizer.step()
            if step % 20 == 0:
                mlflow.log_metric("train_loss", loss.item(), step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            val_logits = model(x_val)
            val_loss = criterion(val_logits, y_val).item()
        val_auc = roc_auc_score(y_val.numpy(), val_logits.numpy())
        mlflow.log_metrics(
            {"val_loss": val_loss, "val_auc": val_auc, "val_logloss_baseline": float(baseline)}, step=step
        )
        print(f"epoch {epoch} train_loss {loss.item():.4f} val_loss {val_loss:.4f} val_auc {val_auc:.3f}")
