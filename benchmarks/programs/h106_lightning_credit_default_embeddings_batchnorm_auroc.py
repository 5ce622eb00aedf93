"""Healthy: a Lightning tabular classifier for credit-card default (a UCI "default of credit card clients"-like table): categorical columns through `nn.Embedding`s, numeric columns standardised, both concatenated into a Linear-BatchNorm1d-ReLU-Dropout MLP with one logit, BCEWithLogitsLoss, Adam; the validation AUROC computed by hand from the collected scores (the rank statistic torchmetrics' binary AUROC computes), with EarlyStopping and ModelCheckpoint on it.

Report: healthy, in the style of the Lightning tabular examples and docs (a LightningModule with `training_step` /
  `validation_step` logging through `self.log`, predictions gathered in `on_validation_epoch_end`,
  `EarlyStopping(monitor="val_auroc", mode="max", patience=5)` and `ModelCheckpoint(monitor="val_auroc",
  mode="max")` in `Trainer(callbacks=[...])`) and the entity-embedding tabular models (fastai's TabularModel: one
  embedding per categorical column, BatchNorm on the continuous ones, Linear-BatchNorm-ReLU-Dropout blocks)
  https://lightning.ai/docs/pytorch/stable/common/early_stopping.html
Setup: 12,000 synthetic clients (9,600 train / 2,400 validation, 14.7% defaults): categorical SEX, EDUCATION (7
codes), MARRIAGE (4), PAY_0 repayment status (11 codes, the strongest predictor), age band (6); numeric LIMIT_BAL,
AGE, BILL_AMT1, PAY_AMT1, utilisation, standardised with the training split's mean and std (amounts log1p first);
embeddings of min(10, (n+1)//2) dimensions, BatchNorm1d on the numeric block, Linear(., 64)-BatchNorm1d-ReLU-
Dropout(0.2)-Linear(64, 32)-BatchNorm1d-ReLU-Dropout(0.2)-Linear(32, 1), BCEWithLogitsLoss, Adam(lr 1e-3,
weight_decay 1e-5), batch 256 shuffled, at most 30 epochs; `train_loss` per epoch (on_epoch), `val_loss`, `val_auroc`
and `val_accuracy` per epoch through `self.log`; mlflow.autolog() records the Lightning run.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Fixed (no fix: healthy): train_loss 0.586 -> 0.342, val_loss 0.526 -> 0.353 (flat from epoch 6), val_auroc
0.750 -> 0.773 (best, epoch 8), val_accuracy 0.807 -> 0.866 (the all-negative rate is 0.853); EarlyStopping stopped
the run after epoch 13 with val_auroc 0.769-0.773 over the last six epochs, ModelCheckpoint kept epoch 8 (checked;
117 s wall, 44 s CPU, on the 2-core machine shared by three helpers).
"""

import tempfile

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)
N = 12_000


def credit_clients(n):
    sex = rng.choice(2, n, p=[0.4, 0.6])
    education = rng.choice(7, n, p=[0.01, 0.35, 0.47, 0.15, 0.01, 0.005, 0.005])
    marriage = rng.choice(4, n, p=[0.01, 0.45, 0.53, 0.01])
    age = np.clip(rng.gamma(9, 4, n) + 18, 21, 75).round()
    age_band = np.digitize(age, [25, 30, 35, 40, 50])
    pay_0 = np.clip(rng.choice(11, n, p=[0.09, 0.19, 0.49, 0.12, 0.07, 0.02, 0.01, 0.005, 0.003, 0.001, 0.001]), 0, 10)
    limit_bal = np.exp(rng.normal(11.8, 0.8, n)).round(-3)
    utilisation = np.clip(rng.beta(1.2, 2.0, n) + 0.08 * np.maximum(pay_0 - 2, 0), 0, 1.3)
    bill_amt1 = limit_bal * utilisation
    pay_amt1 = np.maximum(bill_amt1 * rng.beta(1, 8, n) * np.where(pay_0 > 2, 0.3, 1.0), 0)
    score = (
        -2.0
        + np.array([-0.6, -0.2, -0.9, 0.3, 1.3, 2.0, 2.4, 2.6, 2.6, 2.6, 2.6])[pay_0]
        - 0.35 * (np.log(limit_bal) - 11.8)
        + 0.9 * (utilisation - 0.4)
        - 1.2 * (pay_amt1 / (bill_amt1 + 1) - 0.1)
        + 0.15 * sex
        + np.array([0.0, -0.15, 0.05, 0.15, -0.3, 0.0, 0.0])[education]
        + np.array([0.0, 0.1, -0.1, 0.2])[marriage]
        + 0.008 * (age - 35)
    )
    default = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(np.float32)
    categorical = np.stack([sex, education, marriage, pay_0, age_band], 1)
    numeric = np.stack([np.log1p(limit_bal), age, np.log1p(bill_amt1), np.log1p(pay_amt1), utilisation], 1)
    return categorical, numeric.astype(np.float32), default


categorical, numeric, default = credit_clients(N)
cardinalities = [2, 7, 4, 11, 6]
is_val = np.zeros(N, bool)
is_val[rng.permutation(N)[: N // 5]] = True
mean, std = numeric[~is_val].mean(0), numeric[~is_val].std(0)
numeric = (numeric - mean) / std
print(f"{(~is_val).sum()} training clients, {is_val.sum()} validation clients, default rate {default.mean():.3f}")


def binary_auroc(preds, target):
    """Area under the ROC curve as the Mann-Whitney rank statistic (ties get their average rank)."""
    order = torch.argsort(preds)
    sorted_preds = preds[order]
    ranks = torch.empty_like(preds)
    ranks[order] = torch.arange(1, len(preds) + 1, dtype=preds.dtype)
    unique, inverse = torch.unique(sorted_preds, return_inverse=True)
    sums = torch.zeros(len(unique)).index_add_(0, inverse, ranks[order])
    counts = torch.zeros(len(unique)).index_add_(0, inverse, torch.ones(len(preds)))
    ranks[order] = (sums / counts)[inverse]
    n_pos = target.sum()
    n_neg = len(target) - n_pos
    return (ranks[target == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


class CreditDefaultModel(pl.LightningModule):
    def __init__(self, cardinalities, n_numeric, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embeddings = nn.ModuleList([nn.Embedding(c, min(10, (c + 1) // 2)) for c in cardinalities])
        n_emb = sum(e.embedding_dim for e in self.embeddings)
        self.bn_numeric = nn.BatchNorm1d(n_numeric)
        self.layers = nn.Sequential(
            nn.Linear(n_emb + n_numeric, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(64, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(32, 1),
        )
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.val_scores, self.val_targets = [], []

    def forward(self, x_cat, x_num):
        emb = [e(x_cat[:, k]) for k, e in enumerate(self.embeddings)]
        return self.layers(torch.cat(emb + [self.bn_numeric(x_num)], 1)).squeeze(1)

    def training_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        loss = self.loss_fn(self(x_cat, x_num), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x_cat, x_num, y = batch
        logits = self(x_cat, x_num)
        self.log("val_loss", self.loss_fn(logits, y))
        self.val_scores.append(torch.sigmoid(logits))
        self.val_targets.append(y)

    def on_validation_epoch_end(self):
        scores, targets = torch.cat(self.val_scores), torch.cat(self.val_targets)
        self.log("val_auroc", binary_auroc(scores, targets))
        self.log("val_accuracy", ((scores > 0.5).float() == targets).float().mean())
        self.val_scores.clear()
        self.val_targets.clear()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)


def dataset(mask):
    return TensorDataset(torch.tensor(categorical[mask]), torch.tensor(numeric[mask]), torch.tensor(default[mask]))


checkpoint_dir = tempfile.mkdtemp()
early_stopping = EarlyStopping(monitor="val_auroc", mode="max", patience=5)
checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, monitor="val_auroc", mode="max", save_top_k=1)
trainer = pl.Trainer(
    max_epochs=30,
    callbacks=[early_stopping, checkpoint],
    enable_progress_bar=False,
    logger=False,
    enable_model_summary=False,
)
trainer.fit(
    CreditDefaultModel(cardinalities, numeric.shape[1]),
    DataLoader(dataset(~is_val), batch_size=256, shuffle=True),
    DataLoader(dataset(is_val), batch_size=512),
)
print(f"stopped at epoch {trainer.current_epoch}; best val_auroc {float(checkpoint.best_model_score):.4f}")
print({k: round(float(v), 4) for k, v in trainer.callback_metrics.items()})
