"""A Lightning tabular classifier whose string labels are encoded by a LabelEncoder fitted separately on each split.

Report: scikit-learn issue #10324 "Handling LabelEncoding for train and test data seperately" (label
  encoding done for the training data and the test data separately gives different numbers for the
  same class; the encoder must be fitted on the training labels once and only `transform` applied to
  the other split) https://github.com/scikit-learn/scikit-learn/issues/10324
Setup: 16 standardised numeric features of grocery products, 8 string categories ("bakery",
"beverages", ...); the validation file comes from a later month in which "beverages" was discontinued,
so `LabelEncoder().fit_transform` on it numbers the 6 categories after "beverages" one lower than the
training encoder did. LightningModule MLP 16-64-64-8, F.cross_entropy, Adam(lr=1e-3), 1,280 training rows, batch 64,
10 epochs; self.log("train_loss") per step, val_loss / val_acc per epoch; mlflow.autolog() around fit.
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: overfitting
Fixed (--fix, the training encoder's `transform` on the validation labels): val_acc 0.99, val_loss 0.048
after 10 epochs (buggy: val_acc 0.13, val_loss rising 2.2 -> 9.0 while train_loss falls to 0.04) (checked).
"""

import sys

import lightning.pytorch as pl
import mlflow
import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)

CATEGORIES = np.array(["bakery", "beverages", "dairy", "frozen", "meat", "pantry", "produce", "snacks"])
centres = rng.normal(0, 1.0, size=(8, 16))


def load(n, categories):
    names = rng.choice(categories, size=n)
    idx = np.searchsorted(CATEGORIES, names)
    x = centres[idx] + 0.8 * rng.normal(size=(n, 16))
    return x.astype(np.float32), names


x_train, names_train = load(1280, CATEGORIES)
x_val, names_val = load(480, CATEGORIES[CATEGORIES != "beverages"])  # later month: no beverages

encoder = LabelEncoder()
y_train = encoder.fit_transform(names_train)
y_val = encoder.transform(names_val) if FIX else LabelEncoder().fit_transform(names_val)


class ProductClassifier(pl.LightningModule):
    def __init__(self, n_features=16, n_classes=8, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, n_classes)
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


train = DataLoader(TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val)), batch_size=480)
trainer = pl.Trainer(
    max_epochs=10,
    enable_progress_bar=False,
    enable_checkpointing=False,
    logger=False,
    log_every_n_steps=5,
    enable_model_summary=False,
)
trainer.fit(ProductClassifier(), train, val)
print(trainer.callback_metrics)
