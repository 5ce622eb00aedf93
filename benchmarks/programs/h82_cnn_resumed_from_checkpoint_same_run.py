"""A small CNN whose training job is cut off after epoch 5 and resumed from its last checkpoint (model, optimizer, scheduler and epoch restored, fresh objects built in the new session) into the same MLflow run, as the PyTorch recipe for saving and loading a general checkpoint does it: the metrics continue from step 5.

Report: healthy, in the style of the PyTorch recipe "Saving and loading a general checkpoint in PyTorch"
  https://pytorch.org/tutorials/recipes/recipes/saving_and_loading_a_general_checkpoint.html (`torch.save({'epoch':
  epoch, 'model_state_dict': ..., 'optimizer_state_dict': ..., 'loss': loss}, PATH)`, then `model.load_state_dict`,
  `optimizer.load_state_dict`, `model.train()` to resume) and of MLflow's resuming of a run by its id
  (`mlflow.start_run(run_id=...)`, the id kept in the checkpoint)
Setup: synthetic 1x16x16 grey images of 5 classes (a class-specific 8x8 pattern shifted by up to 4 pixels, at a
random contrast, under noise); Conv(1,16,3)-BN-ReLU-MaxPool-Conv(16,32,3)-BN-ReLU-MaxPool-Flatten-Dropout(0.25)-Linear(512,5);
CrossEntropyLoss, SGD(lr=0.01, momentum=0.9, weight_decay=5e-4), CosineAnnealingLR(T_max=12) stepped per
epoch, batch 64, 1500 training / 500 validation images, 12 epochs planned; a checkpoint written after every
epoch; session 1 stops after epoch 5 (a preempted job), session 2 builds a new model, optimizer and scheduler,
loads the checkpoint and trains epochs 6-12 into the same run; per epoch train_loss, val_loss, val_acc and lr
(step = epoch).
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: val_acc 0.36 -> 0.85 (epoch 3) -> 0.84 at the checkpoint of epoch 5; resumed at lr 0.0063 with the
optimizer's momentum buffers restored: 0.89 at once, 0.91-0.93 from epoch 8, 0.924 at the end; val_loss 1.34 ->
0.43 (epoch 5) -> 0.25, noisy (0.27 -> 0.32 -> 0.25) in the resumed half; train_loss 1.63 -> 0.16; lr logged
0.01 -> 0.0002 on the cosine, continuous across the resume (checked; 32 s CPU, 49 s wall on a 2-core machine
shared with other helpers; the recorder said the resumed session's optimizer params (lr 0.0063 against the
0.01 logged by session 1) could not be written to the run).
"""

import os
import tempfile

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
N_CLASSES, EPOCHS, STOP_AFTER = 5, 12, 5
PATH = os.path.join(tempfile.mkdtemp(), "checkpoint.pt")

patterns = (torch.rand(N_CLASSES, 1, 8, 8) > 0.6).float()


def make(n):
    y = torch.randint(0, N_CLASSES, (n,))
    x = 0.5 * torch.randn(n, 1, 16, 16)
    for i in range(n):
        r, c = torch.randint(2, 7, (2,)).tolist()
        x[i, :, r : r + 8, c : c + 8] += patterns[y[i]] * (0.8 + 0.6 * torch.rand(()))
    return x, y


x_train, y_train = make(1500)
x_val, y_val = make(500)


def build():
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(32 * 4 * 4, N_CLASSES),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
    return model, optimizer, scheduler


criterion = nn.CrossEntropyLoss()
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=64, shuffle=True)


def train_epochs(model, optimizer, scheduler, start_epoch, stop_epoch, run_id):
    for epoch in range(start_epoch, stop_epoch):
        model.train()
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        metrics = {"train_loss": total / len(x_train), "val_loss": val_loss, "val_acc": val_acc, "lr": lr}
        mlflow.log_metrics(metrics, step=epoch)
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
        torch.save(
            {
                "epoch": epoch,
                "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(),
                "scheduler_state_dict": scheduler.state_dict(),
                "loss": total / len(x_train),
                "mlflow_run_id": run_id,
            },
            PATH,
        )


# session 1: the job that gets preempted after epoch STOP_AFTER
with mlflow.start_run() as run:
    mlflow.log_params({"lr": 0.01, "momentum": 0.9, "epochs": EPOCHS, "batch_size": 64})
    model, optimizer, scheduler = build()
    train_epochs(model, optimizer, scheduler, 0, STOP_AFTER, run.info.run_id)
del model, optimizer, scheduler
print("-- job preempted; resuming from", PATH)

# session 2: a fresh process would start here
model, optimizer, scheduler = build()
checkpoint = torch.load(PATH)
model.load_state_dict(checkpoint["model_state_dict"])
optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
start = checkpoint["epoch"] + 1
with mlflow.start_run(run_id=checkpoint["mlflow_run_id"]):
    mlflow.set_tag("resumed_from_epoch", start)
    train_epochs(model, optimizer, scheduler, start, EPOCHS, checkpoint["mlflow_run_id"])
