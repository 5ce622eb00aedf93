"""An image classifier trained with the HF Trainer and a custom `StepLR(step_size=3, gamma=0.5)` handed in through `optimizers=(optimizer, scheduler)`, meant as "halve the rate every 3 epochs": the Trainer steps the scheduler after every optimizer step, so the rate is halved every 3 batches and is 1/512 of its start after 27 batches, within the first epoch.

Report: nodefluxio/vortex issue #58 "[BUG] Scheduler.step() placement in default trainer" ("Pytorch original
  scheduler have different application of scheduler step (some of them in each batch update, the others only
  called once per epoch). However in default trainer, it always called per batch update"; expected: "Every
  scheduler must apply the correct behavior of when to call the scheduler step()")
  https://github.com/nodefluxio/vortex/issues/58
Setup: the same trap in the HF Trainer, which calls `lr_scheduler.step()` after every optimizer step: 1x16x16
synthetic images of 6 classes (a class-specific 10x10 stroke pattern at a random offset, under noise), a small
CNN written as an nn.Module that returns {"loss", "logits"} (Conv(1,16,3)-ReLU-MaxPool-Conv(16,32,3)-ReLU-MaxPool-
Linear(512,64)-ReLU-Linear(64,6), CrossEntropyLoss), SGD(lr=0.05, momentum=0.9) with StepLR(step_size=3,
gamma=0.5) as the epoch-based recipe writes it, passed as `optimizers=(optimizer, scheduler)`; 1000 training /
400 validation images, batch 32 (32 steps an epoch), 6 epochs, logging_steps=10, evaluation every epoch with
accuracy from compute_metrics, report_to mlflow (loss, learning_rate, eval_loss, eval_accuracy).
Expected first: lr_decay_too_fast
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, step_size expressed in optimizer steps, 3 epochs x 32 steps, so the rate halves every 3
epochs as meant): learning_rate 0.05 -> 0.025 at epoch 3,
eval_accuracy 0.17 -> 0.33 -> 0.45 -> 0.54 -> 0.65 -> 0.615 over the 6 epochs (best at epoch 5), eval_loss 1.784 ->
0.908, loss 1.788 -> 0.69, train_loss 1.265 (buggy: learning_rate 0.00625 at step 10, 1e-4 by step 30, 5e-21 at
the end; loss 1.789-1.790 (ln 6 = 1.792) at every log, eval_loss 1.797 and eval_accuracy 0.16 at every epoch,
train_loss 1.788) (checked; 38 s / 41 s wall, 17 s / 18 s CPU, OMP_NUM_THREADS=1, 2 shared cores).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainingArguments

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
N_CLASSES, S = 6, 16
templates = np.zeros((N_CLASSES, 10, 10), np.float32)
for c in range(N_CLASSES):  # a few random strokes per class
    for _ in range(3):
        r0, c0 = rng.integers(0, 10, 2)
        dr, dc = rng.choice([-1, 0, 1], 2)
        for k in range(6):
            r, q = r0 + k * dr, c0 + k * dc
            if 0 <= r < 10 and 0 <= q < 10:
                templates[c, r, q] = 1.0


class StrokeImages(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = np.random.default_rng(seed)
        self.y = g.integers(0, N_CLASSES, n)
        self.x = g.normal(0, 0.5, (n, 1, S, S)).astype(np.float32)
        for i, c in enumerate(self.y):
            dr, dc = g.integers(0, S - 10 + 1, 2)
            self.x[i, 0, dr : dr + 10, dc : dc + 10] += templates[c]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": torch.from_numpy(self.x[i]), "labels": torch.tensor(int(self.y[i]))}


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, N_CLASSES))
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, pixel_values, labels=None):
        logits = self.head(self.features(pixel_values))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = self.criterion(logits, labels)
        return out


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


train_ds, val_ds = StrokeImages(1000, seed=1), StrokeImages(400, seed=2)
model = SmallCNN()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
steps_per_epoch = -(-len(train_ds) // 32)
# "halve the learning rate every 3 epochs"
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3 * steps_per_epoch if FIX else 3, gamma=0.5)

args = TrainingArguments(
    output_dir="out",
    num_train_epochs=6,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=200,
    eval_strategy="epoch",
    logging_steps=10,
    save_strategy="no",
    report_to=["mlflow"],
    use_cpu=True,
    disable_tqdm=True,
    seed=0,
)
trainer = Trainer(
    model=model,
    args=args,
    train_dataset=train_ds,
    eval_dataset=val_ds,
    compute_metrics=compute_metrics,
    optimizers=(optimizer, scheduler),
)
trainer.train()
print(trainer.evaluate())
