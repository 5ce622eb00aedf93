"""A DeepSpeech-style acoustic model (Conv1d front end, bidirectional GRU, Linear) trained with nn.CTCLoss on its raw Linear outputs: CTC expects log-probabilities, so the loss is negative at the first step, then stalls near 2.7 and not one phone is ever transcribed.

Report: SeanNaren/deepspeech.pytorch issue #488 "Negative Loss" ("always the value of the loss
  becomes negative then the parameters don't update. I read the document of the CTCLoss of pytorch
  that the output of the model should be logarithmized probabilities. Then, I add log_softmax
  function and the loss function becomes positive"; later "put the log_softmax as the activation
  function of the last layer in the training phase and it works well")
  https://github.com/SeanNaren/deepspeech.pytorch/issues/488
Setup: synthetic utterances: 3-6 "phones" out of 12, each rendered as 3-6 frames of its own
20-dimensional spectral template plus noise (std 0.6), with 0-2 silence frames between phones, padded
to the longest utterance in the batch (lengths passed to the loss); Conv1d(20, 64, 5, padding 2) +
BatchNorm1d + Hardtanh(0, 20) as DeepSpeech's front end, a bidirectional GRU (hidden 64,
packed by length), Linear(128, 13) with class 0 the blank; nn.CTCLoss(blank=0, zero_infinity=True)
given the (T, N, C) outputs, Adam(lr=1e-3), batch 32, 800 training / 300 validation utterances,
6 epochs; train_loss every 10 steps, per-epoch val_loss and val_cer (greedy CTC decoding, character
error rate), as the repository's train.py logs loss / WER / CER.
Expected first: loss_input_mismatch
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, log_softmax over the classes before the loss, the thread's fix): train_loss 10.5 -> 0.57,
val_loss 2.98 -> 1.71 -> 0.42, val_cer 1.0 -> 0.93 -> 0.48 -> 0.082 after 6 epochs, still falling (buggy:
train_loss -4.13 at the first step, then 0.23, 3.6 and flat at 2.67-2.74 for the rest of the run, val_loss
1.88 -> 2.69 -> 2.67, val_cer 1.0 in every epoch: no phone ever decoded; PyTorch's CTC backward assumes
normalised log-probabilities, so the raw logits get a gradient of a loss they do not have)
(checked; 25 s / 23 s wall on a loaded 2-core machine with OMP_NUM_THREADS=1, 15 s / 14 s CPU).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
PHONES, FEATS = 12, 20
templates = torch.randn(PHONES + 1, FEATS)  # row 0: silence


def utterances(n):
    feats, labels = [], []
    for _ in range(n):
        phones = torch.randint(1, PHONES + 1, (int(torch.randint(3, 7, ())),))
        frames = [templates[0].repeat(int(torch.randint(0, 3, ())), 1)]
        for p in phones.tolist():
            frames.append(templates[p].repeat(int(torch.randint(3, 7, ())), 1))
            frames.append(templates[0].repeat(int(torch.randint(0, 3, ())), 1))
        x = torch.cat(frames)
        feats.append(x + 0.6 * torch.randn_like(x))
        labels.append(phones)
    return feats, labels


def collate(feats, labels):
    lengths = torch.tensor([len(f) for f in feats])
    x = nn.utils.rnn.pad_sequence(feats, batch_first=True)  # N, T, F
    targets = torch.cat(labels)
    target_lengths = torch.tensor([len(t) for t in labels])
    return x, lengths, targets, target_lengths


class DeepSpeech(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(FEATS, 64, 5, padding=2), nn.BatchNorm1d(64), nn.Hardtanh(0, 20))
        self.rnn = nn.GRU(64, 64, bidirectional=True)
        self.fc = nn.Linear(128, PHONES + 1)

    def forward(self, x, lengths):
        x = self.conv(x.transpose(1, 2)).permute(2, 0, 1)  # T, N, C
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out)
        out = self.fc(out)  # T, N, classes
        if FIX:
            out = out.log_softmax(2)
        return out


def greedy(out, lengths):
    best = out.argmax(2).T
    words = []
    for seq, n in zip(best.tolist(), lengths.tolist()):
        word, prev = [], 0
        for s in seq[:n]:
            if s != prev and s != 0:
                word.append(s)
            prev = s
        words.append(word)
    return words


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


train_x, train_y = utterances(800)
val_x, val_y = utterances(300)
model = DeepSpeech()
criterion = nn.CTCLoss(blank=0, zero_infinity=True)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    mlflow.log_params({"batch_size": 32, "lr": 1e-3, "epochs": 6, "rnn_hidden": 64, "log_softmax": FIX})
    step = 0
    for epoch in range(6):
        model.train()
        perm = torch.randperm(len(train_x)).tolist()
        for i in range(0, len(perm), 32):
            idx = perm[i : i + 32]
            x, lengths, targets, target_lengths = collate([train_x[j] for j in idx], [train_y[j] for j in idx])
            out = model(x, lengths)
            loss = criterion(out, targets, lengths, target_lengths)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                mlflow.log_metric("train_loss", loss.item(), step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            x, lengths, targets, target_lengths = collate(val_x, val_y)
            out = model(x, lengths)
            val_loss = criterion(out, targets, lengths, target_lengths).item()
            errors = sum(edit_distance(h, t.tolist()) for h, t in zip(greedy(out, lengths), val_y))
            val_cer = errors / sum(len(t) for t in val_y)
        mlflow.log_metrics({"val_loss": val_loss, "val_cer": val_cer}, step=epoch)
        print(f"epoch {epoch}: train_loss {loss.item():.3f} val_loss {val_loss:.3f} val_cer {val_cer:.3f}")
