"""A captcha CRNN trained with nn.CTCLoss whose convolutions pool the width by 8: 5 output frames for 4 characters, so a label with two repeated neighbours cannot be aligned, its CTC loss is inf, and the NaN gradient wipes the weights.

Report: ypwhs/captcha_break issue #29 "在ctc_pytorch的训练过程中，损失值总会变为nan" (in ctc_pytorch training the
  loss always turns NaN after the image size was changed and n_input_length set to 6; answer: the NaN comes
  from a target_length too long for the input_length, CTCLoss needs room for "-a-b-c-d-"; fix: widen the
  image or pool less horizontally so the model emits more frames) https://github.com/ypwhs/captcha_break/issues/29
Setup: 1 x 16 x 40 "captcha" images of 4 digits (each digit a fixed random 12 x 7 stroke pattern, drawn
with a random horizontal and vertical jitter over noise); the ctc_pytorch model in small: three conv
blocks (Conv2d 16/32/32 + BatchNorm2d + ReLU, then MaxPool), the height pooled away, a bidirectional
GRU(64) over the remaining columns, Linear to 11 classes (blank = 0), log_softmax, nn.CTCLoss() with the default
zero_infinity=False; the pooling halves the width three times, so input_length = 40 / 8 = 5; Adam(lr=1e-3),
batch 32, 1500 training / 400 validation images, 4 epochs; loss every 10 steps, val_loss and val_acc
(greedy decoding, whole captcha right) per epoch.
Expected first: nonfinite_loss
Acceptable in top 3: -
Symptom: nonfinite_loss
Fixed (--fix, the last pooling keeps the width, input_length 10 >= 2 * 4 + 1 as the answer asks): val_acc
0.000 -> 0.770 -> 0.980 -> 0.995, val_loss 2.42 -> 0.029, loss 0.023 at the end (buggy: the first logged loss
is inf (a batch holding a label such as 3-3-7-7 that 5 frames cannot align), every later loss and val_loss NaN,
val_acc 0.000 in every epoch) (checked; 26 s / 26 s wall on a 2-core machine loaded ~3.5x, 22 s CPU).
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
DIGITS, H, W = 4, 16, 40
glyphs = (torch.rand(10, 12, 7) < 0.45).float()


def captchas(n):
    labels = torch.randint(0, 10, (n, DIGITS))
    images = 0.3 * torch.rand(n, 1, H, W)
    for i in range(n):
        for k in range(DIGITS):
            x0 = 10 * k + int(torch.randint(0, 4, (1,)))
            y0 = int(torch.randint(0, 5, (1,)))
            images[i, 0, y0 : y0 + 12, x0 : x0 + 7] += glyphs[labels[i, k]]
    return (images - 0.5) / 0.5, labels + 1  # class 0 is the CTC blank


class CRNN(nn.Module):
    def __init__(self, n_classes=11):
        super().__init__()

        def block(c_in, c_out, pool):
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(pool)]

        last_pool = (2, 1) if FIX else (2, 2)
        self.cnn = nn.Sequential(*block(1, 16, 2), *block(16, 32, 2), *block(32, 32, last_pool))
        self.rnn = nn.GRU(32 * 2, 64, bidirectional=True)
        self.fc = nn.Linear(128, n_classes)

    def forward(self, x):
        f = self.cnn(x)  # N, C, H', T
        f = f.flatten(1, 2).permute(2, 0, 1)  # T, N, C * H'
        out, _ = self.rnn(f)
        return self.fc(out).log_softmax(2)  # T, N, classes


def decode(log_probs):
    best = log_probs.argmax(2).T.tolist()
    words = []
    for seq in best:
        word, prev = [], 0
        for s in seq:
            if s != prev and s != 0:
                word.append(s)
            prev = s
        words.append(word)
    return words


x_train, y_train = captchas(1500)
x_val, y_val = captchas(400)
model = CRNN()
criterion = nn.CTCLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
with mlflow.start_run():
    mlflow.log_params({"input_length": 10 if FIX else 5, "target_length": DIGITS, "batch_size": 32, "lr": 1e-3})
    step = 0
    for epoch in range(4):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(perm), 32):
            idx = perm[i : i + 32]
            log_probs = model(x_train[idx])
            input_lengths = torch.full((len(idx),), log_probs.size(0), dtype=torch.long)
            target_lengths = torch.full((len(idx),), DIGITS, dtype=torch.long)
            loss = criterion(log_probs, y_train[idx], input_lengths, target_lengths)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
            step += 1
        model.eval()
        with torch.no_grad():
            log_probs = model(x_val)
            lengths = torch.full((len(x_val),), log_probs.size(0), dtype=torch.long)
            val_loss = criterion(log_probs, y_val, lengths, torch.full((len(x_val),), DIGITS, dtype=torch.long))
            val_acc = sum(w == t for w, t in zip(decode(log_probs), y_val.tolist())) / len(x_val)
        mlflow.log_metrics({"val_loss": val_loss.item(), "val_acc": val_acc}, step=epoch)
        print(f"epoch {epoch}: loss {loss.item():.4f} val_loss {val_loss.item():.4f} val_acc {val_acc:.3f}")
