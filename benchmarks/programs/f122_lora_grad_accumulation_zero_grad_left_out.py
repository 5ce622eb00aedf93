"""A LoRA fine-tune of a small GPT-2 classifier with gradient accumulation whose training step never calls optimizer.zero_grad(): every optimizer step after the first uses the sum of all the gradients since the start, and the adapters and head drift away from anything the current batches say.

Report: tenstorrent/tt-blacksmith pull request #711 "[Trainer] Fix Bug Where Zero Grad was Left Out" ("In
  Trainer class training for LoRA LLM, we forgot to do `zero_grad` on optimizer after each optimizer step"; the
  fix passes zero_grad=True to the trainer's optimizer step) https://github.com/tenstorrent/tt-blacksmith/pull/711
Setup: as the trainer's LoRA path (training_model_type "lora", gradient_accumulation_steps, AdamW, validation
every val_steps_freq steps) on an intent-classification set like its banking77 one: GPT2ForSequenceClassification
from a small GPT2Config (2 layers, 4 heads, 64-d, vocabulary 300), its weights frozen, LoRA adapters (r=8,
alpha=16, written by hand as peft would add them) on every attention c_attn and the classification head
trainable, 8 intents (each marked by a few keywords among filler tokens), 1,600 training / 400 validation
sentences of 16 tokens, micro-batches of 8, gradient_accumulation_steps 4 (each micro-batch loss divided by
4), AdamW(lr=1e-3, weight_decay=0.0), 4 epochs (200 optimizer steps); `train/loss` every 10 optimizer steps,
`val/loss` and `val/accuracy` every 50.
Expected first: gradients_not_zeroed
Acceptable in top 3: -
Symptom: oscillating_loss, diverging
Fixed (--fix, optimizer.zero_grad() after each optimizer step, as the pull request does): val/accuracy 0.10 ->
0.31 -> 0.47 -> 0.60 -> 0.68 at optimizer steps 0/50/100/150/200, val/loss 2.09 -> 1.92 -> 1.51 -> 1.22 -> 0.99,
train/loss 2.09 -> 1.19, still improving (buggy: val/accuracy 0.10 -> 0.33 -> 0.33 -> 0.43 -> 0.26, val/loss
2.09 -> 1.74 -> 1.93 -> 1.77 -> 2.21, above ln 8 = 2.08 at the end; train/loss 2.09 -> 2.04 at step 30, then up
to 2.30 and 2.41 at steps 190-200) (checked; ~57 s wall each on the loaded 2-core machine, ~25 s CPU).
"""

import math
import sys

import mlflow
import torch
from torch import nn
from transformers import GPT2Config, GPT2ForSequenceClassification

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
VOCAB, SEQ, N_INTENTS, PAD = 300, 16, 8, 0
MICRO_BS, ACCUM, EPOCHS, LR, VAL_FREQ, LOG_FREQ = 8, 4, 4, 1e-3, 50, 10
KEYWORDS = torch.randperm(VOCAB - 1)[: N_INTENTS * 4].reshape(N_INTENTS, 4) + 1


def sentences(n):
    y = torch.randint(0, N_INTENTS, (n,))
    x = torch.randint(1, VOCAB, (n, SEQ))
    for k in range(n):
        pos = torch.randperm(SEQ)[:3]
        x[k, pos] = KEYWORDS[y[k], torch.randint(0, 4, (3,))]
    return x, y


x_train, y_train = sentences(1600)
x_val, y_val = sentences(400)


class LoRAConv1D(nn.Module):
    """GPT-2's Conv1D (x @ W + b, W of shape (in, out)) plus a trainable low-rank update B A, B zero-initialised."""

    def __init__(self, base, r=8, alpha=16):
        super().__init__()
        self.base = base
        d_in, d_out = base.weight.shape
        self.lora_A = nn.Parameter(torch.randn(d_in, r) / math.sqrt(d_in))
        self.lora_B = nn.Parameter(torch.zeros(r, d_out))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A @ self.lora_B) * self.scaling


config = GPT2Config(
    vocab_size=VOCAB, n_positions=SEQ, n_embd=64, n_layer=2, n_head=4, num_labels=N_INTENTS, pad_token_id=PAD
)
model = GPT2ForSequenceClassification(config)
for p in model.parameters():
    p.requires_grad = False
for block in model.transformer.h:
    block.attn.c_attn = LoRAConv1D(block.attn.c_attn)
for p in model.score.parameters():  # modules_to_save: the new classification head trains too
    p.requires_grad = True
trainable = [p for p in model.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(trainable, lr=LR, weight_decay=0.0)
loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x_train, y_train), batch_size=MICRO_BS, shuffle=True
)


def validate():
    model.eval()
    with torch.no_grad():
        out = model(input_ids=x_val, labels=y_val)
    model.train()
    return out.loss.item(), (out.logits.argmax(-1) == y_val).float().mean().item()


def optimizer_step(zero_grad):
    optimizer.step()
    if zero_grad:
        optimizer.zero_grad()


with mlflow.start_run():
    mlflow.log_params(
        {
            "training_model_type": "lora",
            "lora_r": 8,
            "lora_alpha": 16,
            "learning_rate": LR,
            "batch_size": MICRO_BS,
            "gradient_accumulation_steps": ACCUM,
            "num_epochs": EPOCHS,
            "trainable_params": sum(p.numel() for p in trainable),
        }
    )
    model.train()
    step, micro, running = 0, 0, []
    val_loss, val_acc = validate()
    mlflow.log_metrics({"val/loss": val_loss, "val/accuracy": val_acc}, step=0)
    for epoch in range(EPOCHS):
        for xb, yb in loader:
            loss = model(input_ids=xb, labels=yb).loss / ACCUM
            loss.backward()
            running.append(loss.item() * ACCUM)
            micro += 1
            if micro % ACCUM:
                continue
            optimizer_step(zero_grad=FIX)
            step += 1
            if step % LOG_FREQ == 0:
                mlflow.log_metric("train/loss", sum(running) / len(running), step=step)
                running = []
            if step % VAL_FREQ == 0:
                val_loss, val_acc = validate()
                mlflow.log_metrics({"val/loss": val_loss, "val/accuracy": val_acc}, step=step)
                print(step, round(val_loss, 4), round(val_acc, 4))
