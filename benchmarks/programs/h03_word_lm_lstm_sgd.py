"""Word-level LSTM language model exactly as pytorch/examples word_language_model trains it: SGD lr 20, clip 0.25.

Report: healthy, in the style of https://github.com/pytorch/examples/tree/main/word_language_model
Setup: Embedding-LSTM-Linear over a Zipf-distributed corpus of token ids (labels are the next
token ids), plain SGD by hand (p.data.add_(p.grad, alpha=-lr)) with lr=20 and
clip_grad_norm_(0.25), lr divided by 4 when val_loss stops improving, `loss` every 10 batches,
val_loss / val_ppl per epoch.
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: val_loss falls from ~5.3 (ln 200) to ~2.3 in 4 epochs.
"""

import math

import mlflow
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)

VOCAB, BPTT, BATCH = 200, 20, 16
probs = 1.0 / torch.arange(1, VOCAB + 1).float()
nxt = torch.multinomial(probs.repeat(VOCAB, 1), 3, replacement=True)


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
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, x, hidden=None):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


model = RNNModel()
criterion = nn.CrossEntropyLoss()
lr = 20.0


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
    best, step = None, 0
    for epoch in range(4):
        model.train()
        hidden = None
        for batch, i in enumerate(range(0, train_data.size(0) - 1, BPTT)):
            x, y = train_data[i : i + BPTT], train_data[i + 1 : i + 1 + BPTT]
            if hidden is not None:
                hidden = tuple(h.detach() for h in hidden)
            model.zero_grad()
            out, hidden = model(x[: len(y)], hidden)
            loss = criterion(out.view(-1, VOCAB), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            step += 1
            if batch % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
        val_loss = evaluate()
        mlflow.log_metrics({"val_loss": val_loss, "val_ppl": math.exp(val_loss)}, step=step)
        print(epoch, val_loss)
        if best is None or val_loss < best:
            best = val_loss
        else:
            lr /= 4.0
