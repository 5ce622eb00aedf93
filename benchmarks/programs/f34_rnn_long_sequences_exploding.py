"""Vanilla RNN on 100-step sequences with SGD(lr=0.5) and no clipping: the gradient norm explodes.

Report: "PyTorch Loss: Explained with Code Examples" (loss becomes NaN: vanishing/exploding
  gradients; gradient clipping recommended) https://blog.51cto.com/u_16213299/7145640 and
  "loss become nan in gpu" https://taourl.com/read-2580275.html
Setup: nn.RNN(4, 64, tanh) over sequences of 100 steps, last hidden state -> Linear(64, 1), MSELoss,
SGD(lr=0.5), per-step `loss` every 5 steps.
Expected first: exploding_gradients
Acceptable in top 3: learning_rate_too_high
Symptom: diverging, oscillating_loss, nonfinite_loss
Fixed (--fix, clip_grad_norm_(1.0) and lr=0.05): loss ~0.1 (buggy: spikes to huge values or NaN) [expected; --fix not rerun in the final check]
"""

import sys

import mlflow
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)

x = torch.randn(1024, 100, 4)
y = x[:, -10:, 0].sum(1, keepdim=True) / 3


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, 64, batch_first=True)
        self.fc = nn.Linear(64, 1)
        for name, p in self.rnn.named_parameters():
            if "weight_hh" in name:
                nn.init.orthogonal_(p, gain=1.5)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05 if FIX else 0.5)
criterion = nn.MSELoss()
with mlflow.start_run():
    for step in range(150):
        idx = torch.randint(0, 1024, (32,))
        optimizer.zero_grad()
        loss = criterion(model(x[idx]), y[idx])
        loss.backward()
        if FIX:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 5 == 0:
            mlflow.log_metric("loss", loss.item(), step=step)
    print(loss.item())
