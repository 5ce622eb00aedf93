"""DeepSurv, a Cox proportional-hazards MLP trained on the negative log partial likelihood, fitted full-batch with Nesterov SGD at learning_rate 1e-5 on simulated non-linear (Gaussian) survival data: in 500 epochs the risk scores hardly move, both losses stay flat lines and the concordance stays near chance.

Report: jaredleekatzman/DeepSurv issue #13 "The negative log likelihood Not update over epochs" ("only got 0.54
  c-index for the test dataset. The negative log likelihood plot showed two separate straight lines for the
  training data and validation data. I think the loss function did not converge over epochs"; hyperparams
  `'learning_rate': 1e-5, 'hidden_layers_sizes': [10, 10]`; the same set-up in issue #12, where the author answers
  "Did you try various learning_rates?") https://github.com/jaredleekatzman/DeepSurv/issues/13
Setup: as the report: SimulatedData(hr_ratio=5, num_features=9, treatment_group=True).generate_data(5000 / 2000)
with its Gaussian risk (log hazard = log(5) * exp(-(x0^2 + x1^2) / (2 * 0.5^2)), centred; exponential death times
with mean 5, censored at their 90th percentile; 9 features uniform in [-1, 1] plus a 0/1 treatment column, n_in 10
as the report); DeepSurv's network (Linear(10,10)-ReLU-Linear(10,10)-ReLU-Linear(10,1), the log-risk), its loss
(-sum((risk - log(cumsum(exp(risk)))) * E) / sum(E) over the samples sorted by time, descending), full batch,
lasagne's nesterov_momentum (momentum 0.9) as torch.optim.SGD(nesterov=True), n_epochs=500; per epoch `train`
and `valid` loss (DeepSurv's log names), every 20 epochs train_ci and valid_ci (Harrell's concordance).
Expected first: learning_rate_too_low
Acceptable in top 3: -
Symptom: plateau
Fixed (--fix, learning_rate 0.1, found by trying rates as the author advises; 1e-2 still crawls in 500
full-batch epochs, reaching valid_ci 0.53): train 7.773 -> 7.698, valid 6.857 -> 6.808 (best, epoch 269) ->
6.814, valid_ci 0.50 -> 0.593, train_ci 0.59, where the true risk scores 0.597 on this validation set (a Cox loss
only falls a little on such data: it stays near the log of the risk-set sizes) (buggy: train 7.7732 and valid
6.8574 the same to 4 decimals at every one of the 500 epochs, two flat lines; train_ci 0.499, valid_ci 0.498)
(checked; 95 s / 55 s wall, 21-22 s CPU, on the 2-core machine shared by three helpers, OMP_NUM_THREADS=1).
"""

import sys

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
FIX = "--fix" in sys.argv
torch.manual_seed(0)
np.random.seed(123)
HR_RATIO, AVERAGE_DEATH, NUM_FEATURES, NUM_VAR = 5, 5, 9, 2


def generate_data(n):
    """As deepsurv.datasets.SimulatedData.generate_data(method='gaussian') with a treatment column."""
    x = np.random.uniform(low=-1, high=1, size=(n, NUM_FEATURES))
    treatment = np.random.binomial(1, 0.5, size=(n, 1))
    z = np.square(x[:, :NUM_VAR]).sum(axis=1)
    risk = np.log(HR_RATIO) * np.exp(-z / (2 * 0.5**2))
    risk = risk - risk.mean()
    death_time = np.random.exponential(AVERAGE_DEATH, size=n) / np.exp(risk)
    end_time = np.percentile(death_time, 90)
    e = (death_time <= end_time).astype(np.int32)
    t = np.minimum(death_time, end_time)
    order = np.argsort(-t)  # DeepSurv's prepare_data: sort by time, descending, for the cumulative risk sets
    x = np.concatenate([x, treatment], axis=1).astype(np.float32)
    return {"x": x[order], "t": t[order].astype(np.float32), "e": e[order], "risk": risk[order]}


def concordance_index(t, scores, e):
    """Harrell's C: among comparable pairs (the earlier time an event), the share the higher risk dies first."""
    t, scores, e = np.asarray(t), np.asarray(scores), np.asarray(e)
    earlier = (t[:, None] < t[None, :]) & (e[:, None] == 1)
    concordant = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
    return float((concordant * earlier).sum() / earlier.sum())


def negative_log_likelihood(risk, e):
    log_risk = torch.log(torch.cumsum(torch.exp(risk), dim=0))
    uncensored_likelihood = risk - log_risk
    censored_likelihood = uncensored_likelihood * e
    return -censored_likelihood.sum() / e.sum()


train_data, valid_data = generate_data(5000), generate_data(2000)
print(
    "valid concordance of the true risk:",
    round(concordance_index(valid_data["t"], valid_data["risk"], valid_data["e"]), 3),
)
x_train, e_train = torch.tensor(train_data["x"]), torch.tensor(train_data["e"], dtype=torch.float32)
x_valid, e_valid = torch.tensor(valid_data["x"]), torch.tensor(valid_data["e"], dtype=torch.float32)

hyperparams = {"n_in": 10, "learning_rate": 0.1 if FIX else 1e-5, "hidden_layers_sizes": [10, 10], "momentum": 0.9}
network = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1))
optimizer = torch.optim.SGD(
    network.parameters(), lr=hyperparams["learning_rate"], momentum=hyperparams["momentum"], nesterov=True
)

with mlflow.start_run():
    mlflow.log_params(hyperparams)
    for epoch in range(500):
        network.train()
        optimizer.zero_grad()
        loss = negative_log_likelihood(network(x_train).squeeze(1), e_train)
        loss.backward()
        optimizer.step()
        network.eval()
        with torch.no_grad():
            valid_loss = negative_log_likelihood(network(x_valid).squeeze(1), e_valid).item()
        metrics = {"train": loss.item(), "valid": valid_loss}
        if epoch % 20 == 0 or epoch == 499:
            with torch.no_grad():
                metrics["train_ci"] = concordance_index(
                    train_data["t"][:2000], network(x_train[:2000]).squeeze(1).numpy(), train_data["e"][:2000]
                )
                metrics["valid_ci"] = concordance_index(
                    valid_data["t"], network(x_valid).squeeze(1).numpy(), valid_data["e"]
                )
            print(epoch, {k: round(v, 4) for k, v in metrics.items()})
        mlflow.log_metrics(metrics, step=epoch)
