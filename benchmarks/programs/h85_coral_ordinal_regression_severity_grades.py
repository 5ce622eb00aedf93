"""A CORAL ordinal-regression MLP (K-1 binary "rank > k" tasks sharing one weight vector and K-1 biases) predicting a 1-6 severity grade from tabular features, with weighted binary cross-entropy, Adam and a StepLR, early-stopped on the validation MAE.

Report: healthy, in the style of Raschka's coral-pytorch examples ("CORAL MLP for predicting ordinal labels",
  `CoralLayer(size_in, num_classes)`, `coral_loss(logits, levels)`, `proba_to_label(torch.sigmoid(logits))`,
  MAE as the metric) https://raschka-research-group.github.io/coral-pytorch/ ; Cao, Mirjalili & Raschka 2020,
  "Rank consistent ordinal regression for neural networks" https://arxiv.org/abs/1901.07884
Setup: synthetic patient records (12 standardised features; a latent severity that is a noisy nonlinear
function of them, cut into 6 ordered grades at fixed thresholds), MLP Linear(12,64)-ReLU-Dropout(0.1)-
Linear(64,32)-ReLU, a CORAL layer Linear(32, 1, bias=False) plus 5 learned rank biases, loss = mean over
samples of the summed binary cross-entropies against the extended binary labels levels[k] = (grade > k),
Adam(lr=1e-2), StepLR(step_size=10, gamma=0.5), batch 64, 2400 training / 600 validation records, up to 30
epochs with early stopping on val_mae (patience 5); per epoch train_loss, val_loss, val_mae, val_acc and lr.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed: val_mae 0.94 -> 0.65 (epoch 2) -> 0.45 (epoch 7) -> 0.418 (best, epoch 10), val_acc 0.33 -> 0.60, val_loss
2.07 -> 1.07, train_loss 2.51 -> 1.00, lr halved at epoch 10; early-stopped at epoch 15 (5 epochs without a better
val_mae; the grades' label noise caps accuracy near 0.6) (checked; ~27 s CPU, 48 s wall on a loaded 2-core machine).
"""

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
torch.manual_seed(0)
N_FEATURES, NUM_CLASSES = 12, 6


def records(n):
    x = torch.randn(n, N_FEATURES)
    latent = x[:, 0] + 0.8 * x[:, 1] - 0.6 * x[:, 2] + 0.5 * torch.tanh(2 * x[:, 3]) + 0.4 * x[:, 4] * x[:, 5]
    latent = latent + 0.45 * torch.randn(n)
    grade = torch.bucketize(latent, torch.tensor([-1.8, -0.7, 0.0, 0.7, 1.8]))
    return x, grade


class CoralMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Linear(N_FEATURES, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.ReLU()
        )
        self.fc = nn.Linear(32, 1, bias=False)  # one weight vector shared by all rank tasks
        self.rank_bias = nn.Parameter(torch.zeros(NUM_CLASSES - 1))

    def forward(self, x):
        return self.fc(self.features(x)) + self.rank_bias


def levels_from_labels(y):
    return (y[:, None] > torch.arange(NUM_CLASSES - 1)[None, :]).float()


def coral_loss(logits, levels):
    return F.binary_cross_entropy_with_logits(logits, levels, reduction="none").sum(dim=1).mean()


def proba_to_label(probas):
    return (probas > 0.5).sum(dim=1)


x_train, y_train = records(2400)
x_val, y_val = records(600)
model = CoralMLP()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
best_mae, bad_epochs, best_state = float("inf"), 0, None

with mlflow.start_run():
    mlflow.log_params({"lr": 1e-2, "batch_size": 64, "num_classes": NUM_CLASSES, "patience": 5})
    for epoch in range(30):
        model.train()
        perm = torch.randperm(len(x_train))
        total = 0.0
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = coral_loss(model(x_train[idx]), levels_from_labels(y_train[idx]))
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = coral_loss(logits, levels_from_labels(y_val)).item()
            pred = proba_to_label(torch.sigmoid(logits))
            val_mae = (pred - y_val).abs().float().mean().item()
            val_acc = (pred == y_val).float().mean().item()
        metrics = {"train_loss": total / len(x_train), "val_loss": val_loss, "val_mae": val_mae, "val_acc": val_acc}
        mlflow.log_metrics({**metrics, "lr": optimizer.param_groups[0]["lr"]}, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
        if val_mae < best_mae - 1e-4:
            best_mae, bad_epochs = val_mae, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
            if bad_epochs >= 5:
                print(f"early stopping at epoch {epoch}, best val_mae {best_mae:.4f}")
                break
    model.load_state_dict(best_state)
    mlflow.log_metric("best_val_mae", best_mae)
