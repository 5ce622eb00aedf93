"""A DeepSurv-style survival model: an MLP risk score trained on the negative Cox partial log-likelihood over mini-batches of right-censored patients, with early stopping on the validation partial likelihood and Harrell's C-index logged.

Report: healthy, in the style of pycox's CoxPH (DeepSurv) example "01_introduction.ipynb"
  (`tt.practical.MLPVanilla(in_features, [32, 32], out_features=1, batch_norm=True, dropout=0.1)`,
  `CoxPH(net, tt.optim.Adam)`, `batch_size=256`, `callbacks=[tt.callbacks.EarlyStopping()]`,
  `val_data=val`, concordance from `EvalSurv(...).concordance_td()`) https://github.com/havakv/pycox
  and Katzman et al. 2018, "DeepSurv" https://doi.org/10.1186/s12874-018-0482-1
Setup: 3,000 synthetic patients (9 covariates, one a treatment arm; a non-linear log-hazard with a
square, an interaction and a sine; exponential event times, ~35% censored), 2,000 / 500 / 500 split,
continuous covariates standardised on the training split; MLPVanilla-like net (Linear 32, ReLU,
BatchNorm, Dropout 0.1, twice; Linear(32, 1) without bias), pycox's cox_ph_loss (sort by duration,
log-cumsum-exp of the risk set, mean over events) on mini-batches of 256, Adam(lr=0.01), early
stopping on val_loss with patience 6 (max 60 epochs), best weights restored; per-epoch train_loss,
val_loss (the partial likelihood over the 500 validation patients, hence larger than the batch loss)
and val_c_index (Harrell's), then best_val_loss and test_c_index.
Expected first: healthy
Acceptable in top 3: -
Symptom: healthy
Reached: train_loss 4.63 -> 4.30, val_loss 5.294 -> best 5.034 at epoch 7, then noisy 5.04..5.10,
val_c_index 0.678 -> 0.74, early-stopped at epoch 13, test C-index 0.747 (checked; 40 s wall on a
loaded 2-core machine, 12 s user CPU with OMP_NUM_THREADS=1).
"""

import mlflow
import numpy as np
import torch
from torch import nn

mlflow.autolog()
torch.manual_seed(0)
rng = np.random.default_rng(0)
N_FEATURES, PATIENCE, MAX_EPOCHS = 9, 6, 60


def cohort(n):
    """Covariates (age, biomarkers, treatment, ...), a non-linear log-hazard, exponential event times, ~35% censored."""
    x = rng.normal(0, 1, (n, N_FEATURES)).astype(np.float32)
    x[:, 8] = rng.random(n) < 0.5  # treatment arm
    log_hazard = (
        0.8 * x[:, 0] + 0.5 * x[:, 1] ** 2 - 0.6 * x[:, 2] * x[:, 3] + 0.4 * np.sin(2 * x[:, 4]) - 0.7 * x[:, 8]
    )
    event_time = rng.exponential(1.0 / np.exp(log_hazard))
    censor_time = rng.exponential(1.6, n)
    duration = np.minimum(event_time, censor_time).astype(np.float32)
    event = (event_time <= censor_time).astype(np.float32)
    return x, duration, event


def cox_ph_loss(log_h, duration, event, eps=1e-7):
    """pycox's cox_ph_loss: sort by duration (descending), log-cumsum-exp of the risk set, mean over events."""
    idx = duration.sort(descending=True)[1]
    event, log_h = event[idx], log_h[idx].view(-1)
    gamma = log_h.max()
    log_cumsum_h = log_h.sub(gamma).exp().cumsum(0).add(eps).log().add(gamma)
    return -log_h.sub(log_cumsum_h).mul(event).sum().div(event.sum().clamp_min(1.0))


def concordance_index(risk, duration, event):
    """Harrell's C: among comparable pairs (the earlier time is an event), how often the earlier one has the higher risk."""
    earlier = (duration[:, None] < duration[None, :]) & (event[:, None] == 1)
    concordant = (risk[:, None] > risk[None, :]) & earlier
    ties = (risk[:, None] == risk[None, :]) & earlier
    return (concordant.sum() + 0.5 * ties.sum()) / earlier.sum()


x_all, t_all, e_all = cohort(3000)
x_train, t_train, e_train = x_all[:2000], t_all[:2000], e_all[:2000]
x_val, t_val, e_val = x_all[2000:2500], t_all[2000:2500], e_all[2000:2500]
x_test, t_test, e_test = x_all[2500:], t_all[2500:], e_all[2500:]
mean, std = x_train[:, :8].mean(0), x_train[:, :8].std(0)  # standardise the continuous covariates (DataFrameMapper)
for x in (x_train, x_val, x_test):
    x[:, :8] = (x[:, :8] - mean) / std
to_t = torch.from_numpy
train_loader = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(to_t(x_train), to_t(t_train), to_t(e_train)), batch_size=256, shuffle=True
)
net = nn.Sequential(
    nn.Linear(N_FEATURES, 32),
    nn.ReLU(),
    nn.BatchNorm1d(32),
    nn.Dropout(0.1),
    nn.Linear(32, 32),
    nn.ReLU(),
    nn.BatchNorm1d(32),
    nn.Dropout(0.1),
    nn.Linear(32, 1, bias=False),  # a Cox model's baseline hazard absorbs any constant
)
optimizer = torch.optim.Adam(net.parameters(), lr=0.01)

with mlflow.start_run():
    mlflow.log_params(
        {
            "num_nodes": "[32, 32]",
            "batch_norm": True,
            "dropout": 0.1,
            "lr": 0.01,
            "batch_size": 256,
            "patience": PATIENCE,
            "censored_share": round(1 - float(e_train.mean()), 3),
        }
    )
    best, best_state, wait = float("inf"), None, 0
    for epoch in range(MAX_EPOCHS):
        net.train()
        total, n = 0.0, 0
        for xb, tb, eb in train_loader:
            optimizer.zero_grad()
            loss = cox_ph_loss(net(xb), tb, eb)
            loss.backward()
            optimizer.step()
            total, n = total + loss.item() * len(xb), n + len(xb)
        net.eval()
        with torch.no_grad():
            risk_val = net(to_t(x_val))
            val_loss = cox_ph_loss(risk_val, to_t(t_val), to_t(e_val)).item()
        c_val = float(concordance_index(risk_val.view(-1).numpy(), t_val, e_val))
        mlflow.log_metrics({"train_loss": total / n, "val_loss": val_loss, "val_c_index": c_val}, step=epoch)
        print(epoch, round(total / n, 4), round(val_loss, 4), round(c_val, 4))
        if val_loss < best - 1e-4:
            best, wait = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            wait += 1
            if wait >= PATIENCE:
                print(f"early stopping at epoch {epoch}, best val_loss {best:.4f}")
                break
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        risk_test = net(to_t(x_test)).view(-1).numpy()
    c_test = float(concordance_index(risk_test, t_test, e_test))
    mlflow.log_metrics({"best_val_loss": best, "test_c_index": c_test})
    print("test C-index", round(c_test, 4))
