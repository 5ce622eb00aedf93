"""A 3-class tabular MLP with the pytorchtools EarlyStopping class: patience on the validation loss, best checkpoint restored.

Report: healthy, in the style of Bjarten/early-stopping-pytorch (the `EarlyStopping` helper class:
  patience, delta, `checkpoint.pt` saved whenever the validation loss improves and loaded back after
  the loop; the example logs the average train_loss / valid_loss of each epoch)
  https://github.com/Bjarten/early-stopping-pytorch
Setup: a wine-quality-style table: 11 physico-chemical features on their raw scales (acidity ~7,
sulphates ~0.6, total sulfur dioxide ~100, ...), quality grade low / medium / high (47/27/26%) from a
noisy latent score; StandardScaler fitted on the 1200 training rows, 300 validation rows;
MLP 11-64-32-3 with ReLU and Dropout(0.2), CrossEntropyLoss, Adam(lr=1e-3), batch 64, up to 100
epochs, EarlyStopping(patience=8) on the validation loss; per-epoch train_loss / valid_loss /
valid_accuracy, and the restored checkpoint's best_valid_loss / best_valid_accuracy at the end.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: best valid_loss 0.587 / valid_accuracy 0.737 at epoch 11 (from 1.09 / 0.35), stopped at epoch
19 by patience 8 with valid_loss 0.598 and train_loss 0.49 (dropout on); checkpoint restored (10 s).
"""

import os
import tempfile

import mlflow
import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)


class EarlyStopping:
    """Stop training when the validation loss has not improved for `patience` epochs."""

    def __init__(self, patience=7, delta=0.0, path="checkpoint.pt"):
        self.patience, self.delta, self.path = patience, delta, path
        self.counter, self.best_score, self.early_stop = 0, None, False
        self.val_loss_min = np.inf

    def __call__(self, val_loss, model):
        score = -val_loss
        if self.best_score is None or score > self.best_score + self.delta:
            self.best_score = score
            self.save_checkpoint(val_loss, model)
            self.counter = 0
        else:
            self.counter += 1
            print(f"EarlyStopping counter: {self.counter} out of {self.patience}")
            if self.counter >= self.patience:
                self.early_stop = True

    def save_checkpoint(self, val_loss, model):
        print(f"Validation loss decreased ({self.val_loss_min:.6f} --> {val_loss:.6f}).  Saving model ...")
        torch.save(model.state_dict(), self.path)
        self.val_loss_min = val_loss


def make_wine(n):
    fixed_acidity = rng.normal(7.2, 1.3, n)
    volatile_acidity = rng.gamma(4.0, 0.085, n)
    citric_acid = rng.uniform(0.0, 0.7, n)
    residual_sugar = rng.lognormal(1.0, 0.6, n)
    chlorides = rng.gamma(6.0, 0.009, n)
    free_so2 = rng.gamma(3.0, 10.0, n)
    total_so2 = free_so2 * 2.5 + rng.normal(40, 20, n)
    density = 0.997 + 0.0004 * residual_sugar - 0.001 * rng.random(n)
    ph = 3.3 - 0.05 * (fixed_acidity - 7.2) + rng.normal(0, 0.12, n)
    sulphates = rng.gamma(9.0, 0.07, n)
    alcohol = rng.normal(10.4, 1.1, n)
    x = np.stack(
        [
            fixed_acidity,
            volatile_acidity,
            citric_acid,
            residual_sugar,
            chlorides,
            free_so2,
            total_so2,
            density,
            ph,
            sulphates,
            alcohol,
        ],
        1,
    )
    score = (
        0.9 * (alcohol - 10.4)
        - 3.0 * (volatile_acidity - 0.34)
        + 1.5 * (sulphates - 0.63)
        + 1.2 * np.tanh(citric_acid - 0.35)
        - 0.012 * (total_so2 - 115)
        - 8.0 * (chlorides - 0.054)
        + rng.normal(0, 0.6, n)
    )
    y = np.digitize(score, [-0.1, 0.9])
    return x.astype(np.float32), y


x, y = make_wine(1500)
scaler = StandardScaler().fit(x[:1200])
x_train, x_val = (
    torch.tensor(scaler.transform(x[:1200]), dtype=torch.float32),
    torch.tensor(scaler.transform(x[1200:]), dtype=torch.float32),
)
y_train, y_val = torch.tensor(y[:1200]), torch.tensor(y[1200:])
print("class shares", np.bincount(y) / len(y))
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)
valid_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=64)

model = nn.Sequential(
    nn.Linear(11, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3)
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
checkpoint = os.path.join(tempfile.mkdtemp(), "checkpoint.pt")
early_stopping = EarlyStopping(patience=8, path=checkpoint)


def evaluate():
    model.eval()
    losses, correct = [], 0
    with torch.no_grad():
        for data, target in valid_loader:
            output = model(data)
            losses.append(criterion(output, target).item() * len(target))
            correct += (output.argmax(1) == target).sum().item()
    return sum(losses) / len(y_val), correct / len(y_val)


with mlflow.start_run():
    for epoch in range(1, 101):
        model.train()
        train_losses = []
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(data), target)
            loss.backward()
            optimizer.step()
            train_losses.append(loss.item())
        train_loss = float(np.average(train_losses))
        valid_loss, valid_acc = evaluate()
        mlflow.log_metrics(
            {"train_loss": train_loss, "valid_loss": valid_loss, "valid_accuracy": valid_acc}, step=epoch
        )
        print(f"[{epoch:3d}] train_loss: {train_loss:.5f} valid_loss: {valid_loss:.5f} valid_acc: {valid_acc:.3f}")
        early_stopping(valid_loss, model)
        if early_stopping.early_stop:
            print("Early stopping")
            break
    model.load_state_dict(torch.load(checkpoint))
    best_loss, best_acc = evaluate()
    mlflow.log_metrics({"best_valid_loss": best_loss, "best_valid_accuracy": best_acc})
    print("restored best checkpoint:", round(best_loss, 4), round(best_acc, 3))
