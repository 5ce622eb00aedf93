"""Word-level LSTM language model switched from SGD to AdamW, keeping the example's lr=20 and clip 0.25.

Report: salesforce/awd-lstm-lm issue #50 "How can i use Adam optimizer instead of SGD?" (switching
  the LSTM language model's optimiser to Adam while keeping the SGD learning rate of 30: loss nan)
  https://github.com/salesforce/awd-lstm-lm/issues/50 ; likewise OpenNMT/OpenNMT-py #805 "Adam
  seems to be broken" (Adam at the SGD default lr 1: ppl stays high) https://github.com/OpenNMT/OpenNMT-py/issues/805
Setup as in issue 11: Embedding-LSTM-Linear LM, token-id labels, AdamW(lr=20),
clip_grad_norm_(0.25), per-batch `loss` every 10 batches, per-epoch val_loss / val_ppl.
Expected first: learning_rate_too_high
Acceptable in top 3: gradient_clipping_masks_lr
Symptom: diverging, plateau
Fixed (--fix, lr=2e-3): val_loss 2.44 after 4 epochs, well below ln 200 = 5.3 (checked).
"""

import math
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

VOCAB, BPTT, BATCH = 200, 20, 16
# a Zipf-distributed "corpus" with a bigram structure the model can learn
probs = 1.0 / torch.arange(1, VOCAB + 1).float()
nxt = torch.multinomial(probs.repeat(VOCAB, 1), 3, replacement=True)  # each word has 3 likely successors


def corpus(n):
    out = [0]
    for _ in range(n - 1):
        out.append(
            int(nxt[out[-1], torch.randint(0, 3, ()).item()])
            if torch.rand(()) < 0.8
            else int(torch.multinomial(probs, 1))
        )
    return torch.tensor(out)


train_data = corpus(16000).view(BATCH, -1).t().contiguous()
val_data = corpus(3200).view(BATCH, -1).t().contiguous()


class RNNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(VOCAB, 64)
        self.rnn = nn.LSTM(64, 64)
        self.decoder = nn.Linear(64, VOCAB)

    def forward(self, x, hidden=None):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


model = RNNModel()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3 if FIX else 20)


def evaluate():
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, val_data.size(0) - 1, BPTT):
            x, y = val_data[i : i + BPTT], val_data[i + 1 : i + 1 + BPTT]
            out, _ = model(x[: len(y)])
            total += criterion(out.view(-1, VOCAB), y.reshape(-1)).item() * len(y)
            n += len(y)
    return total / n


with mlflow.start_run():
    step = 0
    for epoch in range(4):
        model.train()
        hidden = None
        for batch, i in enumerate(range(0, train_data.size(0) - 1, BPTT)):
            x, y = train_data[i : i + BPTT], train_data[i + 1 : i + 1 + BPTT]
            if hidden is not None:
                hidden = tuple(h.detach() for h in hidden)
            optimizer.zero_grad()
            out, hidden = model(x[: len(y)], hidden)
            loss = criterion(out.view(-1, VOCAB), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            optimizer.step()
            step += 1
            if batch % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
        val_loss = evaluate()
        mlflow.log_metrics({"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50))}, step=step)
        print(f"epoch {epoch} val_loss {val_loss:.3f}")
