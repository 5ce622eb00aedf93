"""A tabular classifier on an imbalanced label set (82/13/5%) trained with inverse-frequency class weights: handled correctly.

Report: healthy, in the style of the class-weighting answers for imbalanced data (CrossEntropyLoss(weight=...)
  with weights inversely proportional to class frequency; report balanced accuracy / macro F1)
  https://discuss.pytorch.org/t/passing-the-weights-to-crossentropyloss-correctly/14731
Setup: 18 standardised features, 3 classes with frequencies 82% / 13% / 5% from a noisy teacher,
MLP 18-64-64-3 with dropout 0.2, CrossEntropyLoss(weight=n / (3 * counts)), Adam(lr=1e-3), batch 64,
15 epochs, per-epoch train_loss / val_loss / val_acc / val_balanced_acc / val_macro_f1.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val balanced accuracy 0.92, macro F1 0.87, val_loss 0.195 after 15 epochs.
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

w = torch.randn(18, 2)


def make(n):
    x = torch.randn(n, 18)
    s = x @ w + 0.5 * torch.randn(n, 2)
    y = torch.zeros(n, dtype=torch.long)
    y[s[:, 0] > 3.4] = 1  # ~13%
    y[s[:, 1] > 4.4] = 2  # ~5%
    return x, y


x_train, y_train = make(4000)
x_val, y_val = make(1000)
counts = torch.bincount(y_train, minlength=3).float()
print("class shares", (counts / counts.sum()).tolist())
criterion = nn.CrossEntropyLoss(weight=len(y_train) / (3 * counts))
model = nn.Sequential(
    nn.Linear(18, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 3)
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def scores(pred, y):
    recall, f1 = [], []
    for c in range(3):
        tp = ((pred == c) & (y == c)).sum().item()
        p = tp / max((pred == c).sum().item(), 1)
        r = tp / max((y == c).sum().item(), 1)
        recall.append(r)
        f1.append(2 * p * r / max(p + r, 1e-9))
    return sum(recall) / 3, sum(f1) / 3


with mlflow.start_run():
    for epoch in range(15):
        model.train()
        total = 0.0
        perm = torch.randperm(4000)
        for i in range(0, 4000, 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            pred = out.argmax(1)
            bal, f1 = scores(pred, y_val)
        mlflow.log_metrics(
            {
                "train_loss": total / 4000,
                "val_loss": val_loss,
                "val_acc": (pred == y_val).float().mean().item(),
                "val_balanced_acc": bal,
                "val_macro_f1": f1,
            },
            step=epoch,
        )
        print(
            f"epoch {epoch}: train_loss {total / 4000:.4f} val_loss {val_loss:.4f} balanced_acc {bal:.3f} macro_f1 {f1:.3f}"
        )
