"""A click-through-rate model that ends in nn.Sigmoid() and is trained with BCEWithLogitsLoss: sigmoid applied twice, the loss cannot go below ~0.5.

Report: yudi-mars/daisyRec pull request #15 "Do not need sigmoid because there is sigmoid in
  BCEWithLogitsLoss" ("Otherwise loss does not converge") https://github.com/yudi-mars/daisyRec/pull/15
Setup: 20 standardised dense features plus user/item category embeddings (50 and 80 ids, dim 8),
MLP 36-64-32-1 followed by nn.Sigmoid(), nn.BCEWithLogitsLoss on that output, Adam(lr=1e-3),
batch 128, 30% positives, per-epoch train_loss / val_loss / val_auc (AUC from the model output).
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, no Sigmoid in the model; torch.sigmoid only for scoring): val_loss 0.21, val_auc 0.968 (buggy: loss stuck at 0.62-0.63, val_auc 0.953: the ranking mostly survives, the loss and the probabilities do not) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

w = torch.randn(20)
user_eff, item_eff = torch.randn(50), torch.randn(80)


def make(n):
    x = torch.randn(n, 20)
    u, i = torch.randint(0, 50, (n,)), torch.randint(0, 80, (n,))
    score = x @ w / 20**0.5 * 2 + user_eff[u] + item_eff[i] + 0.5 * torch.randn(n)
    y = (score > torch.quantile(score, 0.7)).float()
    return x, u, i, y


class CTR(nn.Module):
    def __init__(self):
        super().__init__()
        self.user = nn.Embedding(50, 8)
        self.item = nn.Embedding(80, 8)
        layers = [nn.Linear(36, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1)]
        self.mlp = nn.Sequential(*layers) if FIX else nn.Sequential(*layers, nn.Sigmoid())

    def forward(self, x, u, i):
        return self.mlp(torch.cat([x, self.user(u), self.item(i)], 1)).squeeze(1)


def auc(score, y):
    pos, neg = score[y == 1], score[y == 0]
    return (pos.unsqueeze(1) > neg.unsqueeze(0)).float().mean().item()


x_tr, u_tr, i_tr, y_tr = make(6000)
x_va, u_va, i_va, y_va = make(1500)
model = CTR()
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    for epoch in range(12):
        model.train()
        total = 0.0
        perm = torch.randperm(6000)
        for k in range(0, 6000, 128):
            idx = perm[k : k + 128]
            optimizer.zero_grad()
            loss = criterion(model(x_tr[idx], u_tr[idx], i_tr[idx]), y_tr[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(x_va, u_va, i_va)
            val_loss = criterion(out, y_va).item()
            val_auc = auc(out, y_va)
        mlflow.log_metrics({"train_loss": total / 6000, "val_loss": val_loss, "val_auc": val_auc}, step=epoch)
        print(epoch, total / 6000, val_loss, val_auc)
