"""The pytorch/examples word-language-model trained with `--model Transformer` at the script's defaults, which were set for its LSTM: plain SGD at lr 20 with the gradient clipped to 0.25. The Transformer collapses onto the most frequent words.

Report: pytorch/examples issue #846 "Transformer in Word Language Model predicts the same token at different
  steps" (greedy generation gives ", , , , ,": "it always picks the most frequently appearing token in the
  data"; the reporter's fix: "After I removed this line of code [clip_grad_norm_], and set learning rate to
  0.1, the generated text with argmax is very fluent") https://github.com/pytorch/examples/issues/846
Setup: as word_language_model/main.py and model.py: TransformerModel (Embedding * sqrt(ninp), sinusoidal
PositionalEncoding, 2 post-norm TransformerEncoderLayers, ninp 200, nhead 2, nhid 200, dropout 0.2, a square
subsequent mask, Linear decoder, log_softmax) and NLLLoss, batchify into 20 columns, bptt 35, the script's
hand-written update `p.data.add_(p.grad, alpha=-lr)` after clip_grad_norm_(0.25), lr divided by 4 whenever
val_loss does not improve, on a synthetic corpus of 1,000 word ids (a Zipf unigram and each word followed by
one of 2 likely successors 85% of the time), 48,000 training / 8,000 validation tokens, 3 epochs; `loss`
every 10 batches (mean of those batches, as the script's log interval prints it), val_loss and val_ppl per
epoch, and val_acc (greedy next-word accuracy).
Expected first: learning_rate_too_high
Acceptable in top 3: gradient_clipping_masks_lr
Symptom: plateau
Fixed (--fix, the report's fix: no clipping and lr 0.1): val_loss 2.31 -> 2.09 -> 2.02 (val_ppl 10.0 -> 7.5),
val_acc 0.41 -> 0.45, training loss 4.0 -> 2.05 (buggy: the training loss starts at 9.2, above ln 1000 = 6.9,
and stays at 5.7-6.1, the unigram level, val_loss 6.64 -> 4.80 -> 4.64 (val_ppl 764 -> 121 -> 104), val_acc
0.10 / 0.19 / 0.11, at or below always naming the commonest words; lr divided by 4 never triggered) (checked,
measured with `loss` every 20 batches, the training itself identical; ~34 s CPU each, 132 s wall on a
2-core machine loaded by three helpers, OMP_NUM_THREADS=1).
"""

import math
import sys

import mlflow
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
rng = np.random.default_rng(0)
NTOKENS, BPTT, BATCH, EVAL_BATCH = 1000, 35, 20, 10
LR, CLIP, EPOCHS = (0.1, None, 3) if FIX else (20.0, 0.25, 3)

unigram = 1.0 / np.arange(1, NTOKENS + 1) ** 1.1
unigram /= unigram.sum()
successors = rng.choice(NTOKENS, size=(NTOKENS, 2), p=unigram)


def corpus(n):
    words = np.empty(n, dtype=np.int64)
    words[0] = 0
    follow = rng.random(n) < 0.85
    pick = rng.integers(0, 2, n)
    fresh = rng.choice(NTOKENS, size=n, p=unigram)
    for i in range(1, n):
        words[i] = successors[words[i - 1], pick[i]] if follow[i] else fresh[i]
    return torch.from_numpy(words)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()


train_data = batchify(corpus(48000), BATCH)
val_data = batchify(corpus(8000), EVAL_BATCH)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0).transpose(0, 1))

    def forward(self, x):
        return self.dropout(x + self.pe[: x.size(0), :])


class TransformerModel(nn.Module):
    def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.5):
        super().__init__()
        self.ninp = ninp
        self.input_emb = nn.Embedding(ntoken, ninp)
        self.pos_encoder = PositionalEncoding(ninp, dropout)
        layer = nn.TransformerEncoderLayer(ninp, nhead, nhid, dropout)
        self.encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.decoder = nn.Linear(ninp, ntoken)
        nn.init.uniform_(self.input_emb.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, src):
        mask = nn.Transformer.generate_square_subsequent_mask(len(src))
        src = self.pos_encoder(self.input_emb(src) * math.sqrt(self.ninp))
        output = self.encoder(src, mask=mask, is_causal=True)
        return F.log_softmax(self.decoder(output), dim=-1)


def get_batch(source, i):
    seq_len = min(BPTT, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)


model = TransformerModel(NTOKENS, 200, 2, 200, 2, 0.2)
criterion = nn.NLLLoss()


def evaluate():
    model.eval()
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, val_data.size(0) - 1, BPTT):
            data, targets = get_batch(val_data, i)
            output = model(data).view(-1, NTOKENS)
            total += len(data) * criterion(output, targets).item()
            correct += (output.argmax(1) == targets).sum().item()
            count += len(targets)
    return total / (len(val_data) - 1), correct / count


with mlflow.start_run():
    mlflow.log_params({"model": "Transformer", "lr": LR, "clip": CLIP, "bptt": BPTT, "batch_size": BATCH})
    lr, best_val_loss, step = LR, None, 0
    for epoch in range(1, EPOCHS + 1):
        model.train()
        total_loss = 0.0
        for batch, i in enumerate(range(0, train_data.size(0) - 1, BPTT)):
            data, targets = get_batch(train_data, i)
            model.zero_grad()
            output = model(data)
            loss = criterion(output.view(-1, NTOKENS), targets)
            loss.backward()
            if CLIP is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            total_loss += loss.item()
            step += 1
            if batch % 10 == 0 and batch > 0:
                mlflow.log_metric("loss", total_loss / 10, step=step)
                total_loss = 0.0
        val_loss, val_acc = evaluate()
        mlflow.log_metrics({"val_loss": val_loss, "val_ppl": math.exp(val_loss), "val_acc": val_acc}, step=step)
        print(f"epoch {epoch} lr {lr:g} val_loss {val_loss:.3f} ppl {math.exp(val_loss):.1f} val_acc {val_acc:.3f}")
        if best_val_loss is None or val_loss < best_val_loss:
            best_val_loss = val_loss
        else:
            lr /= 4.0
