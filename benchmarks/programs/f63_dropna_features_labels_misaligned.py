"""Rows with missing values dropped from the features but not from the labels: every label after the first dropped row belongs to another customer.

Report: "Aligning Feature and Target Variables in Python" (feature and target misalignment from
  missing values and preprocessing that removes rows from one side only leads to incorrect training
  and poor performance; drop the rows from the frame before splitting X and y, or align on the index)
  https://gurubase.io/g/python/aligning-feature-target-variables-python
Setup: a pandas churn table, 10 000 rows, 8 numeric features (about 8% of the rows have a NaN in
`monthly_charges` or `support_calls`), a balanced binary `churn` label from a non-linear rule;
`X = df[features].dropna()` while `y = df["churn"].to_numpy()[: len(X)]` (cut to length so the
shapes match); train/validation split 80/20 after that, features standardised; MLP 8-64-64-1,
BCEWithLogitsLoss, Adam(lr=1e-3), batch 64, 12 epochs; per-epoch loss / accuracy / val_loss /
val_accuracy (Keras-history names).
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: plateau, overfitting
Fixed (--fix, df.dropna() on the whole frame, then X and y from it): val_accuracy 0.983, val_loss 0.043 after 12 epochs (buggy: 9212 of 10000 rows kept, labels shifted from the first dropped row on; loss 0.694 -> 0.684, accuracy 0.56 while val_loss rises 0.693 -> 0.700 and val_accuracy stays 0.49-0.50) (checked; 9 s / 12 s).
"""

import sys

import mlflow
import numpy as np
import pandas as pd
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)

n = 10_000
df = pd.DataFrame(
    {
        "tenure": rng.uniform(0, 72, n),
        "monthly_charges": rng.normal(70, 25, n),
        "support_calls": rng.poisson(2, n).astype(float),
        "contract_months": rng.choice([1, 12, 24], n).astype(float),
        "age": rng.uniform(18, 80, n),
        "data_gb": rng.gamma(2, 5, n),
        "late_payments": rng.poisson(1, n).astype(float),
        "discount": rng.uniform(0, 0.3, n),
    }
)
score = (
    -0.05 * df.tenure
    + 0.03 * df.monthly_charges
    + 0.5 * df.support_calls
    - 0.08 * df.contract_months
    + 0.6 * df.late_payments
    - 4 * df.discount
    + 0.002 * (df.age - 45) ** 2
)
df["churn"] = (score > score.median()).astype(float)
for col in ["monthly_charges", "support_calls"]:
    df.loc[rng.random(n) < 0.04, col] = np.nan
features = [c for c in df.columns if c != "churn"]

if FIX:
    df = df.dropna()
    X, y = df[features].to_numpy(), df["churn"].to_numpy()
else:
    X = df[features].dropna().to_numpy()
    y = df["churn"].to_numpy()[: len(X)]
print("rows kept", len(X), "of", n)

X = torch.tensor(X, dtype=torch.float32)
y = torch.tensor(y, dtype=torch.float32)[:, None]
perm = torch.randperm(len(X))
n_train = int(0.8 * len(X))
tr, va = perm[:n_train], perm[n_train:]
mean, std = X[tr].mean(0), X[tr].std(0)
x_train, x_val = (X[tr] - mean) / std, (X[va] - mean) / std
y_train, y_val = y[tr], y[va]

model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(12):
        model.train()
        total, correct = 0.0, 0.0
        order = torch.randperm(n_train)
        for i in range(0, n_train, 64):
            idx = order[i : i + 64]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += ((out > 0).float() == y_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = ((out > 0).float() == y_val).float().mean().item()
        metrics = {
            "loss": total / n_train,
            "accuracy": correct / n_train,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
