"""A GRU multi-label text classifier whose word-to-index vocabulary is built separately for the validation split.

Report: minqukanq/hierarchical-multi-label-text-classification issue #6 "The reason for low performance,
  vocabs in train_dataset and test_dataset are not the same" (each split built its own vocab_to_int, so
  the same token gets a different index; with one vocabulary shared the performance went up)
  https://github.com/minqukanq/hierarchical-multi-label-text-classification/issues/6
Setup: documents of 20 tokens over 400 words, 6 topic labels (multi-label, each on with p 0.3, each
with 12 keywords that appear in its documents), vocab_to_int in order of first appearance with
<pad>=0 / <unk>=1, built from the training texts and again from the validation texts (the bug);
1,280 training / 400 validation documents; Embedding(402, 32) -> GRU(32, 64) -> Linear(64, 6),
BCEWithLogitsLoss, Adam(lr=3e-3), batch 64, 8 epochs; mlflow.log_metric("loss") every 5 steps, val_loss /
val_micro_f1 per epoch.
Expected first: train_val_preprocessing_mismatch
Acceptable in top 3: labels_unrelated
Symptom: overfitting
Fixed (--fix, the training vocabulary for both splits): val_micro_f1 0.90, val_loss 0.156 after 8 epochs
(buggy: val_micro_f1 0.10-0.13, val_loss rising 0.63 -> 1.36 while the training loss falls 0.69 -> 0.08) (checked).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

N_WORDS, N_LABELS, LENGTH = 400, 6, 20
keywords = torch.randperm(N_WORDS)[: N_LABELS * 12].view(N_LABELS, 12)


def make_texts(n):
    labels = (torch.rand(n, N_LABELS) < 0.3).float()
    texts = []
    for row in labels:
        tokens = torch.randint(0, N_WORDS, (LENGTH,))
        for label in row.nonzero().flatten().tolist():
            pos = torch.randperm(LENGTH)[:5]
            tokens[pos] = keywords[label, torch.randint(0, 12, (5,))]
        texts.append(" ".join(f"w{t}" for t in tokens.tolist()))
    return texts, labels


def build_vocab(texts):
    vocab = {"<pad>": 0, "<unk>": 1}
    for text in texts:
        for word in text.split():
            if word not in vocab:
                vocab[word] = len(vocab)
    return vocab


def encode(texts, vocab):
    return torch.tensor([[vocab.get(w, 1) for w in text.split()] for text in texts])


class GRUTagger(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 32, padding_idx=0)
        self.gru = nn.GRU(32, 64, batch_first=True)
        self.fc = nn.Linear(64, N_LABELS)

    def forward(self, ids):
        _, h = self.gru(self.embedding(ids))
        return self.fc(h[-1])


train_texts, y_train = make_texts(1280)
val_texts, y_val = make_texts(400)
train_vocab = build_vocab(train_texts)
x_train = encode(train_texts, train_vocab)
x_val = encode(val_texts, train_vocab if FIX else build_vocab(val_texts))

model = GRUTagger(N_WORDS + 2)
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
step = 0
with mlflow.start_run():
    for epoch in range(8):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 64):
            idx = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            if step % 5 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = criterion(out, y_val).item()
            pred = (out > 0).float()
            tp = (pred * y_val).sum()
            f1 = (2 * tp / (pred.sum() + y_val.sum())).item()
        mlflow.log_metrics({"val_loss": val_loss, "val_micro_f1": f1}, step=step)
        print(f"epoch {epoch}: loss {loss.item():.4f} val_loss {val_loss:.4f} val_micro_f1 {f1:.3f}")
