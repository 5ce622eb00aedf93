"""A makemore-style character MLP whose weights are plain torch.randn: saturated tanh units and a first loss far above ln 27.

Report: clawdemy "Why deep nets won't train (and how to fix it): activations, gradients, and BatchNorm"
  (following Karpathy's makemore part 3: with unscaled random weights the first loss is far above
  -log(1/27) = 3.30, tanh units sit in their flat tails and the network learns slowly; fixed by small
  output weights and 1/sqrt(fan-in) scaling)
  https://clawdemy.org/lessons/build-nns-from-scratch/stabilize-training-activations-gradients-batchnorm/lesson/
Setup: names from a random order-2 Markov chain over 26 letters + '.', context of 3 characters,
Embedding(27, 10) -> Linear(30, 200) -> tanh -> Linear(200, 27) with every weight an
nn.Parameter(torch.randn(...)) (no scaling), F.cross_entropy, SGD(lr=0.1), batch 32, 1500 steps,
train_loss every 100 steps, val_loss every 300.
Expected first: bad_weight_init
Acceptable in top 3: initial_loss_mismatch, saturated_activations
Symptom: initial_loss_mismatch, plateau, not_converged
Fixed (--fix, W1 * (5/3)/sqrt(30), b1 * 0.01, W2 * 0.01, b2 = 0): val_loss 2.45 after 1500 steps (buggy: val_loss 4.67 after 1500 steps, first losses in the tens) (checked).
"""

import sys

import mlflow
import torch
from torch import nn
from torch.nn import functional as F

mlflow.autolog()
FIX = "--fix" in sys.argv
g = torch.Generator().manual_seed(2147483647)
torch.manual_seed(0)

# names from an order-2 Markov chain (peaked transitions, '.' = index 0 ends a name)
trans = torch.softmax(2.5 * torch.randn(27, 27, 27, generator=g), -1)
trans[:, :, 0] += 0.08
trans /= trans.sum(-1, keepdim=True)


def names(n):
    out = []
    for _ in range(n):
        a, b, word = 0, 0, []
        while len(word) < 12:
            c = torch.multinomial(trans[a, b], 1, generator=g).item()
            if c == 0:
                break
            word.append(c)
            a, b = b, c
        out.append(word)
    return out


def dataset(words):
    xs, ys = [], []
    for w in words:
        ctx = [0, 0, 0]
        for c in w + [0]:
            xs.append(ctx)
            ys.append(c)
            ctx = ctx[1:] + [c]
    return torch.tensor(xs), torch.tensor(ys)


x_train, y_train = dataset(names(3000))
x_val, y_val = dataset(names(300))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.C = nn.Embedding(27, 10)
        self.hidden = nn.Linear(30, 200)
        self.out = nn.Linear(200, 27)
        with torch.no_grad():  # "init": plain randn, as in the first version of the lecture
            for p in (self.C.weight, self.hidden.weight, self.hidden.bias, self.out.weight, self.out.bias):
                p.copy_(torch.randn(p.shape))
            if FIX:
                self.hidden.weight *= (5 / 3) / 30**0.5
                self.hidden.bias *= 0.01
                self.out.weight *= 0.01
                self.out.bias.zero_()

    def forward(self, x):
        h = torch.tanh(self.hidden(self.C(x).view(len(x), -1)))
        return self.out(h)


model = MLP()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with mlflow.start_run():
    running = 0.0
    for step in range(1500):
        idx = torch.randint(0, len(x_train), (32,))
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
        if step % 100 == 99:
            mlflow.log_metric("train_loss", running / 100, step=step)
            running = 0.0
        if step % 300 == 299:
            with torch.no_grad():
                val_loss = F.cross_entropy(model(x_val), y_val).item()
            mlflow.log_metric("val_loss", val_loss, step=step)
            print(f"step {step}: val_loss {val_loss:.4f}")
