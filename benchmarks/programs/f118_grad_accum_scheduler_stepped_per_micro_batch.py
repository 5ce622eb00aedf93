"""A small Transformer review classifier trained with gradient accumulation in a hand-written loop: the linear warm-up/decay schedule is sized in optimizer steps, but `lr_scheduler.step()` sits outside the accumulation `if` and runs on every micro-batch, so the learning rate reaches 0 after an eighth of the run.

Report: huggingface/accelerate issue #963 "Scheduler always steps when training with gradient accumulation"
  ("When training a model with gradient accumulation scheduler modifies learning rate at every step, even when
  `optimiser.step` was not performed"; labelled bug, fixed by pull request #999 "Fix scheduler incorrect steps
  when gradient accumulation enabled") https://github.com/huggingface/accelerate/issues/963
Setup: as the transformers `*_no_trainer` examples size it: num_update_steps_per_epoch =
ceil(len(train_dataloader) / gradient_accumulation_steps), max_train_steps = epochs x that,
get_linear_schedule_with_warmup(optimizer, 10% warm-up, max_train_steps); micro-batches of 8, 8 accumulation
steps (effective batch 64), loss / 8 backward on each micro-batch, optimizer.step() and zero_grad() every 8th,
but lr_scheduler.step() after every micro-batch. Model: Embedding(40 words, 64) + learned positions, 2
TransformerEncoderLayers (d_model 64, 4 heads, feed-forward 128, dropout 0.1, batch_first), mean pooling,
Linear(64, 2); CrossEntropyLoss, AdamW(lr=5e-4, weight_decay=0.01); synthetic reviews of 24 words: 8 positive
and 8 negative words, a "not" that flips the polarity of the word after it, and fillers, label = sign of the
summed polarity; 3,000 training / 600 validation reviews, 6 epochs; per optimizer step `train_loss` (the
accumulated loss) and `lr`, per epoch val_loss and val_accuracy.
Expected first: lr_decay_too_fast
Acceptable in top 3: learning_rate_too_low
Symptom: plateau, not_converged
Fixed (--fix, lr_scheduler.step() inside the accumulation `if`, after optimizer.step()): lr warms up to 5e-4
over 28 optimizer steps and decays linearly over the 282; val_accuracy 0.735 -> 0.752 -> 0.788 -> 0.783,
val_loss 0.573 -> 0.487 -> 0.466 -> 0.469 after 6 epochs, training loss 0.66 -> ~0.45 (buggy: the schedule's
282 steps are spent by micro-batch 282 of 2,250, three quarters into the first epoch, the lr is 0 from there
on; val_accuracy 0.690 and val_loss 0.6207 at every epoch, the training loss flat at 0.60-0.66 after the
35 optimizer steps it got; the labels are half positive) (checked; ~45 s CPU each with the recorder on, 6-7 min wall on a machine loaded by three
helpers, OMP_NUM_THREADS=1).
"""

import math
import sys

import mlflow
import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
VOCAB, SEQ, EPOCHS, MICRO_BATCH, ACCUM = 40, 24, 6, 8, 8
NOT = 1
polarity = torch.zeros(VOCAB)
polarity[2:10], polarity[10:18] = 1.0, -1.0  # 8 positive words, 8 negative words, the rest are fillers


def make(n):
    x = torch.randint(18, VOCAB, (n, SEQ))
    sentiment = torch.randint(2, 18, (n, SEQ))
    use = torch.rand(n, SEQ) < 0.3
    x = torch.where(use, sentiment, x)
    negate = (torch.rand(n, SEQ) < 0.12) & use.roll(-1, dims=1)
    negate[:, -1] = False
    x = torch.where(negate, torch.full_like(x, NOT), x)
    pol = polarity[x]
    flip = torch.cat([torch.zeros(n, 1, dtype=torch.bool), x[:, :-1] == NOT], dim=1)
    score = torch.where(flip, -pol, pol).sum(1) + 0.1 * torch.randn(n)
    return x, (score > 0).long()


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, 64)
        self.pos = nn.Parameter(torch.randn(1, SEQ, 64) * 0.02)
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 2)

    def forward(self, x):
        return self.head(self.encoder(self.tok(x) + self.pos).mean(1))


x_train, y_train = make(3000)
x_val, y_val = make(600)
train_dataloader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x_train, y_train), batch_size=MICRO_BATCH, shuffle=True
)
model = Classifier()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
num_update_steps_per_epoch = math.ceil(len(train_dataloader) / ACCUM)
max_train_steps = EPOCHS * num_update_steps_per_epoch
lr_scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * max_train_steps), max_train_steps)

with mlflow.start_run():
    mlflow.log_params(
        {
            "learning_rate": 5e-4,
            "per_device_batch_size": MICRO_BATCH,
            "gradient_accumulation_steps": ACCUM,
            "max_train_steps": max_train_steps,
            "num_warmup_steps": int(0.1 * max_train_steps),
        }
    )
    completed_steps = 0
    for epoch in range(EPOCHS):
        model.train()
        accumulated = 0.0
        for step, (x, y) in enumerate(train_dataloader):
            loss = criterion(model(x), y) / ACCUM
            loss.backward()
            accumulated += loss.item()
            if (step + 1) % ACCUM == 0 or step == len(train_dataloader) - 1:
                optimizer.step()
                if FIX:
                    lr_scheduler.step()
                optimizer.zero_grad()
                completed_steps += 1
                mlflow.log_metrics(
                    {"train_loss": accumulated, "lr": optimizer.param_groups[0]["lr"]}, step=completed_steps
                )
                accumulated = 0.0
            if not FIX:
                lr_scheduler.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = criterion(logits, y_val).item()
            val_accuracy = (logits.argmax(1) == y_val).float().mean().item()
        mlflow.log_metrics({"val_loss": val_loss, "val_accuracy": val_accuracy}, step=completed_steps)
        print(
            epoch, f"val_loss {val_loss:.4f} val_accuracy {val_accuracy:.3f} lr {optimizer.param_groups[0]['lr']:.2e}"
        )
