"""An embedding CNN trained with the online "batch hard" triplet loss of omoindrot/tensorflow-triplet-loss (ported
to PyTorch: for each anchor in the batch its hardest positive and hardest negative, margin 0.5, Euclidean
distances, no L2 normalisation) with a learning rate too high for it: within the first epoch every image is mapped
to the same point, all pairwise distances go to zero and the loss sits at the margin for the rest of training.

Report: omoindrot/tensorflow-triplet-loss issue #38 "pairwise_dist drops to 0, loss is near the margin and can't
  go down" ("after training for a while, pairwise_dist drops to 0, loss is near the margin and can't go down";
  the maintainer: "It looks like training is collapsing, so you may want to decrease your learning rate"; the
  same answer in #18 and #6: "if the loss gets stuck at exactly the margin, it indicates that all the
  embeddings are collapsed into a single point. One solution is to reduce the learning rate")
  https://github.com/omoindrot/tensorflow-triplet-loss/issues/38
Setup: 16x16 synthetic one-channel images of 10 classes (each class a smooth random template, shifted by up to
4 pixels, scaled 0.7-1.3, Gaussian pixel noise 0.6), 4,000 training / 1,000 validation images; the repository's
MNIST model: Conv(32, 3x3)-ReLU-MaxPool, Conv(64, 3x3)-ReLU-MaxPool, Linear to a 64-D embedding;
batch_hard_triplet_loss (margin 0.5), Adam(lr=0.01), batch 64, 10 epochs; per-epoch train_loss,
fraction_hard_triplets_active (share of anchors whose hardest triplet still has a positive loss),
mean_pairwise_dist, val_loss and val_recall_at_1 (leave-one-out nearest neighbour on the validation images).
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, Adam(lr=1e-3), the repository's default and the lower learning rate the maintainer recommends):
train_loss 0.522 -> 0.246 -> 0.054 (epoch 3) -> 0.005 at epoch 9, val_loss 0.389 -> 0.088, val_recall_at_1 0.981
-> 0.993-0.998, mean_pairwise_dist 1.67 -> 5.12 (buggy: train_loss 0.566 in epoch 0, then exactly 0.500 = the
margin from epoch 1 to 9, val_loss 0.500 from epoch 0, mean_pairwise_dist 0.0, fraction_hard_triplets_active 1.0,
val_recall_at_1 0.08: every embedding is the same point) (checked; 37 s / 32 s CPU, 1:31 / 1:27 wall on the
2-core machine shared by four helpers).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
LR = 1e-3 if FIX else 0.01
MARGIN, BATCH, EPOCHS, N_CLASSES = 0.5, 64, 10, 10

templates = F.avg_pool2d(torch.randn(N_CLASSES, 1, 20, 20), 5, stride=1, padding=2) * 3.0


def make_images(n):
    labels = torch.randint(0, N_CLASSES, (n,))
    dx, dy = torch.randint(0, 5, (2, n)).tolist()
    crops = torch.stack([templates[c, :, y : y + 16, x : x + 16] for c, x, y in zip(labels.tolist(), dx, dy)])
    scale = 0.7 + 0.6 * torch.rand(n, 1, 1, 1)
    return scale * crops + 0.6 * torch.randn(n, 1, 16, 16), labels


def pairwise_distances(embeddings, squared=False):
    dot = embeddings @ embeddings.t()
    sq = dot.diagonal()
    distances = (sq.unsqueeze(0) - 2.0 * dot + sq.unsqueeze(1)).clamp(min=0.0)
    if not squared:
        mask = (distances == 0.0).float()
        distances = (distances + mask * 1e-16).sqrt() * (1.0 - mask)
    return distances


def batch_hard_triplet_loss(labels, embeddings, margin, squared=False):
    dist = pairwise_distances(embeddings, squared)
    eye = torch.eye(len(labels), dtype=torch.bool)
    equal = labels.unsqueeze(0) == labels.unsqueeze(1)
    mask_ap = (equal & ~eye).float()
    hardest_positive = (mask_ap * dist).max(1, keepdim=True)[0]
    mask_an = (~equal).float()
    max_an = dist.max(1, keepdim=True)[0]
    hardest_negative = (dist + max_an * (1.0 - mask_an)).min(1, keepdim=True)[0]
    tl = (hardest_positive - hardest_negative + margin).clamp(min=0.0)
    return tl.mean(), (tl > 0).float().mean()


class EmbeddingNet(nn.Module):
    def __init__(self, embedding_size=64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 4 * 4, embedding_size)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


x_train, y_train = make_images(4000)
x_val, y_val = make_images(1000)
model = EmbeddingNet()
optimizer = torch.optim.Adam(model.parameters(), lr=LR)

with mlflow.start_run():
    mlflow.log_params({"learning_rate": LR, "margin": MARGIN, "batch_size": BATCH, "triplet_strategy": "batch_hard"})
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(x_train))
        total, hard_frac_total, n = 0.0, 0.0, 0
        for i in range(0, len(x_train), BATCH):
            idx = perm[i : i + BATCH]
            loss, fraction = batch_hard_triplet_loss(y_train[idx], model(x_train[idx]), MARGIN)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            hard_frac_total += fraction.item()
            n += 1
        model.eval()
        with torch.no_grad():
            emb = model(x_val)
            val_losses = [
                batch_hard_triplet_loss(y_val[j : j + BATCH], emb[j : j + BATCH], MARGIN)[0].item()
                for j in range(0, len(x_val), BATCH)
            ]
            d = pairwise_distances(emb)
            mean_dist = d.sum().item() / (len(emb) * (len(emb) - 1))
            d.fill_diagonal_(float("inf"))
            recall = (y_val[d.argmin(1)] == y_val).float().mean().item()
        metrics = {
            "train_loss": total / n,
            "fraction_hard_triplets_active": hard_frac_total / n,
            "mean_pairwise_dist": mean_dist,
            "val_loss": sum(val_losses) / len(val_losses),
            "val_recall_at_1": recall,
        }
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
