"""bentrevett/pytorch-seq2seq tutorial 1 ("Sequence to Sequence Learning with Neural Networks"): a 2-layer LSTM encoder and a 2-layer LSTM decoder with teacher forcing, but the decoder's LSTM is called the way the encoder's is, `self.rnn(embedded)`, without the `(hidden, cell)` it was handed: the decoder starts every step from zeros, never sees the encoder's summary of the source sentence, and can only guess each target word from the previous one.

Report: bentrevett/pytorch-seq2seq issue #3 "forward function in encoder" (a reader asks why the encoder's
  RNN gets no hidden state; the author: the encoder starts from zeros because "If (h_0, c_0) is not provided,
  both h_0 and c_0 default to zero", but "the decoder is different ... If you don't pass an initial hidden
  state to the decoder, it won't know anything about the sentence you are trying to translate"; the tutorial's
  decoder calls `self.rnn(embedded, (hidden, cell))`) https://github.com/bentrevett/pytorch-seq2seq/issues/3
Setup: a synthetic "translation" task: source sentences of 3-6 words over a 16-word vocabulary, the target is
the sentence translated word by word through a fixed dictionary and read backwards, wrapped in <sos>/<eos> and
padded with <pad> (ignored by the loss, `CrossEntropyLoss(ignore_index=TRG_PAD_IDX)` as in the tutorial),
tensors [seq len, batch] as torchtext gave them; Encoder/Decoder/Seq2Seq as in the tutorial (2-layer LSTMs,
embedding 32, hidden 64, dropout 0.2: smaller than the tutorial's 256/512/0.5 for the CPU; PyTorch's default
initialisation, the tutorial's uniform(-0.08, 0.08) `init_weights` left out because with it even the fixed
model sat at the target-marginal loss for 12 epochs at this size), Adam (default lr 0.001), gradient clipping 1,
teacher forcing ratio 0.5, batch 32, 1,600 training / 400 validation pairs, 12 epochs; per epoch `train_loss`,
`valid_loss` and `valid_ppl` (the tutorial's printout) and `valid_token_acc` (greedy, no teacher forcing).
Expected first: labels_unrelated
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, the decoder's `self.rnn(embedded, (hidden, cell))` as in the tutorial): train_loss 2.72 -> 1.06,
valid_loss 2.48 -> 1.04 (valid_ppl 11.95 -> 2.84), valid_token_acc 0.23 -> 0.59 after 12 epochs, still
falling steadily (buggy: train_loss 2.89 -> 2.70 by epoch 4, then flat at 2.69-2.70 for 8 epochs, valid_loss
2.77 -> 2.67-2.71, valid_ppl ~14.5, valid_token_acc 0.18-0.19 throughout: the decoder can only learn which
words and lengths are common) (checked; 77 s / 73 s wall, ~30 s CPU each, on the 2-core machine shared by
four helpers).
"""

import random
import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
random.seed(0)
torch.set_num_threads(1)
PAD, SOS, EOS, WORDS = 0, 1, 2, 16  # word ids 3..18 in both languages
VOCAB = WORDS + 3
TRG_PAD_IDX = PAD
dictionary = torch.randperm(WORDS) + 3
N_TRAIN, N_VALID, BATCH, EPOCHS, CLIP = 1600, 400, 32, 12, 1.0


def make_pairs(n):
    max_len = 6 + 2
    src = torch.full((max_len, n), PAD, dtype=torch.long)  # [src len, batch size], as torchtext gave it
    trg = torch.full((max_len, n), PAD, dtype=torch.long)
    for i in range(n):
        length = random.randint(3, 6)
        words = torch.randint(3, WORDS + 3, (length,))
        src[: length + 2, i] = torch.cat([torch.tensor([SOS]), words, torch.tensor([EOS])])
        translated = dictionary[words - 3].flip(0)
        trg[: length + 2, i] = torch.cat([torch.tensor([SOS]), translated, torch.tensor([EOS])])
    return src, trg


class Encoder(nn.Module):
    def __init__(self, input_dim, emb_dim, hid_dim, n_layers, dropout):
        super().__init__()
        self.embedding = nn.Embedding(input_dim, emb_dim)
        self.rnn = nn.LSTM(emb_dim, hid_dim, n_layers, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src):
        embedded = self.dropout(self.embedding(src))
        outputs, (hidden, cell) = self.rnn(embedded)  # no initial state: zeros, as the docs say
        return hidden, cell


class Decoder(nn.Module):
    def __init__(self, output_dim, emb_dim, hid_dim, n_layers, dropout):
        super().__init__()
        self.output_dim = output_dim
        self.embedding = nn.Embedding(output_dim, emb_dim)
        self.rnn = nn.LSTM(emb_dim, hid_dim, n_layers, dropout=dropout)
        self.fc_out = nn.Linear(hid_dim, output_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input, hidden, cell):
        input = input.unsqueeze(0)
        embedded = self.dropout(self.embedding(input))
        if FIX:
            output, (hidden, cell) = self.rnn(embedded, (hidden, cell))
        else:
            output, (hidden, cell) = self.rnn(embedded)  # written like the encoder's call
        prediction = self.fc_out(output.squeeze(0))
        return prediction, hidden, cell


class Seq2Seq(nn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, src, trg, teacher_forcing_ratio=0.5):
        trg_len, batch_size = trg.shape
        outputs = torch.zeros(trg_len, batch_size, self.decoder.output_dim)
        hidden, cell = self.encoder(src)
        input = trg[0, :]
        for t in range(1, trg_len):
            output, hidden, cell = self.decoder(input, hidden, cell)
            outputs[t] = output
            teacher_force = random.random() < teacher_forcing_ratio
            top1 = output.argmax(1)
            input = trg[t] if teacher_force else top1
        return outputs


model = Seq2Seq(Encoder(VOCAB, 32, 64, 2, 0.2), Decoder(VOCAB, 32, 64, 2, 0.2))
optimizer = torch.optim.Adam(model.parameters())
criterion = nn.CrossEntropyLoss(ignore_index=TRG_PAD_IDX)
src_train, trg_train = make_pairs(N_TRAIN)
src_valid, trg_valid = make_pairs(N_VALID)


def train(model, clip):
    model.train()
    epoch_loss, n_batches = 0.0, 0
    perm = torch.randperm(N_TRAIN)
    for i in range(0, N_TRAIN, BATCH):
        idx = perm[i : i + BATCH]
        src, trg = src_train[:, idx], trg_train[:, idx]
        optimizer.zero_grad()
        output = model(src, trg)
        output_dim = output.shape[-1]
        loss = criterion(output[1:].view(-1, output_dim), trg[1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        epoch_loss += loss.item()
        n_batches += 1
    return epoch_loss / n_batches


def evaluate(model):
    model.eval()
    with torch.no_grad():
        output = model(src_valid, trg_valid, 0)  # turn off teacher forcing
        loss = criterion(output[1:].view(-1, output.shape[-1]), trg_valid[1:].reshape(-1)).item()
        mask = trg_valid[1:] != PAD
        acc = (output[1:].argmax(-1) == trg_valid[1:])[mask].float().mean().item()
    return loss, acc


with mlflow.start_run():
    mlflow.log_params({"optimizer": "Adam", "clip": CLIP, "teacher_forcing_ratio": 0.5, "batch_size": BATCH})
    for epoch in range(EPOCHS):
        train_loss = train(model, CLIP)
        valid_loss, valid_acc = evaluate(model)
        mlflow.log_metrics(
            {
                "train_loss": train_loss,
                "valid_loss": valid_loss,
                "valid_ppl": float(torch.tensor(valid_loss).exp()),
                "valid_token_acc": valid_acc,
            },
            step=epoch,
        )
        print(
            f"Epoch: {epoch + 1:02} | Train Loss: {train_loss:.3f} | Val. Loss: {valid_loss:.3f} | "
            f"Val. PPL: {torch.tensor(valid_loss).exp():7.3f} | Val. acc: {valid_acc:.3f}"
        )
