"""An ES-RNN forecaster (Smyl's exponential smoothing + RNN hybrid, as in kdgutier/esrnn_torch) trained on daily, intermittent retail sales (M5-like) whose target column holds zeros, some on the very first day: the per-series Holt-Winters level starts at `y[0] / seasonality[0]` = 0 and every window is normalised as `log(y / (level * seasonality))`, so the inputs and targets hold -inf / nan and the training and testing losses are nan from the first batch on.

Report: kdgutier/esrnn_torch issue #5 "Traning and testing losses return 'nan' during training" (applying ESRNN to the M5
  competition: "the network does not seem to learn, because of 'nan' returned during training"; the maintainer: "there
  are multiple zeros in the target variable. The model will return nan losses if the target variable of any serie has
  zero in the first ds (since the model normalizes the series by previous values). Can you try adding 1 (or any
  scalar) to all the target variable for all ds? You can then substract the scalar to the predictions"; the reporter:
  "Thanks a lot, it works !")
  https://github.com/kdgutier/esrnn_torch/issues/5
Setup: 160 synthetic daily sales series of 112 days + a 7-day test horizon (Poisson counts around a per-series level
between 0.3 and 20 with a weekly pattern: about 21% of the days are zeros, 26% of the series start with a zero); ESRNN
as the library builds it: per-series smoothing coefficients for level and seasonality (sigmoid of learned parameters)
and learned initial weekly seasonality (exp), the level/seasonality recursion over the history, windows of
`input_size=14` days normalised by the last level and the seasonality and log-transformed, a 2-layer LSTM (state_hsize
40; the library stacks dilated LSTMs) over the sequence of windows with a Linear adapter to `output_size=7`, pinball
loss at the 50th percentile plus the level-variability penalty (80), Adam(lr 1e-3) with StepLR(step 9, gamma 0.9),
gradient clipping at 20, batch of 32 series, 15 epochs; per epoch `train_loss` ("Training loss (50 prc)") and
`test_loss` ("Testing loss (50 prc)", the pinball loss of the 7-day forecast on the held-out days in sales units)
logged with `mlflow.log_metric`.
Expected first: nonfinite_loss
Acceptable in top 3: nonfinite_inputs
Symptom: nonfinite_loss
Fixed (--fix, 1 added to every target value before training and subtracted from the predictions, as the maintainer
suggests): train_loss 22.33 -> 21.41 (the level-variability penalty is about 20.9 of it at the start, the pinball loss
0.21; falling steadily at the 15th epoch), test_loss 1.074 -> 0.889 sales units, both finite throughout (buggy:
train_loss and test_loss nan from the first epoch to the last: the first batch's loss is nan, its gradients are nan
and Adam turns every parameter into nan) (checked; 54 s / 49 s wall, 21 s CPU each, on the 2-core machine shared by
three helpers).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)
N_SERIES, N_DAYS, SEASONALITY, INPUT_SIZE, OUTPUT_SIZE = 160, 112, 7, 14, 7
MAX_EPOCHS, BATCH_SIZE, LR, LEVEL_VARIABILITY_PENALTY, TAU = 15, 32, 1e-3, 80, 0.5


def daily_sales():
    level = np.exp(rng.uniform(np.log(0.3), np.log(20), N_SERIES))[:, None]
    weekly = np.array([0.8, 0.85, 0.9, 1.0, 1.2, 1.45, 0.8])[rng.permutation(7)]
    day = np.arange(N_DAYS + OUTPUT_SIZE)
    trend = 1 + rng.normal(0, 0.002, (N_SERIES, 1)) * day
    return rng.poisson(level * weekly[day % 7] * np.clip(trend, 0.5, None)).astype(np.float32)


y_all = daily_sales()
print(f"zeros: {np.mean(y_all == 0):.1%} of the days; {np.mean(y_all[:, 0] == 0):.1%} of the series start with 0")
offset = 1.0 if FIX else 0.0  # the fix: add 1 to the target, subtract it from the forecasts
y_train = torch.tensor(y_all[:, :N_DAYS] + offset)
y_test = torch.tensor(y_all[:, N_DAYS:])


class ESRNN(nn.Module):
    def __init__(self, n_series, state_hsize=40):
        super().__init__()
        self.lev_sms = nn.Parameter(torch.full((n_series, 1), 0.5))
        self.seas_sms = nn.Parameter(torch.full((n_series, 1), 0.5))
        self.init_seas = nn.Parameter(torch.full((n_series, SEASONALITY), 0.5))
        self.rnn = nn.LSTM(INPUT_SIZE, state_hsize, num_layers=2)
        self.adapterW = nn.Linear(state_hsize, OUTPUT_SIZE)

    def es(self, y, idxs):
        lev_sms = torch.sigmoid(self.lev_sms[idxs])[:, 0]
        seas_sms = torch.sigmoid(self.seas_sms[idxs])[:, 0]
        init_seas = torch.exp(self.init_seas[idxs])
        seasonalities = [init_seas[:, i] for i in range(SEASONALITY)] + [init_seas[:, 0]]
        levels = [y[:, 0] / seasonalities[0]]
        for t in range(1, y.shape[1]):
            newlev = lev_sms * (y[:, t] / seasonalities[t]) + (1 - lev_sms) * levels[t - 1]
            newseason = seas_sms * (y[:, t] / newlev) + (1 - seas_sms) * seasonalities[t]
            levels.append(newlev)
            seasonalities.append(newseason)
        return torch.stack(levels, 1), torch.stack(seasonalities, 1)

    def windows(self, y, levels, seasonalities, with_targets=True):
        last = y.shape[1] - OUTPUT_SIZE if with_targets else y.shape[1]
        inputs, targets = [], []
        for end in range(INPUT_SIZE, last + 1):
            norm = levels[:, end - 1 : end]
            inputs.append(torch.log(y[:, end - INPUT_SIZE : end] / (norm * seasonalities[:, end - INPUT_SIZE : end])))
            if with_targets and end + OUTPUT_SIZE <= y.shape[1]:
                seas_out = seasonalities[:, end : end + OUTPUT_SIZE]
                targets.append(torch.log(y[:, end : end + OUTPUT_SIZE] / (norm * seas_out)))
        return torch.stack(inputs), (torch.stack(targets) if targets else None)

    def forward(self, y, idxs):
        levels, seasonalities = self.es(y, idxs)
        inputs, targets = self.windows(y, levels, seasonalities)
        out, _ = self.rnn(inputs)
        return self.adapterW(out), targets, levels

    def predict(self, y, idxs):
        levels, seasonalities = self.es(y, idxs)
        inputs, _ = self.windows(y, levels, seasonalities, with_targets=False)
        out, _ = self.rnn(inputs)
        log_forecast = self.adapterW(out[-1])
        n = y.shape[1]
        seas_out = seasonalities[:, n - SEASONALITY : n - SEASONALITY + OUTPUT_SIZE]
        return torch.exp(log_forecast) * levels[:, -1:] * seas_out


def pinball_loss(y, y_hat, tau=TAU):
    delta = y - y_hat
    return torch.maximum(tau * delta, (tau - 1) * delta).mean()


def level_variability_loss(levels):
    log_diff = torch.log(levels[:, 1:] / levels[:, :-1])
    return LEVEL_VARIABILITY_PENALTY * ((log_diff[:, 1:] - log_diff[:, :-1]) ** 2).mean()


model = ESRNN(N_SERIES)
optimizer = torch.optim.Adam(model.parameters(), lr=LR, eps=1e-8)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=9, gamma=0.9)

with mlflow.start_run():
    mlflow.log_params(
        {"max_epochs": MAX_EPOCHS, "batch_size": BATCH_SIZE, "learning_rate": LR, "input_size": INPUT_SIZE}
    )
    mlflow.log_params({"output_size": OUTPUT_SIZE, "seasonality": SEASONALITY, "state_hsize": 40})
    for epoch in range(MAX_EPOCHS):
        model.train()
        losses = []
        for start in range(0, N_SERIES, BATCH_SIZE):
            idxs = torch.arange(start, start + BATCH_SIZE)
            optimizer.zero_grad()
            y_hat, targets, levels = model(y_train[idxs], idxs)
            loss = pinball_loss(targets, y_hat) + level_variability_loss(levels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 20)
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        model.eval()
        with torch.no_grad():
            forecast = model.predict(y_train, torch.arange(N_SERIES)) - offset
            test_loss = pinball_loss(y_test, forecast).item()
        train_loss = float(np.mean(losses))
        mlflow.log_metric("train_loss", train_loss, step=epoch)
        mlflow.log_metric("test_loss", test_loss, step=epoch)
        print(f"Epoch {epoch} Training loss (50 prc): {train_loss:.5f} Testing loss (50 prc): {test_loss:.5f}")
