"""A small encoder-decoder nn.Transformer trained with plain Adam at learning_rate 2, the Noam schedule's scale factor passed as the rate itself: the run never learns.

Report: OpenNMT/OpenNMT-py issue #869 "-decay_method noam" ("I tried Transformer without
  [-decay_method noam], and the training does not work at all": `-optim adam -learning_rate 2
  -adam_beta2 0.998 -warmup_steps 8000` with no Noam decay trains at lr 2.0, acc 0.00 and a
  perplexity of 2.7e43; maintainer: "it should work with a regular Adam optimizer / adequate learning
  rate") https://github.com/OpenNMT/OpenNMT-py/issues/869
Setup: a sequence-reversal "translation" task (vocabulary 12 + BOS, sources of 8 tokens, target =
source reversed), nn.Transformer(d_model=64, nhead=4, 1 encoder + 1 decoder layer,
dim_feedforward=128, dropout=0.1, batch_first) with token + learned position embeddings, teacher
forcing with a causal mask, CrossEntropyLoss over target tokens, Adam(lr=2.0, betas=(0.9, 0.998)),
batch 64 over 2000 pairs, 6 epochs; train/loss and train/token_acc logged every 10 steps, val/loss
and val/token_acc (teacher-forced) every epoch.
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: plateau, diverging, oscillating_loss, nonfinite_loss
Fixed (--fix, Adam(lr=2e-3, betas=(0.9, 0.998))): val/token_acc 0.95, val/loss 0.16 after 6 epochs (buggy:
train/loss in the tens to hundreds, 35-80 in the last epochs against ln 12 = 2.48 for a uniform guess,
val/token_acc 0.08-0.09 = chance 1/12) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
VOCAB, BOS, LENGTH = 12, 12, 8


def make(n):
    src = torch.randint(0, VOCAB, (n, LENGTH))
    tgt = src.flip(1)
    return src, tgt


class Seq2Seq(nn.Module):
    def __init__(self, d_model=64):
        super().__init__()
        self.src_emb = nn.Embedding(VOCAB, d_model)
        self.tgt_emb = nn.Embedding(VOCAB + 1, d_model)
        self.pos = nn.Parameter(torch.randn(LENGTH, d_model) * 0.02)
        self.transformer = nn.Transformer(
            d_model, nhead=4, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=128, batch_first=True
        )
        self.out = nn.Linear(d_model, VOCAB)
        self.mask = nn.Transformer.generate_square_subsequent_mask(LENGTH)

    def forward(self, src, tgt_in):
        s = self.src_emb(src) + self.pos
        t = self.tgt_emb(tgt_in) + self.pos
        return self.out(self.transformer(s, t, tgt_mask=self.mask, tgt_is_causal=True))


def shift(tgt):
    return torch.cat([torch.full((len(tgt), 1), BOS), tgt[:, :-1]], 1)


src_train, tgt_train = make(2000)
src_val, tgt_val = make(500)
model = Seq2Seq()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3 if FIX else 2.0, betas=(0.9, 0.998))
step = 0
with mlflow.start_run():
    for epoch in range(6):
        model.train()
        perm = torch.randperm(2000)
        for i in range(0, 2000, 64):
            idx = perm[i : i + 64]
            logits = model(src_train[idx], shift(tgt_train[idx]))
            loss = criterion(logits.reshape(-1, VOCAB), tgt_train[idx].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                acc = (logits.argmax(-1) == tgt_train[idx]).float().mean().item()
                mlflow.log_metrics({"train/loss": loss.item(), "train/token_acc": acc}, step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            logits = model(src_val, shift(tgt_val))
            val_loss = criterion(logits.reshape(-1, VOCAB), tgt_val.reshape(-1)).item()
            val_acc = (logits.argmax(-1) == tgt_val).float().mean().item()
        mlflow.log_metrics({"val/loss": val_loss, "val/token_acc": val_acc}, step=step)
        print(epoch, round(loss.item(), 4), round(val_loss, 4), round(val_acc, 3))
