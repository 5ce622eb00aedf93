"""A character-level language model whose untied output head is initialised N(0, 1), as transformers' T5 initialises an untied lm_head: behind a LayerNorm of width 128 the first logits have a spread of ~11 and the first loss is 27 where ln 60 = 4.1 is expected.

Report: huggingface/transformers pull request #26441 "[T5] lm_head weights initialization: set variance to
  reciprocal of hidden dim" ("lm_head weights were initialized with variance of 1, and it output activations
  with variance ~= hidden_dim ... resulted in initial cross-entropy loss of ~110, which is Very High";
  with variance 1/hidden_dim the first loss is ~11, the ln of the vocabulary) https://github.com/huggingface/transformers/pull/26441 ;
  also PiotrNawrot/nanoT5 issue #25 "nanoT5 initializes lm_head weights with 768x too much variance,
  probably" https://github.com/PiotrNawrot/nanoT5/issues/25
Setup: a plain PyTorch loop; sequences of 32 characters over 60 symbols from a fixed random bigram chain
(entropy floor 1.97 nats a character); Embedding(60, 128) + GRU(128, 128) + LayerNorm(128) + an untied
Linear(128, 60, bias=False) head re-initialised with `nn.init.normal_(lm_head.weight, mean=0.0, std=1.0)`
(T5's `_init_weights` for an untied head, factor 1.0), CrossEntropyLoss, Adam(lr=3e-3), batch 32,
1200 training / 300 validation sequences, 3 epochs; train_loss every 5 steps, val_loss / val_ppl per epoch.
Expected first: initial_loss_mismatch
Acceptable in top 3: bad_weight_init
Symptom: initial_loss_mismatch
Fixed (--fix, std = 128 ** -0.5 as the pull request proposes): first train_loss 4.70, val_loss 2.126 -> 2.061 -> 2.053 (val_ppl 7.79; the floor is 1.97) (buggy: first train_loss 27.4, 10.0 five steps later, val_loss 3.175 -> 2.506 -> 2.417 (val_ppl 11.2): 0.45 nats above the floor against the fix's 0.08) (checked; 101 s / 73 s on a machine loaded 3x over its 2 cores).
"""

import math
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
VOCAB, LENGTH, HIDDEN = 60, 32, 128
transitions = torch.softmax(torch.randn(VOCAB, VOCAB) * 2.5, 1)


def make(n):
    x = torch.zeros(n, LENGTH + 1, dtype=torch.long)
    x[:, 0] = torch.randint(0, VOCAB, (n,))
    for t in range(LENGTH):
        x[:, t + 1] = torch.multinomial(transitions[x[:, t]], 1).squeeze(1)
    return x[:, :-1], x[:, 1:]


class CharLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.final_norm = nn.LayerNorm(HIDDEN)
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)
        std = HIDDEN**-0.5 if FIX else 1.0
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=std)

    def forward(self, x):
        out, _ = self.gru(self.embed(x))
        return self.lm_head(self.final_norm(out))


x_train, y_train = make(1200)
x_val, y_val = make(300)
model = CharLM()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
step = 0
with mlflow.start_run():
    for epoch in range(3):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 32):
            idx = perm[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]).reshape(-1, VOCAB), y_train[idx].reshape(-1))
            loss.backward()
            optimizer.step()
            if step % 5 == 0:
                mlflow.log_metric("train_loss", loss.item(), step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(x_val).reshape(-1, VOCAB), y_val.reshape(-1)).item()
        mlflow.log_metrics({"val_loss": val_loss, "val_ppl": math.exp(val_loss)}, step=step)
        print(f"epoch {epoch}: val_loss {val_loss:.3f} val_ppl {math.exp(val_loss):.2f}")
