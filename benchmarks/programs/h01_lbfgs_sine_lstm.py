"""Full-batch LBFGS training of an LSTM sine-wave predictor, as in pytorch/examples time_sequence_prediction.

Report: healthy, in the style of the framework's own example
  https://github.com/pytorch/examples/tree/main/time_sequence_prediction
Setup: LSTMCell(1, 51) x2 + Linear(51, 1), the whole training set as one batch, LBFGS(lr=0.8) with
a closure, MSELoss, per-step `loss` and `test_loss` (as in the example, which prints both).
Expected first: healthy
Acceptable in top 3: -
Symptom: -
Reached: loss falls from ~0.5 to ~1e-4 in 8 LBFGS steps (sequences of 100 points; the example uses 1000).
"""

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
np.random.seed(2)
torch.manual_seed(0)

T, L, N = 20, 100, 40
x = np.empty((N, L), np.float32)
x[:] = np.arange(L) + np.random.randint(-4 * T, 4 * T, N).reshape(N, 1)
data = torch.from_numpy(np.sin(x / T).astype(np.float32))
inp, target = data[3:, :-1], data[3:, 1:]
test_inp, test_target = data[:3, :-1], data[:3, 1:]


class Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, 51)
        self.lstm2 = nn.LSTMCell(51, 51)
        self.linear = nn.Linear(51, 1)

    def forward(self, inp):
        outputs = []
        h_t = c_t = torch.zeros(inp.size(0), 51)
        h_t2 = c_t2 = torch.zeros(inp.size(0), 51)
        for input_t in inp.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            outputs.append(self.linear(h_t2))
        return torch.cat(outputs, dim=1)


seq = Sequence()
criterion = nn.MSELoss()
optimizer = torch.optim.LBFGS(seq.parameters(), lr=0.8)
with mlflow.start_run():
    for i in range(8):

        def closure():
            optimizer.zero_grad()
            loss = criterion(seq(inp), target)
            loss.backward()
            return loss

        loss = optimizer.step(closure)
        with torch.no_grad():
            test_loss = criterion(seq(test_inp), test_target).item()
        mlflow.log_metric("loss", loss.item(), step=i)
        mlflow.log_metric("test_loss", test_loss, step=i)
        print("step", i, "loss", loss.item(), "test", test_loss)
