"""A Keras-style fit loop: a progress-bar running mean of the epoch's loss logged every 50 steps, validation at each epoch end.

Report: healthy, in the style of the Keras `model.fit` progress bar (the `loss` shown is the running
  mean of the current epoch, reset at each epoch; `val_loss` / `val_accuracy` at the end of each
  epoch) https://keras.io/api/models/model_training_apis/#fit-method
Setup: 24 standardised features, 6 classes from a random teacher MLP (label noise 5%), MLP 24-128-64-6,
CrossEntropyLoss, Adam(lr=1e-3), batch 32, 8 epochs; every 50 steps `loss` / `accuracy` = the running
means since the start of the epoch (a saw-tooth at every epoch start), per epoch `val_loss` / `val_accuracy`.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_accuracy 0.85, val_loss 0.535 after 8 epochs (running-mean loss 0.49 in the last epoch; 5% label noise).
"""

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

teacher = nn.Sequential(nn.Linear(24, 32), nn.Tanh(), nn.Linear(32, 6))


def make(n):
    x = torch.randn(n, 24)
    with torch.no_grad():
        y = teacher(x).argmax(1)
    noisy = torch.rand(n) < 0.05
    y[noisy] = torch.randint(0, 6, (int(noisy.sum()),))
    return x, y


x_train, y_train = make(4000)
x_val, y_val = make(800)
model = nn.Sequential(nn.Linear(24, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 6))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
steps_per_epoch = 4000 // 32
with mlflow.start_run():
    global_step = 0
    for epoch in range(8):
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        perm = torch.randperm(4000)
        for b in range(steps_per_epoch):
            idx = perm[b * 32 : (b + 1) * 32]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = criterion(out, y_train[idx])
            loss.backward()
            optimizer.step()
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
            global_step += 1
            if (b + 1) % 50 == 0:
                mlflow.log_metrics({"loss": loss_sum / seen, "accuracy": correct / seen}, step=global_step)
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_accuracy": val_acc}, step=global_step)
        print(
            f"Epoch {epoch + 1}/8 - loss: {loss_sum / seen:.4f} - accuracy: {correct / seen:.4f} - val_loss: {val_loss:.4f} - val_accuracy: {val_acc:.4f}"
        )
