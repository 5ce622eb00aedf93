"""The misdiagnosed cases of issue 11, each rebuilt the way users write them (a plain loop with
`mlflow.autolog()` and their own `mlflow.log_metric` calls), trained for real into a sqlite store
and audited: the first cause named must be the upstream one.

The full-size programs (Lightning, the HF Trainer's BERT, the LSTM language model at their real
size) live in benchmarks/programs (f01-f11); these are their tiny versions, seconds each.
"""

from __future__ import annotations

import json
import math
import re

import mlflow
import pytest
import torch
from mlflow.entities import Metric
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit import schema


def _teacher(n: int, d: int = 16, k: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, k, generator=g)
    return x, (x @ w).argmax(1)


def _audit(run_id: str):
    (res,) = [r for r in mlflow_nnaudit.audit(force=True) if r.run_id == run_id]
    return res


def _epochs(model, opt, loss_fn, x, y, xv, yv, epochs=15, bs=32, step_hook=None):
    """The loop users write: minibatches, per-epoch train_loss / val_loss / val_acc logged by hand."""
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        for i in range(0, len(x), bs):
            xb, yb = x[i : i + bs], y[i : i + bs]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            if step_hook:
                step_hook(model)
            opt.step()
            total += loss.item() * len(xb)
            n += len(xb)
        model.eval()
        with torch.no_grad():
            out = model(xv)
            val = loss_fn(out, yv).item()
            acc = (out.argmax(1) == yv).float().mean().item() if out.dim() == 2 and out.shape[1] > 1 else 0.0
        mlflow.log_metrics({"train_loss": total / n, "val_loss": val, "val_acc": acc}, step=epoch)


@pytest.fixture
def autologged(store_uri):
    mlflow.autolog(silent=True, log_models=False)
    yield store_uri


@pytest.mark.parametrize("momentum", [0.0, pytest.param(0.9, marks=pytest.mark.slow)])
def test_mlp_sgd_lr10_blows_up_learning_rate_too_high_first(autologged, momentum):
    torch.manual_seed(0)
    x, y = _teacher(640)
    xv, yv = _teacher(200, seed=1)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    with mlflow.start_run() as run:
        opt = torch.optim.SGD(model.parameters(), lr=10, momentum=momentum)
        _epochs(model, opt, nn.CrossEntropyLoss(), x, y, xv, yv)
    res = _audit(run.info.run_id)
    assert res.status == "failed"
    assert res.causes[0] == "learning_rate_too_high", res.causes
    assert "learning_rate_too_low" not in res.causes and "labels_unrelated" not in res.causes
    assert "Multiply it by 10" not in res.recommendation


@pytest.mark.slow
def test_adam_lr3_is_not_healthy(autologged):
    torch.manual_seed(0)
    x, y = _teacher(640)
    xv, yv = _teacher(200, seed=1)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.Adam(model.parameters(), lr=3), nn.CrossEntropyLoss(), x, y, xv, yv)
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] == "learning_rate_too_high", (res.status, res.causes)


class WordLM(nn.Module):
    def __init__(self, vocab: int = 60):
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.rnn = nn.LSTM(16, 32, batch_first=True)
        self.out = nn.Linear(32, vocab)

    def forward(self, x):
        return self.out(self.rnn(self.emb(x))[0])


@pytest.mark.slow
def test_lstm_adamw_lr20_clipped_names_the_learning_rate_with_sane_advice(autologged):
    torch.manual_seed(0)
    vocab = 60
    ranks = torch.arange(1, vocab + 1, dtype=torch.float)
    tokens = torch.multinomial(1 / ranks, 20 * 641, replacement=True)  # Zipf-like token ids
    data = tokens.view(-1, 641)
    model = WordLM(vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=20)
    crit = nn.CrossEntropyLoss()
    with mlflow.start_run() as run:
        step = 0
        for _epoch in range(3):
            for i in range(0, 640 - 20, 20):
                xb, yb = data[:, i : i + 20], data[:, i + 1 : i + 21]
                opt.zero_grad()
                loss = crit(model(xb).reshape(-1, vocab), yb.reshape(-1))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
                opt.step()
                if step % 4 == 0:
                    mlflow.log_metric("train_loss", loss.item(), step=step)
                step += 1
    res = _audit(run.info.run_id)
    assert res.causes[0] == "learning_rate_too_high", res.causes
    # every learning rate the advice names is within 1000x of the run's own (20)
    for f in res.findings:
        for m in re.finditer(r"to about ([0-9.e+-]+)", f.recommendation):
            assert 20 / 1000 <= float(m.group(1)) <= 20, f.recommendation


class SoftmaxLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.lstm = nn.LSTM(16, 16, batch_first=True)
        self.fc = nn.Linear(16, 3)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.fc(self.lstm(self.emb(x))[0][:, -1]))


def test_softmax_into_cross_entropy_is_a_loss_input_mismatch(autologged):
    torch.manual_seed(0)
    x, xv = torch.randint(0, 100, (320, 8)), torch.randint(0, 100, (96, 8))
    y, yv = torch.randint(0, 3, (320,)), torch.randint(0, 3, (96,))
    model = SoftmaxLSTM()
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss(), x, y, xv, yv, epochs=8)
    res = _audit(run.info.run_id)
    assert res.causes[0] == "loss_input_mismatch", res.causes


def test_log_softmax_over_one_unit_into_bce_is_a_loss_input_mismatch(autologged):
    torch.manual_seed(0)
    x, y = _teacher(320, k=2)
    xv, yv = _teacher(96, k=2, seed=1)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))

    class OneUnit(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, inp):
            return torch.log_softmax(self.net(inp), dim=1)

    model = OneUnit()
    bce = nn.BCELoss()
    with mlflow.start_run() as run:
        _epochs(
            model,
            torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
            lambda out, t: bce(out.squeeze(1), t.float()),
            x,
            y,
            xv,
            yv,
            epochs=8,
        )
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] == "loss_input_mismatch", (res.status, res.causes)


def test_optimizer_given_the_data_tensors_is_no_learning(autologged):
    torch.manual_seed(0)
    x, y = _teacher(320)
    xv, yv = _teacher(96, seed=1)
    x.requires_grad_(True)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with mlflow.start_run() as run:
        opt = torch.optim.SGD([x], lr=0.01)  # the data, not model.parameters()
        _epochs(model, opt, nn.CrossEntropyLoss(), x, y, xv, yv, epochs=8)
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] in ("frozen_parameters", "plateau"), (res.status, res.causes)
    assert "oscillating_loss" not in res.causes[:1]


def test_nan_in_a_few_inputs_is_nonfinite_inputs(autologged):
    torch.manual_seed(0)
    x, y = _teacher(640)
    xv, yv = _teacher(200, seed=1)
    # ~1% of the rows, one of them in the first batch: the recorder's input statistics must see the
    # batch that made the loss NaN (it samples steps; keeping that very step is the recorder's job)
    x[torch.randperm(640)[:6]] = float("nan")
    x[3] = float("nan")
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss(), x, y, xv, yv, epochs=6)
    res = _audit(run.info.run_id)
    # the recorder keeps the input statistics of the step whose loss first turned NaN (its
    # `moments`), whichever steps it sampled
    with open(mlflow.MlflowClient().download_artifacts(run.info.run_id, schema.DIAGNOSTICS_ARTIFACT)) as fh:
        moment = json.load(fh).get("moments", {}).get(schema.MOMENT_FIRST_NONFINITE_LOSS, {})
    assert moment.get("inputs", {}).get("nonfinite_share"), moment
    assert res.causes[0] == "nonfinite_inputs", [(f.cause, f.summary) for f in res.findings]


def test_pixels_0_255_blow_up_is_listed_under_the_inputs(autologged):
    """f13: raw 0..255 pixels into an MLP with a learning rate that suits [0, 1] inputs. The loss
    blows up at once, and the blow-up follows from the input scale: inputs_not_normalized first,
    learning_rate_too_high (if named) as its consequence."""
    torch.manual_seed(0)
    templates = (torch.rand(4, 8, 8) > 0.6).float()

    def images(n, seed):
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 4, (n,), generator=g)
        x = templates[y] * torch.randint(120, 256, (n, 1, 1), generator=g) + torch.randint(
            0, 60, (n, 8, 8), generator=g
        )
        return x.clamp(0, 255).flatten(1), y

    (x, y), (xv, yv) = images(640, 0), images(200, 1)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.SGD(model.parameters(), lr=0.01), nn.CrossEntropyLoss(), x, y, xv, yv, epochs=6)
    res = _audit(run.info.run_id)
    assert res.status != "healthy" and res.causes[0] == "inputs_not_normalized", (res.status, res.causes)
    by_cause = {f.cause: f for f in res.findings}
    assert "learning_rate_too_high" in by_cause, res.causes  # the blow-up is seen, and named second
    assert by_cause["learning_rate_too_high"].upstream == "inputs_not_normalized"


def test_nll_loss_on_raw_logits_is_a_loss_input_mismatch_not_convergence(autologged):
    torch.manual_seed(0)
    x, y = _teacher(640)
    xv, yv = _teacher(200, seed=1)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.Adam(model.parameters(), 1e-2), nn.NLLLoss(), x, y, xv, yv, epochs=10)
    res = _audit(run.info.run_id)
    assert res.causes[0] == "loss_input_mismatch", res.causes


def test_flat_curves_alone_are_a_plateau_not_a_guess_at_capacity(store_uri):
    rng = torch.Generator().manual_seed(0)
    ids = []
    for i in range(3):
        with mlflow.start_run() as run:
            level = 0.5 + 2 * i
            noise = 0.01 * level * torch.randn(40, generator=rng)
            client = mlflow.MlflowClient()
            ms = [
                Metric(k, float(level * f + noise[s]), 0, s)
                for s in range(40)
                for k, f in (("train_loss", 1.0), ("val_loss", 1.02))
            ]
            client.log_batch(run.info.run_id, metrics=ms)
        ids.append(run.info.run_id)
    results = {r.run_id: r for r in mlflow_nnaudit.audit(force=True)}
    for rid in ids:
        causes = results[rid].causes
        assert causes and causes[0] == "plateau", causes


def test_stuck_at_ln_c_from_curves_alone_is_no_learning(store_uri):
    with mlflow.start_run():
        for s in range(30):
            mlflow.log_metric("train_loss", 1.2 if s == 0 else math.log(3), step=s)
    (res,) = mlflow_nnaudit.audit(force=True)
    assert res.status == "failed" and res.causes[0] == "plateau"
    assert "learned nothing" in res.recommendation
