"""A Performance-RNN-style LSTM over MIDI performance events (note-on, note-off, time-shift, velocity) trained on a corpus of 16 short performances: the training loss keeps falling while the evaluation loss turns and climbs from a third of the way in.

Report: magenta/magenta issue #885 "eval loss keeps going up never goes down" ("when training,
  tensorboard is showing that the eval loss has been going up and up and up, while the training loss
  has been going down"; answer: "This could happen if your model is overfitting to your training
  data, which can happen for a variety of reasons including a training set that is too small ... I'd
  suggest training a model with more data or possibly just stopping training early")
  https://github.com/magenta/magenta/issues/885
Setup: the Performance RNN event vocabulary (128 note-on, 128 note-off, 100 time-shift, 32 velocity
events = 388); synthetic piano performances: a melody walking a major scale with chords now and
then, each note a velocity event, note-on(s), a time-shift and note-off(s); 64-event windows;
Embedding(388, 64) -> 2-layer LSTM(256) -> Linear(256, 388) (~1M parameters), CrossEntropyLoss on the
next event, Adam(lr=3e-3), gradient clipping 3.0 (Magenta's default clip_norm), batch 4, 16 training
performances (one 64-event window each, ~1000 events) and 64 evaluation performances, 60 epochs = 240
steps; per-epoch loss / accuracy and eval_loss / eval_accuracy / eval_perplexity with
mlflow.log_metrics at the global step (the names of Magenta's TensorBoard summaries).
Expected first: dataset_too_small
Acceptable in top 3: -
Symptom: overfitting
Fixed (--fix, more data, as the answer suggests: 640 training performances, 2 epochs = 320 steps):
eval_loss 3.094 -> 1.968 and eval_accuracy 0.15 -> 0.39 after 2 epochs, still falling, loss 3.78 ->
2.58 (buggy: eval_loss 4.81 -> best 3.230 at epoch 40 (step 164), then up to 3.644 at epoch 59,
eval_accuracy stuck near 0.26 from epoch 40, while the training loss falls 5.73 -> 0.455 and the
training accuracy reaches 0.93: the 16 windows are memorised) (checked; ~31 s / 26 s CPU, 115 s / 49 s
wall on a 2-core machine loaded by other jobs, OMP_NUM_THREADS=1 as the runner sets).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
NOTE_ON, NOTE_OFF, TIME_SHIFT, VELOCITY = 0, 128, 256, 356
VOCAB, WINDOW = 388, 64
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])


def performance():
    """Events of one synthetic performance, cut to WINDOW + 1 events."""
    key, degree, velocity = rng.integers(0, 12), rng.integers(7, 14), rng.integers(12, 24)
    events = []
    while len(events) < WINDOW + 1:
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2, 0]), 3, 20))
        velocity = int(np.clip(velocity + rng.integers(-2, 3), 4, 31))
        pitch = 48 + key + 12 * (degree // 7) + MAJOR[degree % 7]
        chord = [pitch] + ([pitch - 12, pitch - 8] if rng.random() < 0.2 else [])
        duration = rng.choice([10, 20, 20, 40, 60])
        events.append(VELOCITY + velocity)
        events += [NOTE_ON + p for p in chord]
        events += [TIME_SHIFT + int(duration) - 1] if duration <= 100 else []
        events += [NOTE_OFF + p for p in chord]
    return events[: WINDOW + 1]


n_train = 640 if FIX else 16
train = torch.tensor([performance() for _ in range(n_train)])
evaluation = torch.tensor([performance() for _ in range(64)])


class PerformanceRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
        self.out = nn.Linear(256, VOCAB)

    def forward(self, events):
        hidden, _ = self.lstm(self.embed(events))
        return self.out(hidden)


def loss_and_accuracy(model, batch):
    logits = model(batch[:, :-1])
    target = batch[:, 1:]
    loss = criterion(logits.reshape(-1, VOCAB), target.reshape(-1))
    accuracy = (logits.argmax(-1) == target).float().mean()
    return loss, accuracy


model = PerformanceRNN()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
loader = torch.utils.data.DataLoader(train, batch_size=4, shuffle=True)
epochs = 2 if FIX else 60

with mlflow.start_run():
    mlflow.log_params({"train_performances": n_train, "window": WINDOW, "batch_size": 4, "lr": 3e-3, "clip_norm": 3.0})
    for epoch in range(epochs):
        model.train()
        total, correct = 0.0, 0.0
        for batch in loader:
            optimizer.zero_grad()
            loss, accuracy = loss_and_accuracy(model, batch)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 3.0)
            optimizer.step()
            total += loss.item() * len(batch)
            correct += accuracy.item() * len(batch)
        model.eval()
        with torch.no_grad():
            eval_loss, eval_accuracy = loss_and_accuracy(model, evaluation)
        metrics = {
            "loss": total / n_train,
            "accuracy": correct / n_train,
            "eval_loss": eval_loss.item(),
            "eval_accuracy": eval_accuracy.item(),
            "eval_perplexity": eval_loss.exp().item(),
        }
        mlflow.log_metrics(metrics, step=(epoch + 1) * len(loader))
        print(epoch, {k: round(v, 4) for k, v in metrics.items()})
