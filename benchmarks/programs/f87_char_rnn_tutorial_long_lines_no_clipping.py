"""The PyTorch char-RNN classification tutorial's hand-written RNN (i2h / i2o on cat(input, hidden), no squashing of the hidden state) applied to long lines of text without gradient clipping: the gradient norm explodes and the loss turns NaN.

Report: pytorch/pytorch issue #2623 "How to handle exploding/vanishing gradient in Pytorch and negative loss
  values" (the character-level RNN classification tutorial modified for a large data set of longer
  strings: "I initially faced the problem of exploding / vanishing gradient ... I used the solution given
  there to clip the gradient in the train() function") https://github.com/pytorch/pytorch/issues/2623
Setup: lines of 40-90 characters over a 30-letter alphabet from 6 sources that differ in their letter
frequencies (each source draws letters from its own Dirichlet(1) distribution), one-hot letters fed one
time step at a time as the tutorial does, but 32 lines per step (a line_tensor of shape (len, 32, 30));
the tutorial's RNN class: i2h = Linear(30 + 128, 128), i2o = Linear(30 + 128, 6), LogSoftmax, NLLLoss,
the tutorial's hand-written update p.data.add_(p.grad.data, alpha=-learning_rate) with learning_rate =
0.02 (the tutorial has 0.005 for one line at a time), 800 steps; `loss` (mean of the last 25 steps) and
`grad_norm` (largest of the last 25 steps) every 25 steps, `val_accuracy` on 300 held-out lines every 50.
Expected first: exploding_gradients
Acceptable in top 3: learning_rate_too_high
Symptom: nonfinite_loss, diverging
Fixed (--fix, torch.nn.utils.clip_grad_norm_(rnn.parameters(), 1.0) before the update, as the issue did):
val_accuracy 0.19 -> 0.44 (step 350) -> 0.63 (550) -> 0.65 (600), then 0.35-0.49 while the unclipped norm
reaches 18-739 in every window from step 575 (the clip holds every update to norm 1), 0.46 at step 800,
loss 1.18 against ln 6 = 1.79; finite throughout (buggy: identical to the fix until step 550, val_accuracy
0.63 and grad_norm at most 0.63, then loss and grad_norm NaN in every window from step 575 and val_accuracy
0.15, chance) (checked; 36 s each on a loaded machine, OMP_NUM_THREADS=1).
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
n_letters, n_categories, n_hidden, batch_size = 30, 6, 128, 32
all_categories = [f"source_{i}" for i in range(n_categories)]
letter_freqs = [rng.dirichlet(np.ones(n_letters)) for _ in range(n_categories)]


def random_batch(n, length):
    categories = rng.integers(0, n_categories, n)
    letters = np.stack([rng.choice(n_letters, size=length, p=letter_freqs[c]) for c in categories])
    line_tensor = torch.nn.functional.one_hot(torch.tensor(letters), n_letters).float().transpose(0, 1)
    return torch.tensor(categories), line_tensor


class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        hidden = self.i2h(combined)
        output = self.i2o(combined)
        output = self.softmax(output)
        return output, hidden

    def init_hidden(self, n):
        return torch.zeros(n, self.hidden_size)


rnn = RNN(n_letters, n_hidden, n_categories)
criterion = nn.NLLLoss()
learning_rate = 0.02


def train(category_tensor, line_tensor):
    hidden = rnn.init_hidden(line_tensor.size(1))
    rnn.zero_grad()
    for i in range(line_tensor.size()[0]):
        output, hidden = rnn(line_tensor[i], hidden)
    loss = criterion(output, category_tensor)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(rnn.parameters(), 1.0 if FIX else math.inf)
    for p in rnn.parameters():
        p.data.add_(p.grad.data, alpha=-learning_rate)
    return output, loss.item(), norm.item()


def evaluate(line_tensor):
    hidden = rnn.init_hidden(line_tensor.size(1))
    for i in range(line_tensor.size()[0]):
        output, hidden = rnn(line_tensor[i], hidden)
    return output


val_categories, val_lines = random_batch(300, 60)
losses, norms = [], []
with mlflow.start_run():
    for step in range(1, 801):
        category_tensor, line_tensor = random_batch(batch_size, int(rng.integers(40, 91)))
        output, loss, grad_norm = train(category_tensor, line_tensor)
        losses.append(loss)
        norms.append(grad_norm)
        if step % 25 == 0:
            mlflow.log_metrics({"loss": float(np.mean(losses)), "grad_norm": float(np.max(norms))}, step=step)
            losses, norms = [], []
        if step % 50 == 0:
            with torch.no_grad():
                accuracy = (evaluate(val_lines).argmax(1) == val_categories).float().mean().item()
            mlflow.log_metric("val_accuracy", accuracy, step=step)
            print(f"{step} loss {loss:.4f} grad_norm {grad_norm:.3g} val_accuracy {accuracy:.3f}")
