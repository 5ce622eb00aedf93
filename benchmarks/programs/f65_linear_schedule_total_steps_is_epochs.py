"""get_linear_schedule_with_warmup given num_training_steps=EPOCHS but stepped after every batch: the learning rate reaches 0 after 10 of 940 steps.

Report: huggingface/transformers issue #324 "warmup_linear for BertAdam and OpenAIAdam" ("if `t_total`
  is specified incorrectly (too small), learning rate becomes negative after t_total ... set lr to 0";
  "I just ran into this problem ... a really disturbing and hard to catch issue"); the schedulers now
  clamp the multiplier at 0 past num_training_steps https://github.com/huggingface/transformers/issues/324
Setup: a GRU sentiment classifier in a plain loop: token sequences (vocabulary 80, length 30) whose
label is whether "positive" tokens (0-9) outnumber "negative" ones (10-19); Embedding(80, 32) +
GRU(32, 64) + Linear(64, 2) on the last hidden state, CrossEntropyLoss, AdamW(lr=2e-3,
weight_decay=0.01), `get_linear_schedule_with_warmup(optimizer, num_warmup_steps=2,
num_training_steps=EPOCHS)` with EPOCHS = 10, `scheduler.step()` after every optimizer step (94
batches of 32 an epoch); train/loss and train/lr every 10 steps, val/loss and val/accuracy per epoch.
Expected first: lr_decay_too_fast
Acceptable in top 3: learning_rate_too_low
Symptom: plateau
Fixed (--fix, num_training_steps=EPOCHS * len(train_loader)): val/accuracy 0.99, val/loss 0.021 after 10 epochs (0.957 after 2) (buggy: train/lr 0 from step 10 on, val/accuracy 0.578 and val/loss 0.682 frozen from epoch 0 to 9) (checked; 21 s / 22 s).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import get_linear_schedule_with_warmup

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
EPOCHS = 10


def make(n):
    x = torch.randint(20, 80, (n, 30))
    n_pos = torch.randint(0, 6, (n,))
    n_neg = torch.randint(0, 6, (n,))
    n_neg[n_neg == n_pos] += 1
    for i in range(n):
        pos = torch.randperm(30)
        x[i, pos[: n_pos[i]]] = torch.randint(0, 10, (int(n_pos[i]),))
        x[i, pos[n_pos[i] : n_pos[i] + n_neg[i]]] = torch.randint(10, 20, (int(n_neg[i]),))
    return x, (n_pos > n_neg).long()


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(80, 32)
        self.gru = nn.GRU(32, 64, batch_first=True)
        self.fc = nn.Linear(64, 2)

    def forward(self, x):
        _, h = self.gru(self.embed(x))
        return self.fc(h[-1])


train_loader = DataLoader(TensorDataset(*make(3000)), batch_size=32, shuffle=True)
x_val, y_val = make(600)
model = GRUClassifier()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
total_steps = EPOCHS * len(train_loader) if FIX else EPOCHS
scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=2, num_training_steps=total_steps)
step = 0
with mlflow.start_run():
    for epoch in range(EPOCHS):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if step % 10 == 0:
                mlflow.log_metrics({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]}, step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            val_acc = (out.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"val/loss": val_loss, "val/accuracy": val_acc}, step=step)
        print(f"epoch {epoch}: lr {scheduler.get_last_lr()[0]:.2e} val/loss {val_loss:.4f} val/accuracy {val_acc:.3f}")
