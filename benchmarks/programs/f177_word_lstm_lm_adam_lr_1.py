"""A word-level LSTM language model trained with Adam at the learning rate 1.0 its configuration file set (a rate meant for plain SGD): the loss jumps from ln 1000 = 6.9 to about 60 within 10 steps and stays there, while Adam's default 0.001 learns the corpus.

Report: rajveermalviya/language-modeling issue #3 "Adam's learning rate" ("the loss during training didn't really
  went down even after many epochs. I think this is because you use learning rate of 1.0 in the config file. After
  I use Adam optimizer with it's default learning rate (which is 0.001), the training get much better"; the author
  updated the config) https://github.com/rajveermalviya/language-modeling/issues/3
Setup: a PTB-style word-level language model: a synthetic corpus over a 1,000-word vocabulary drawn from a sparse
first-order Markov chain (each word followed by one of 12 words, Zipf-weighted), 90,000 training / 20,000
validation tokens, batchified into 32 streams, truncated back-propagation over 35 steps (hidden state carried and
detached); Embedding(1000, 128) - LSTM(128, 256, 1 layer) - Dropout(0.2) - Linear(256, 1000); CrossEntropyLoss;
Adam(lr 1.0 as the config; --fix: 0.001); 3 epochs (243 steps); `loss` every 10 steps, per epoch val_loss and
val_perplexity.
Expected first: learning_rate_too_high
Acceptable in top 3: -
Symptom: diverging
Fixed (--fix, Adam's default 0.001, as the report): loss 6.91 -> 3.57 (falling steadily, still falling),
val_loss 5.40 -> 4.05 -> 3.52, val_perplexity 220 -> 34 (buggy: loss 6.91 at step 0, 56.0 at step 10, then
56-66 to the end; val_loss 55.1 -> 59.1 -> 61.0, rising each epoch, val_perplexity 9e23 -> 3e26) (checked; 90 s /
69 s wall, 43 s / 34 s CPU, on the 2-core machine shared by three helpers, OMP_NUM_THREADS=1).
"""

import math
import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
config = {"vocab_size": 1000, "embedding_dim": 128, "hidden_size": 256, "dropout": 0.2, "batch_size": 32,
          "seq_len": 35, "epochs": 3, "learning_rate": 0.001 if FIX else 1.0}  # fmt: skip

V = config["vocab_size"]
successors = np.stack([rng.choice(V, size=12, replace=False) for _ in range(V)])
weights = 1.0 / np.arange(1, 13) ** 1.2
weights /= weights.sum()


def make_corpus(n):
    tokens = np.empty(n, dtype=np.int64)
    tokens[0] = rng.integers(V)
    picks = rng.choice(12, size=n, p=weights)
    for i in range(1, n):
        tokens[i] = successors[tokens[i - 1], picks[i]]
    return torch.tensor(tokens)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()


class RNNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(V, config["embedding_dim"])
        self.rnn = nn.LSTM(config["embedding_dim"], config["hidden_size"])
        self.drop = nn.Dropout(config["dropout"])
        self.decoder = nn.Linear(config["hidden_size"], V)

    def forward(self, x, hidden):
        output, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(self.drop(output)), hidden


def evaluate(model, data):
    model.eval()
    total, count, hidden = 0.0, 0, None
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, config["seq_len"]):
            seq_len = min(config["seq_len"], data.size(0) - 1 - i)
            x, y = data[i : i + seq_len], data[i + 1 : i + 1 + seq_len]
            output, hidden = model(x, hidden)
            total += nn.functional.cross_entropy(output.view(-1, V), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    return total / count


train_data = batchify(make_corpus(90000), config["batch_size"])
val_data = batchify(make_corpus(20000), 10)
model = RNNModel()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"])

with mlflow.start_run():
    mlflow.log_params(config)
    step = 0
    for epoch in range(config["epochs"]):
        model.train()
        hidden = None
        for i in range(0, train_data.size(0) - 1, config["seq_len"]):
            seq_len = min(config["seq_len"], train_data.size(0) - 1 - i)
            x, y = train_data[i : i + seq_len], train_data[i + 1 : i + 1 + seq_len]
            if hidden is not None:
                hidden = tuple(h.detach() for h in hidden)
            optimizer.zero_grad()
            output, hidden = model(x, hidden)
            loss = criterion(output.view(-1, V), y.reshape(-1))
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
            step += 1
        val_loss = evaluate(model, val_data)
        mlflow.log_metrics({"val_loss": val_loss, "val_perplexity": math.exp(val_loss)}, step=step)
        print(f"epoch {epoch + 1} step {step} loss {loss.item():.3f} val_loss {val_loss:.3f}")
