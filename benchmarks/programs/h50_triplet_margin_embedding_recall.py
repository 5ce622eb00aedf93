"""An embedding network trained with nn.TripletMarginLoss on randomly drawn (anchor, positive, negative) triplets, evaluated by nearest-neighbour recall@1 on held-out identities' samples.

Report: healthy, in the style of the PyTorch documentation's nn.TripletMarginLoss example and the
  pytorch-metric-learning "TripletMarginLoss" recipes (anchor / positive of one class, negative of
  another, margin 1.0, p=2, L2-normalised embeddings, recall@1 as the metric)
  https://pytorch.org/docs/stable/generated/torch.nn.TripletMarginLoss.html
Setup: 32-D points of 20 identities (identity centres plus unit noise, some overlap), MLP 32-128-128-16
embedding with L2 normalisation, nn.TripletMarginLoss(margin=1.0, p=2), triplets redrawn every epoch
(4000 a epoch, random negatives), Adam(lr=1e-3), batch 128, 12 epochs; per-epoch train_loss, val_loss
(fixed validation triplets) and val_recall_at_1 (leave-one-out nearest neighbour among 1000 validation
points).
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_recall_at_1 0.834 -> 0.979, val_loss 0.305 -> 0.056, train_loss 0.453 -> 0.012 after 12 epochs
(48 s wall on a 2-core machine loaded ~3.5x, 26 s CPU).
"""

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
torch.manual_seed(0)
centres = 0.9 * torch.randn(20, 32)


def points(n):
    ids = torch.randint(0, 20, (n,))
    return centres[ids] + torch.randn(n, 32), ids


def triplets(ids, n):
    anchor = torch.randint(0, len(ids), (n,))
    positive, negative = torch.empty_like(anchor), torch.empty_like(anchor)
    for i, a in enumerate(anchor.tolist()):
        same = torch.nonzero(ids == ids[a]).flatten()
        other = torch.nonzero(ids != ids[a]).flatten()
        positive[i] = same[torch.randint(0, len(same), (1,))]
        negative[i] = other[torch.randint(0, len(other), (1,))]
    return anchor, positive, negative


class Embedder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 16))

    def forward(self, x):
        return F.normalize(self.net(x), dim=1)


x_train, id_train = points(3000)
x_val, id_val = points(1000)
val_triplets = triplets(id_val, 2000)
model = Embedder()
criterion = nn.TripletMarginLoss(margin=1.0, p=2)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    mlflow.log_params({"margin": 1.0, "embedding_dim": 16, "lr": 1e-3, "batch_size": 128})
    for epoch in range(12):
        model.train()
        a, p, n = triplets(id_train, 4000)
        total = 0.0
        for i in range(0, 4000, 128):
            sl = slice(i, i + 128)
            loss = criterion(model(x_train[a[sl]]), model(x_train[p[sl]]), model(x_train[n[sl]]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(a[sl])
        model.eval()
        with torch.no_grad():
            e = model(x_val)
            va, vp, vn = val_triplets
            val_loss = criterion(e[va], e[vp], e[vn]).item()
            d = torch.cdist(e, e)
            d.fill_diagonal_(float("inf"))
            recall = (id_val[d.argmin(1)] == id_val).float().mean().item()
        mlflow.log_metrics({"train_loss": total / 4000, "val_loss": val_loss, "val_recall_at_1": recall}, step=epoch)
        print(f"epoch {epoch}: train_loss {total / 4000:.4f} val_loss {val_loss:.4f} val_recall_at_1 {recall:.3f}")
