"""A TabTransformer on census-style data: each categorical column embedded (shared value table + a column embedding), contextualised by a 2-layer Transformer encoder, flattened and joined with the layer-normalised continuous columns into an MLP; AdamW, per-epoch validation and early stopping on val_loss.

Report: healthy, in the style of TabTransformer (Huang et al. 2020, "TabTransformer: Tabular Data Modeling Using
  Contextual Embeddings", https://arxiv.org/abs/2012.06678) as lucidrains/tab-transformer-pytorch builds it
  (`TabTransformer(categories=(...), num_continuous=..., dim=32, depth=6, heads=8, attn_dropout=0.1,
  ff_dropout=0.1, mlp_hidden_mults=(4, 2))`: categorical embeddings through the Transformer, continuous
  features through LayerNorm, both concatenated into the MLP) https://github.com/lucidrains/tab-transformer-pytorch
Setup: 4000 synthetic adult-income-style rows (6 categorical columns with 3-16 values: workclass, education,
marital status, occupation, relationship, sex; 4 continuous columns standardised on the training split: age,
hours per week, log capital gain, education years), the label from a logistic model with interactions
between categories (~54% positive); 3000 training / 1000 validation rows; value embeddings dim 16 plus a
learned per-column embedding, TransformerEncoder(d_model 16, 4 heads, ff 64, dropout 0.1, 2 layers,
batch_first), MLP (6*16 + 4) -> 64 -> 32 -> 1 with ReLU and dropout 0.1; BCEWithLogitsLoss, AdamW(lr=1e-3,
weight_decay=1e-2), batch 128, up to 25 epochs, early stopping with patience 4 on val_loss (best weights
restored for the final evaluation); per epoch train_loss, val_loss, val_auc, val_acc.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: val_loss 0.652 -> 0.514 (best, epoch 11) -> 0.523, early-stopped at epoch 15 (patience 4), val_auc
0.71 -> 0.83 (best 0.826), val_acc 0.65 -> 0.74, train_loss 0.68 -> 0.46 (checked; 43 s wall / 19 s CPU,
OMP_NUM_THREADS=1, 2 shared cores).
"""

import copy

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
CARDINALITIES = [7, 16, 5, 14, 6, 2]  # workclass, education, marital, occupation, relationship, sex
N, N_CONT, DIM = 4000, 4, 16

cats = np.stack([rng.integers(0, c, N) for c in CARDINALITIES], 1)
age = rng.normal(39, 13, N).clip(17, 90)
hours = rng.normal(40, 12, N).clip(1, 99)
gain = np.log1p(np.where(rng.random(N) < 0.08, rng.lognormal(8, 1, N), 0))
edu_years = 6 + cats[:, 1] * 0.7 + rng.normal(0, 1, N)
effects = [rng.normal(0, 0.6, c) for c in CARDINALITIES]
inter = rng.normal(0, 0.9, (CARDINALITIES[2], CARDINALITIES[4]))  # marital x relationship
score = (
    sum(e[cats[:, i]] for i, e in enumerate(effects))
    + inter[cats[:, 2], cats[:, 4]]
    + 0.04 * (age - 39)
    + 0.03 * (hours - 40)
    + 0.25 * gain
    + 0.25 * (edu_years - 11)
    - 1.3
)
label = (rng.random(N) < 1 / (1 + np.exp(-score))).astype(np.float32)
cont = np.stack([age, hours, gain, edu_years], 1)
idx = rng.permutation(N)
tr, va = idx[:3000], idx[3000:]
mean, std = cont[tr].mean(0), cont[tr].std(0)
cont = ((cont - mean) / std).astype(np.float32)
print(f"positive rate {label.mean():.3f}")


class TabTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(CARDINALITIES)[:-1]]))
        self.values = nn.Embedding(sum(CARDINALITIES), DIM)
        self.columns = nn.Parameter(torch.randn(len(CARDINALITIES), DIM) * 0.02)
        layer = nn.TransformerEncoderLayer(DIM, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.norm = nn.LayerNorm(N_CONT)
        self.mlp = nn.Sequential(
            nn.Linear(len(CARDINALITIES) * DIM + N_CONT, 64),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, 1),
        )

    def forward(self, x_cat, x_cont):
        tokens = self.values(x_cat + self.offsets) + self.columns
        context = self.encoder(tokens).flatten(1)
        return self.mlp(torch.cat([context, self.norm(x_cont)], 1)).squeeze(1)


def auc(scores, labels):
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels == 1
    return (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())


x_cat, x_cont, y = torch.tensor(cats), torch.tensor(cont), torch.tensor(label)
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x_cat[tr], x_cont[tr], y[tr]), batch_size=128, shuffle=True
)
model = TabTransformer()
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)

with mlflow.start_run():
    mlflow.log_params({"dim": DIM, "depth": 2, "heads": 4, "lr": 1e-3, "weight_decay": 1e-2, "patience": 4})
    best, best_state, bad = float("inf"), None, 0
    for epoch in range(25):
        model.train()
        total = 0.0
        for xc, xn, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xc, xn), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
        model.eval()
        with torch.no_grad():
            logits = model(x_cat[va], x_cont[va])
            val_loss = criterion(logits, y[va]).item()
        metrics = {
            "train_loss": total / len(tr),
            "val_loss": val_loss,
            "val_auc": float(auc(logits.numpy(), label[va])),
            "val_acc": ((logits > 0).float() == y[va]).float().mean().item(),
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
        if val_loss < best - 1e-4:
            best, best_state, bad = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= 4:
                print(f"early stopping at epoch {epoch}, best val_loss {best:.4f}")
                break
    model.load_state_dict(best_state)
    mlflow.log_metric("best_val_loss", best)
