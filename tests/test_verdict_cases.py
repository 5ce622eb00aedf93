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


def _epochs(model, opt, loss_fn, x, y, xv, yv, epochs=15, bs=32, step_hook=None, shuffle=False):
    """The loop users write: minibatches (in a new order each epoch with `shuffle`), per-epoch
    train_loss / val_loss / val_acc logged by hand."""
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        order = torch.randperm(len(x)) if shuffle else torch.arange(len(x))
        for i in range(0, len(x), bs):
            xb, yb = x[order[i : i + bs]], y[order[i : i + bs]]
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


def _loader_epochs(model, opt, loader, xv, yv, epochs, batches=None):
    """The DataLoader loop users write: each epoch iterates the loader (leaving it after `batches`, when given),
    then logs the last batch's cross-entropy as `train_loss` and the validation one as `val_loss`."""
    for epoch in range(epochs):
        model.train()
        for i, (xb, yb) in enumerate(loader):
            if i == batches:
                break
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = nn.functional.cross_entropy(model(xv), yv).item()
        mlflow.log_metrics({"train_loss": loss.item(), "val_loss": val}, step=epoch)


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


def test_a_learning_rate_floored_to_zero_is_named_as_the_rate(autologged):
    # the linear scaling rule written with a floor division: 0.1 * 32 // 256 == 0.0. Every weight gets its
    # gradient and none moves: the rate, not a loss computed from other tensors (frozen_parameters' advice)
    torch.manual_seed(0)
    x, y = _teacher(320)
    xv, yv = _teacher(96, seed=1)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    base_lr, bs = 0.1, 32
    with mlflow.start_run() as run:
        mlflow.log_params({"lr": base_lr, "batch_size": bs})
        opt = torch.optim.SGD(model.parameters(), lr=base_lr * bs // 256, momentum=0.9)
        _epochs(model, opt, nn.CrossEntropyLoss(), x, y, xv, yv, epochs=8, bs=bs)
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] == "learning_rate_too_low", (res.status, res.causes)
    assert "frozen_parameters" not in res.causes
    first = res.findings[0]
    assert "learning rate is 0" in first.summary and "`lr` param says 0.1" in first.summary


def test_an_accuracy_taken_by_argmax_over_one_logit_is_a_loss_metric_disagreement(autologged):
    # BCEWithLogitsLoss on one output unit, accuracy from torch.max(z, 1): always class 0, 0.5 every epoch
    torch.manual_seed(0)
    xa, ya = _teacher(2000, k=2)
    x, y, xv, yv = xa[:1600], ya[:1600], xa[1600:], ya[1600:]  # one teacher for both splits
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    with mlflow.start_run() as run:
        for epoch in range(5):
            for i in range(0, 1600, 32):
                opt.zero_grad()
                loss_fn(model(x[i : i + 32]).squeeze(1), y[i : i + 32].float()).backward()
                opt.step()
            with torch.no_grad():
                z = model(xv)
                val = loss_fn(z.squeeze(1), yv.float()).item()
                acc = (torch.max(z, 1)[1] == yv).float().mean().item()
            mlflow.log_metrics({"val_loss": val, "val_acc": acc}, step=epoch)
    res = _audit(run.info.run_id)
    assert res.status == "warning" and res.causes[0] == "loss_metric_disagreement", (res.status, res.causes)


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


@pytest.mark.parametrize("scaling", ["standardised", "divided_by_max"])
def test_constant_columns_standardised_into_nan_are_constant_features_first(autologged, scaling):
    torch.manual_seed(0)
    x, y = _teacher(640)
    xv, yv = _teacher(200, seed=1)
    if scaling == "standardised":
        # two columns that never vary (a country code, an unused flag), standardised by hand with the
        # training mean and std: 0 / 0 fills both columns with NaN, and the loss is NaN from the start
        x[:, 14], xv[:, 14], x[:, 15], xv[:, 15] = 1.0, 1.0, 0.0, 0.0
        mean, std = x.mean(0), x.std(0)
        x, xv = (x - mean) / std, (xv - mean) / std
    else:
        # non-negative features divided by each column's maximum; one column is all zeros: 0 / 0
        x, xv = x.abs(), xv.abs()
        x[:, 15], xv[:, 15] = 0.0, 0.0
        top = x.max(0).values
        x, xv = x / top, xv / top
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss(), x, y, xv, yv, epochs=6)
    res = _audit(run.info.run_id)
    first = res.findings[0]
    assert first.cause == "constant_features", [(f.cause, f.summary) for f in res.findings]
    assert first.confidence == "high" and "0 / 0" in first.recommendation
    assert res.causes.index("nonfinite_inputs") > 0
    assert res.status == "failed"


@pytest.mark.parametrize("divide_by", [32, 640])
def test_an_l1_penalty_scaled_by_the_batch_size_is_too_much_regularization(autologged, divide_by):
    # lambda * sum|w| added to the loss by hand, lambda divided by the batch size (32) where it
    # should be divided by the training-set size (640): the penalty outweighs the data loss from the
    # first step, drives the weights to zero, and nothing is learned; nothing in the optimizer's
    # settings shows it (no weight_decay, no dropout)
    torch.manual_seed(0)
    x, y = _teacher(840)
    x, xv, y, yv = x[:640], x[640:], y[:640], y[640:]
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt, ce = torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss()

    def l1_loss(out, target):
        return ce(out, target) + 2.0 / divide_by * sum(
            p.abs().sum() for n, p in model.named_parameters() if "weight" in n
        )

    with mlflow.start_run() as run:
        _epochs(model, opt, l1_loss, x, y, xv, yv, epochs=10)
    res = _audit(run.info.run_id)
    if divide_by == 32:
        assert res.status == "failed" and res.causes[0] == "too_much_regularization", res.causes
        assert "penalty" in res.recommendation
    else:  # the same penalty scaled by the training-set size: it learns
        assert res.status == "healthy" and "too_much_regularization" not in res.causes, res.causes


def test_a_summed_cross_entropy_backpropagated_as_it_is_is_healthy(autologged):
    """`nn.CrossEntropyLoss(reduction='sum')` backpropagated as it is, evaluated with the same
    criterion, under Adam (which the sum's scale does not move): the recorder's training loss is the
    batch's sum while its first and evaluation losses are per sample, and the run was `failed` as a
    learning rate that "blew up 32x at step 0". Read per sample, it is healthy."""
    x, y = _teacher(2560)
    x, y, xv, yv = x[:2048], y[:2048], x[2048:], y[2048:]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with mlflow.start_run() as run:
        _epochs(model, opt, nn.CrossEntropyLoss(reduction="sum"), x, y, xv, yv, shuffle=True)
    res = _audit(run.info.run_id)
    assert res.status == "healthy", (res.status, [f.cause for f in res.findings])
    assert any("read per sample (divided by 32)" in n for n in res.notes), res.notes


@pytest.mark.parametrize("total", [10, 400])
def test_a_linear_schedule_given_the_epochs_as_its_steps_is_lr_decay_too_fast(autologged, total):
    """`get_linear_schedule_with_warmup(opt, 2, num_training_steps=epochs)` stepped every batch (held-out
    program f65): the rate is 0 from step 10 of 300 on, before the model learned anything, so no fall of
    the loss precedes the drop. Given the real number of steps, the same run learns: healthy."""
    x, y = _teacher(1200)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / 2 if s < 2 else max(0.0, (total - s) / (total - 2)))
    opt.register_step_post_hook(lambda *_: sched.step())  # stepped every batch, after the optimizer
    with mlflow.start_run() as run:
        _epochs(model, opt, nn.CrossEntropyLoss(), x[:960], y[:960], x[960:], y[960:], epochs=10, shuffle=True)
    res = _audit(run.info.run_id)
    if total == 10:
        assert res.findings and res.findings[0].cause == "lr_decay_too_fast", _causes(res)
        assert "never comes back" in res.findings[0].recommendation
    else:
        assert res.status == "healthy", _causes(res)


def _ring(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """12 standardised features; the label says whether the first two lie outside a ring (half do)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    return x, (x[:, 0] ** 2 + x[:, 1] ** 2 > 1.386).float().unsqueeze(1)


@pytest.mark.parametrize("activation", [False, True])
def test_linear_layers_stacked_without_activation_are_insufficient_capacity(autologged, activation):
    """nn.Sequential(Linear, Linear, Linear) with no activation (held-out program f66) is one linear
    map: on a curved boundary it stays at chance, and that is named, with the fix. With ReLUs
    between the same layers the run learns and nothing is said about capacity."""
    x, y = _ring(2400)
    xv, yv = _ring(600, seed=1)
    torch.manual_seed(0)
    act = [nn.ReLU()] if activation else []
    model = nn.Sequential(nn.Linear(12, 64), *act, nn.Linear(64, 64), *act, nn.Linear(64, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with mlflow.start_run() as run:
        _epochs(model, opt, nn.BCEWithLogitsLoss(), x, y, xv, yv, epochs=12, shuffle=True)
    res = _audit(run.info.run_id)
    if activation:
        assert "insufficient_capacity" not in [c for c, *_ in _causes(res)], _causes(res)
    else:
        assert res.findings and res.findings[0].cause == "insufficient_capacity", _causes(res)
        assert "nn.ReLU()" in res.findings[0].recommendation


def test_every_epoch_cut_short_to_the_same_two_batches_is_repeated_batch(autologged):
    """An unshuffled DataLoader of 30 batches an epoch, and a loop that leaves each epoch after 2 of them
    (as Lightning's `overfit_batches=2` left on does: held-out program f67): the model sees 64 of 960
    samples, fed in turn. Named as such, with where to look."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = _teacher(1200)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x[:960], y[:960]), batch_size=32, shuffle=False)
    with mlflow.start_run() as run:
        _loader_epochs(model, opt, loader, x[960:], y[960:], epochs=15, batches=2)
    res = _audit(run.info.run_id)
    assert res.findings and res.findings[0].cause == "repeated_batch", _causes(res)
    assert "2 batches fed in turn" in res.findings[0].summary and res.status != "healthy"


def test_a_dataset_whose_len_counts_its_columns_is_dataset_too_small_first(autologged):
    """A tabular Dataset whose `__len__` returns the feature count (8) instead of the row count (1,000), as a
    Dataset's length taken over the wrong axis or list does (held-out program f140: `len([images, labels])`):
    one batch of the same 8 rows each epoch. Named from the loader's own figures, with where to look."""
    from torch.utils.data import DataLoader, Dataset

    x, y = _teacher(1300, d=8)

    class Rows(Dataset):
        def __init__(self, features, labels):
            self.features, self.labels = features, labels

        def __len__(self):
            return self.features.shape[1]  # the bug: columns, not rows

        def __getitem__(self, i):
            return self.features[i], self.labels[i]

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(Rows(x[:1000], y[:1000]), batch_size=32, shuffle=True)
    with mlflow.start_run() as run:
        _loader_epochs(model, opt, loader, x[1000:], y[1000:], epochs=25)
    res = _audit(run.info.run_id)
    assert res.findings and res.findings[0].cause == "dataset_too_small", _causes(res)
    assert "holds 8 samples, fewer than one batch of 32" in res.findings[0].summary and res.status != "healthy"
    assert "__len__" in res.findings[0].recommendation


def test_an_accuracy_against_labels_in_another_order_is_a_metric_bug_first(autologged):
    """The validation loss from a shuffled loader, the accuracy from its predictions against the dataset's labels
    in file order (a common evaluation bug): the loss falls far under what the accuracy at chance allows. Named as
    the metric, at high confidence."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = _teacher(1800)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    train = DataLoader(TensorDataset(x[:1200], y[:1200]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[1200:], y[1200:]), batch_size=100, shuffle=True)  # the bug: shuffled
    with mlflow.start_run() as run:
        for epoch in range(12):
            model.train()
            for xb, yb in train:
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                losses, preds = [], []
                for xb, yb in val:
                    out = model(xb)
                    losses.append(nn.functional.cross_entropy(out, yb).item())
                    preds.append(out.argmax(1))
                acc = (torch.cat(preds) == y[1200:]).float().mean().item()  # against the labels in file order
            mlflow.log_metrics({"val_loss": sum(losses) / len(losses), "val_acc": acc}, step=epoch)
    res = _audit(run.info.run_id)
    assert res.findings and res.findings[0].cause == "loss_metric_disagreement", _causes(res)
    first = res.findings[0]
    assert first.confidence == "high" and "its loss allows" in first.summary and res.status != "healthy"


def test_an_output_layer_built_in_forward_is_frozen_parameters_first(autologged):
    """`return nn.Linear(64, 4)(x)` in `forward` (held-out program f145, in Lightning there): a new random output
    layer every call, which no optimizer holds; the loss stays at chance. Named as the layer, with the fix."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(16, 64)

        def forward(self, x):
            return nn.Linear(64, 4)(torch.relu(self.fc1(x)))  # the bug: built on every call

    x, y = _teacher(1200)
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with mlflow.start_run() as run:
        _epochs(model, opt, nn.CrossEntropyLoss(), x[:960], y[:960], x[960:], y[960:], epochs=8, shuffle=True)
    res = _audit(run.info.run_id)
    assert res.findings and res.findings[0].cause == "frozen_parameters", _causes(res)
    assert "built inside `forward` on every call" in res.findings[0].summary and res.status == "failed"
    assert "`__init__`" in res.findings[0].recommendation


def test_a_regression_fitted_in_a_fixed_batch_order_is_healthy(autologged):
    # the loop users write without shuffling: the same batches in the same order every epoch, so the
    # per-step loss repeats a pattern of batch difficulties (a strong spectral peak) a few thousandths
    # of its start high, on a run whose loss fell 99%: not an oscillation worth a warning
    torch.manual_seed(0)
    x = torch.randn(1200, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(1200, 1)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    opt, mse = torch.optim.Adam(model.parameters(), 1e-3), nn.MSELoss()
    with mlflow.start_run() as run:
        for epoch in range(20):
            total = 0.0
            for i in range(0, 1000, 32):
                opt.zero_grad()
                loss = mse(model(x[i : i + 32]), y[i : i + 32])
                loss.backward()
                opt.step()
                total += loss.item()
            with torch.no_grad():
                val = (
                    sum(((model(x[i : i + 20]) - y[i : i + 20]) ** 2).mean().item() for i in range(1000, 1200, 20)) / 10
                )
            mlflow.log_metrics({"train_loss": total / 32, "val_loss": val}, step=epoch)
    res = _audit(run.info.run_id)
    assert res.status == "healthy", [(f.cause, f.summary) for f in res.findings]


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
    # under the inputs, directly or through the first loss they put out of scale (initial_loss_mismatch,
    # itself a consequence of the inputs)
    up = by_cause["learning_rate_too_high"].upstream
    assert up == "inputs_not_normalized" or by_cause[up].upstream == "inputs_not_normalized", up


def test_nll_loss_on_raw_logits_is_a_loss_input_mismatch_not_convergence(autologged):
    torch.manual_seed(0)
    x, y = _teacher(640)
    xv, yv = _teacher(200, seed=1)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.Adam(model.parameters(), 1e-2), nn.NLLLoss(), x, y, xv, yv, epochs=10)
    res = _audit(run.info.run_id)
    assert res.causes[0] == "loss_input_mismatch", res.causes


def _programs_task(classes: int):
    """The data of the programs f24/f25 (20 features, a linear teacher, 1000 training and 300
    validation samples), drawn from torch's global generator after seeding it with 0, as they do
    (the model built next draws its weights from the same generator)."""
    torch.manual_seed(0)
    w = torch.randn(20, classes)
    xs = torch.randn(1300, 20)
    ys = (xs @ w).argmax(1)
    return xs[:1000], ys[:1000], xs[1000:], ys[1000:]


def test_dropout_09_that_keeps_the_loss_at_chance_is_too_much_regularization(autologged):
    # f25 at its own size (seconds): Dropout(0.9) read as the keep probability; the first loss,
    # inflated by the 10x scaling of the kept units, falls by half, but only to ln C
    x, y, xv, yv = _programs_task(classes=4)
    layers = [nn.Dropout(0.9), nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.9), nn.Linear(64, 64), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Dropout(0.9), nn.Linear(64, 4))
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss(), x, y, xv, yv, epochs=12)
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] == "too_much_regularization", (res.status, res.causes)


def test_weight_decay_05_names_the_regularisation_before_its_vanished_gradients(autologged):
    # f24 at its own size (seconds): Adam(weight_decay=0.5) meant as 5e-4: the weights decay to
    # zero, the first layer's gradients vanish (products of near-zero weights), the loss sits at ln C
    x, y, xv, yv = _programs_task(classes=5)
    model = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 5))
    # sampling every 10th step whatever it costs: the default time budget samples fewer steps on a
    # loaded machine, and the vanishing-gradient reading needs its second-half samples
    mlflow_nnaudit.autolog(silent=True, max_probe_overhead=None)
    with mlflow.start_run() as run:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.5)
        _epochs(model, opt, nn.CrossEntropyLoss(), x, y, xv, yv, epochs=12)
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] == "too_much_regularization", (res.status, res.causes)
    assert "vanishing_gradients" in res.causes[1:], res.causes  # its consequence, listed after it
    assert "ReLU-family" not in res.recommendation  # the model already uses ReLU


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


def test_zero_initialised_mlp_is_bad_weight_init_first_with_its_consequences(autologged):
    """f29's tiny version: every Linear weight and bias set to zero (tanh MLP, SGD 0.1). Zero
    matrices pass no gradient back, so only the output bias learns and the loss creeps towards
    the label prior: the init leads, what follows from it is listed under it, and a creep that
    no learning rate could speed up (the weights get no gradient) is no small learning rate."""
    torch.manual_seed(0)
    x, y = _teacher(840, d=20)  # one teacher for training and validation
    x, y, xv, yv = x[:640], y[:640], x[640:], y[640:]
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), x, y, xv, yv, epochs=12)
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] == "bad_weight_init", res.causes
    assert "learning_rate_too_low" not in res.causes, res.causes
    follows = {f.cause: f.upstream for f in res.findings}
    if "vanishing_gradients" in follows:
        assert follows["vanishing_gradients"] == "bad_weight_init", follows
    if "frozen_parameters" in follows:  # no gradient reaches them: the init, directly or through the vanishing
        assert follows["frozen_parameters"] in ("bad_weight_init", "vanishing_gradients"), follows
    assert all(up is not None for c, up in follows.items() if c != "bad_weight_init"), follows


class PositionsClassifier(nn.Module):
    """h10's tiny version: an embedding plus learned positions zero-initialised as a model's own
    `nn.Parameter` (GPT-2/ViT style), a TransformerEncoder, mean pooling."""

    def __init__(self, vocab: int = 40, seq: int = 8, dim: int = 16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(1, seq, dim))
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True), 1)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        return self.head(self.encoder(self.emb(x) + self.pos).mean(1))


def test_zero_initialised_positions_on_a_run_that_learns_are_healthy(autologged):
    torch.manual_seed(0)

    def tokens(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randint(3, 40, (n, 8), generator=g), torch.randint(0, 3, (n,), generator=g)
        x[torch.arange(n), torch.randint(0, 8, (n,), generator=g)] = y  # the label's token, somewhere
        return x, y

    x, y = tokens(640, 0)
    xv, yv = tokens(200, 1)
    model = PositionsClassifier()
    with mlflow.start_run() as run:
        _epochs(model, torch.optim.AdamW(model.parameters(), 1e-3), nn.CrossEntropyLoss(), x, y, xv, yv, epochs=6)
    res = _audit(run.info.run_id)
    assert res.status == "healthy", [(f.cause, f.summary) for f in res.findings]
    assert "bad_weight_init" not in [f.cause for f in res.findings]


def test_a_zero_initialised_output_layer_on_a_run_that_learns_is_healthy_with_an_advisory(autologged):
    """A zero-initialised last layer (Fixup, adaLN-Zero, ControlNet's zero convolutions) is no
    symmetry trap: each output row learns from its own class's error. The recorder sees it get
    gradients and change, so the constant init is a risk, and on a run that learned well an
    advisory: status follows harm."""
    torch.manual_seed(0)
    x, y = _teacher(840)  # one teacher for training and validation
    x, y, xv, yv = x[:640], y[:640], x[640:], y[640:]
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    nn.init.zeros_(model[2].weight)
    with mlflow.start_run() as run:
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        _epochs(model, opt, nn.CrossEntropyLoss(), x, y, xv, yv, epochs=8, shuffle=True)
    res = _audit(run.info.run_id)
    init = [f for f in res.findings if f.cause == "bad_weight_init"]
    assert init and init[0].effective_kind == "risk" and init[0].advisory, [(f.cause, f.summary) for f in init]
    assert res.status == "healthy", [(f.cause, f.summary) for f in res.findings]


# --- Adam at 1e-2 (10x its usual top, a common default: PyG's GCN example, tabular tutorials): a run
# stuck at chance for another reason is that reason first, not "learning rate too high" -----------------
def _adam_1e2(x, y, xv, yv, model=None, loss_fn=None, **kw):
    model = model or nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    with mlflow.start_run() as run:
        opt = torch.optim.Adam(model.parameters(), lr=kw.pop("lr", 1e-2), weight_decay=kw.pop("weight_decay", 0.0))
        _epochs(model, opt, loss_fn or nn.CrossEntropyLoss(), x, y, xv, yv, shuffle=True, **kw)
    return _audit(run.info.run_id)


def _one_teacher():
    """640 training and 200 validation examples labelled by one linear teacher."""
    x, y = _teacher(840)
    return x[:640], y[:640], x[640:], y[640:]


@pytest.mark.slow
def test_adam_1e2_on_a_sound_mlp_is_healthy(autologged):
    torch.manual_seed(0)
    x, y = _teacher(3200)  # enough examples not to overfit in 15 epochs (640 do: `overfitting`, rightly)
    res = _adam_1e2(x[:3000], y[:3000], x[3000:], y[3000:], weight_decay=5e-4, bs=64)
    assert res.status == "healthy" and "learning_rate_too_high" not in res.causes, (res.status, res.causes)


def test_shuffled_labels_under_adam_1e2_are_labels_unrelated_not_the_rate(autologged):
    torch.manual_seed(0)
    x, y, xv, yv = _one_teacher()
    res = _adam_1e2(x, y[torch.randperm(len(y))], xv, yv)  # memorised: train 1.39 -> 0.4, validation up from chance
    assert res.status == "failed" and res.causes[0] == "labels_unrelated", res.causes
    assert "learning_rate_too_high" not in res.causes


def test_inputs_without_signal_under_adam_1e2_are_labels_unrelated_not_the_rate(autologged):
    # too many examples to memorise in 15 epochs: training ends 4% under ln 4, validation at or above it
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(4000, 16, generator=g), torch.randint(0, 4, (4000,), generator=g)
    xv, yv = torch.randn(400, 16, generator=g), torch.randint(0, 4, (400,), generator=g)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    res = _adam_1e2(x, y, xv, yv, model=model, bs=64)
    assert res.status == "failed" and res.causes[0] == "labels_unrelated", res.causes
    assert "learning_rate_too_high" not in res.causes


def test_bugs_that_stop_learning_under_adam_1e2_come_before_the_rate(autologged):
    torch.manual_seed(0)
    x, y, xv, yv = _one_teacher()
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    res = _adam_1e2(x, y, xv, yv, model=nn.Sequential(net, nn.Softmax(dim=1)), epochs=8)
    assert res.causes[0] == "loss_input_mismatch", res.causes
    frozen = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)).requires_grad_(False)
    ce = nn.CrossEntropyLoss()
    res = _adam_1e2(x, y, xv, yv, model=frozen, loss_fn=lambda o, t: ce(o, t).requires_grad_(True), epochs=8)
    assert res.status == "failed" and res.causes[0] == "frozen_parameters", res.causes


@pytest.mark.slow
def test_adam_at_1_on_the_sound_mlp_is_the_rate(autologged):
    torch.manual_seed(0)
    x, y, xv, yv = _one_teacher()
    res = _adam_1e2(x, y, xv, yv, lr=1.0)  # blows up to ~1e3 in the first epoch, ReLUs dead, stuck at ln 4
    assert res.status == "failed" and res.causes[0] == "learning_rate_too_high", res.causes


# --- full-batch training without a DataLoader (PyG's GCN example, `model(X_train)` every epoch): the
# same input every step is the design, not `repeated_batch`; `next(iter(loader))` before the loop is ---
def _causes(res):
    return [(f.cause, f.effective_kind, f.advisory, f.summary) for f in res.findings]


def _at_most_advised(res):
    """The same input every step with no DataLoader to say there are more batches: at most an
    advisory (full-batch training looks like this), never a cause."""
    assert "repeated_batch" not in res.causes, _causes(res)
    assert all(f.effective_kind == "risk" for f in res.findings if f.cause == "repeated_batch"), _causes(res)


def _community_graph(n_per: int = 40, k: int = 3, d: int = 16, seed: int = 0):
    """A stochastic block model: k communities (the labels), edges mostly inside one, node
    features a weak noisy hint of the community; the GCN's dense normalised adjacency
    D^-1/2 (A + I) D^-1/2 and PyG-style train/val/test masks."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(k).repeat_interleave(n_per)
    n = len(y)
    same = y[:, None] == y[None, :]
    a = (torch.rand(n, n, generator=g) < torch.where(same, 0.15, 0.01)).float().triu(1)
    a = a + a.T + torch.eye(n)
    dinv = a.sum(1).rsqrt()
    adj = dinv[:, None] * a * dinv[None, :]
    x = torch.randn(n, d, generator=g) + 0.6 * nn.functional.one_hot(y, d).float()
    order = torch.randperm(n, generator=g)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    for m, idx in zip(masks, (order[: n // 3], order[n // 3 : 2 * n // 3], order[2 * n // 3 :])):
        m[idx] = True
    return x, adj, y, masks


class _GCN(nn.Module):
    def __init__(self, d: int, hidden: int, k: int):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(d, hidden), nn.Linear(hidden, k)

    def forward(self, x, adj):
        h = nn.functional.dropout(torch.relu(adj @ self.lin1(x)), 0.5, self.training)
        return adj @ self.lin2(h)


def test_full_batch_gcn_without_a_loader_is_healthy(autologged):
    torch.manual_seed(0)
    x, adj, y, (train_mask, val_mask, test_mask) = _community_graph()
    model = _GCN(x.shape[1], 16, 3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    with mlflow.start_run() as run:
        for epoch in range(100):
            model.train()
            opt.zero_grad()
            out = model(x, adj)
            loss = nn.functional.cross_entropy(out[train_mask], y[train_mask])
            loss.backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                out = model(x, adj)
                val_loss = nn.functional.cross_entropy(out[val_mask], y[val_mask]).item()
                pred = out.argmax(1)
            mlflow.log_metrics(
                {
                    "train_loss": loss.item(),
                    "val_loss": val_loss,
                    "val_acc": (pred[val_mask] == y[val_mask]).float().mean().item(),
                    "test_acc": (pred[test_mask] == y[test_mask]).float().mean().item(),
                },
                step=epoch,
            )
    res = _audit(run.info.run_id)
    assert res.status == "healthy", _causes(res)
    _at_most_advised(res)


def test_full_batch_mlp_regression_without_a_loader_is_healthy(autologged):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 8, generator=g)
    y = (x[:, :1] - 0.5 * x[:, 1:2] + 0.3 * torch.sin(2 * x[:, 2:3])) + 0.05 * torch.randn(300, 1, generator=g)
    x_train, y_train, x_val, y_val = x[:240], y[:240], x[240:], y[240:]
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.MSELoss()
    with mlflow.start_run() as run:
        for epoch in range(150):
            model.train()
            opt.zero_grad()
            loss = criterion(model(x_train), y_train)
            loss.backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                val_loss = criterion(model(x_val), y_val).item()
            mlflow.log_metrics({"train_loss": loss.item(), "val_loss": val_loss}, step=epoch)
    res = _audit(run.info.run_id)
    assert res.status == "healthy", _causes(res)
    _at_most_advised(res)


def test_next_iter_before_the_loop_is_repeated_batch_first(autologged):
    torch.manual_seed(0)
    x, y = _teacher(712)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:512], y[:512]), batch_size=32, shuffle=True)
    xv, yv = x[512:], y[512:]
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    with mlflow.start_run() as run:
        xb, yb = next(iter(loader))  # the bug: one batch, taken once
        for epoch in range(8):
            model.train()
            for _ in range(len(loader)):
                opt.zero_grad()
                loss = criterion(model(xb), yb)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                out = model(xv)
            mlflow.log_metrics(
                {
                    "train_loss": loss.item(),
                    "val_loss": criterion(out, yv).item(),
                    "val_acc": (out.argmax(1) == yv).float().mean().item(),
                },
                step=epoch,
            )
    res = _audit(run.info.run_id)
    assert res.status in ("failed", "warning") and res.causes[0] == "repeated_batch", _causes(res)
    (f,) = [f for f in res.findings if f.cause == "repeated_batch"]
    assert f.confidence == "high" and f.effective_kind == "bug" and not f.advisory


def _gan(lr: float, log_sides: bool, nan_at: int | None = None, epochs: int = 4) -> str:
    """The DCGAN tutorial's loop on 2-D Gaussian data: the discriminator steps on its loss, then the
    generator on its own (`nan_at`: a NaN is fed to the discriminator from that step on)."""
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    disc = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    crit = nn.BCEWithLogitsLoss()
    data = torch.randn(6400, 2) * 0.5 + torch.tensor([2.0, -1.0])
    step = 0
    with mlflow.start_run() as run:
        for epoch in range(epochs):
            for i in range(0, len(data), 64):
                real = data[i : i + 64].clone()
                if nan_at is not None and step >= nan_at:
                    real[0, 0] = float("nan")
                disc.zero_grad()
                fake = gen(torch.randn(len(real), 4))
                err_d = crit(disc(real), torch.ones(len(real), 1)) + crit(
                    disc(fake.detach()), torch.zeros(len(real), 1)
                )
                err_d.backward()
                opt_d.step()
                gen.zero_grad()
                err_g = crit(disc(fake), torch.ones(len(real), 1))
                err_g.backward()
                opt_g.step()
                step += 1
            if log_sides:
                mlflow.log_metrics({"loss_D": err_d.item(), "loss_G": err_g.item()}, step=epoch)
    return run.info.run_id


def test_a_healthy_gan_is_healthy(autologged):
    """The discriminator's loss falls, then climbs back as the generator catches up: the game, not a
    divergence (it was `failed: learning_rate_too_high, diverging`). Told by the logged sides' names,
    the recorder having seen a second optimizer step on losses of its own."""
    res = _audit(_gan(2e-4, log_sides=True))
    assert res.status == "healthy", (res.causes, res.notes)
    assert any("a GAN" in n for n in res.notes), res.notes


def test_a_gan_whose_loss_turns_nan_still_fails(autologged):
    res = _audit(_gan(2e-4, log_sides=True, nan_at=150, epochs=2))
    assert res.status == "failed" and "nonfinite_loss" in res.causes, (res.causes, res.notes)


def test_two_optimizers_on_one_loss_are_not_a_game(autologged):
    """SparseAdam-style: one loss, two optimizers over two halves of the model. The loss is one
    objective, and its blow-up under a far too high rate is still read."""
    torch.manual_seed(0)
    x, y = _teacher(640)
    xv, yv = _teacher(200, seed=1)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))

    class Both:  # steps both optimizers, as a loop with two of them does
        def __init__(self, *opts):
            self.opts = opts

        def zero_grad(self):
            for o in self.opts:
                o.zero_grad()

        def step(self):
            for o in self.opts:
                o.step()

    with mlflow.start_run() as run:
        opt = Both(torch.optim.SGD(model[:2].parameters(), lr=10), torch.optim.SGD(model[2:].parameters(), lr=10))
        _epochs(model, opt, nn.CrossEntropyLoss(), x, y, xv, yv)
    res = _audit(run.info.run_id)
    assert not any("a GAN" in n for n in res.notes), res.notes
    assert res.status == "failed" and res.causes[0] == "learning_rate_too_high", res.causes


def test_a_full_batch_regression_stalled_by_targets_in_the_billions_names_the_targets(autologged):
    """A plain MLP fitted full-batch (no DataLoader: the same input every step) to x**3 for x up to
    4000, targets unscaled: the loss sits at 1e20. The same batch cannot be what held a training loss
    still (a model fed one batch memorises it), and the stall follows the targets' scale."""
    torch.manual_seed(0)
    x = torch.linspace(1, 4000, 400).unsqueeze(1)
    y = x**3
    xs = (x - x.mean()) / x.std()
    model = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with mlflow.start_run() as run:
        for step in range(300):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xs), y)
            loss.backward()
            opt.step()
            if step % 10 == 0:
                mlflow.log_metric("loss", loss.item(), step=step)
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] == "targets_not_normalized", _causes(res)
    assert "repeated_batch" not in res.causes, _causes(res)


def test_a_probe_trained_beside_the_model_is_not_a_game(autologged):
    """A second optimizer stepping on a loss of its own is not enough: an online linear probe on the
    model's detached outputs never reaches the model's gradients. Its labels unrelated to the inputs,
    the run still fails (found by review: it read as a GAN and came out `healthy`)."""
    torch.manual_seed(0)
    x, _ = _teacher(640)
    xv, _ = _teacher(200, seed=1)
    g = torch.Generator().manual_seed(5)
    y, yv = torch.randint(0, 4, (640,), generator=g), torch.randint(0, 4, (200,), generator=g)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    probe = nn.Linear(4, 4)
    opt, opt_p = torch.optim.Adam(model.parameters(), lr=1e-3), torch.optim.SGD(probe.parameters(), lr=0.05)
    ce = nn.CrossEntropyLoss()
    with mlflow.start_run() as run:
        for epoch in range(15):
            total = 0.0
            for i in range(0, 640, 32):
                opt.zero_grad()
                out = model(x[i : i + 32])
                loss = ce(out, y[i : i + 32])
                loss.backward()
                opt.step()
                opt_p.zero_grad()
                ce(probe(out.detach()), y[i : i + 32]).backward()
                opt_p.step()
                total += loss.item()
            with torch.no_grad():
                o = model(xv)
            mlflow.log_metrics(
                {
                    "train_loss": total / 20,
                    "val_loss": ce(o, yv).item(),
                    "val_acc": (o.argmax(1) == yv).float().mean().item(),
                },
                step=epoch,
            )
    res = _audit(run.info.run_id)
    assert not any("a GAN" in n for n in res.notes), res.notes
    assert res.status == "failed" and res.causes[0] == "labels_unrelated", _causes(res)


def test_a_healthy_actor_critic_is_healthy(autologged):
    """pytorch/examples' actor_critic.py on a toy task (act on the sign of the first feature; an episode
    ends on a wrong action or after 60 steps): the loss is the episode's summed policy term
    (-log_prob * standardised advantage, negative on good episodes) plus its summed `smooth_l1_loss` value
    terms, so it swings below zero and grows as episodes lengthen. Those are the episodes, not harm (held-out
    program h64 was `failed: learning_rate_too_high, loss_input_mismatch`); the run logs its reward."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)

    class Policy(nn.Module):  # the example's: one body, an action head and a value head
        def __init__(self):
            super().__init__()
            self.affine1, self.action_head, self.value_head = nn.Linear(4, 32), nn.Linear(32, 2), nn.Linear(32, 1)

        def forward(self, x):
            h = torch.relu(self.affine1(x))
            return self.action_head(h), self.value_head(h)

    model = Policy()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses, running = [], 1.0
    with mlflow.start_run() as run:
        for episode in range(120):
            log_probs, values, rewards = [], [], []
            for _ in range(60):
                s = torch.randn(4, generator=g)
                logits, value = model(s)
                dist = torch.distributions.Categorical(logits=logits)
                a = dist.sample()
                log_probs.append(dist.log_prob(a))
                values.append(value.squeeze())
                right = int(a) == int(s[0] > 0)
                rewards.append(1.0 if right else 0.0)
                if not right:
                    break
            returns, r = [], 0.0
            for rew in reversed(rewards):
                r = rew + 0.99 * r
                returns.insert(0, r)
            ret = torch.tensor(returns)
            ret = (ret - ret.mean()) / (ret.std() + 1e-6) if len(ret) > 1 else ret
            policy, value = [], []
            for lp, v, rt in zip(log_probs, values, ret):
                policy.append(-lp * (rt - v.item()))
                value.append(nn.functional.smooth_l1_loss(v, rt))
            opt.zero_grad()
            loss = torch.stack(policy).sum() + torch.stack(value).sum()
            loss.backward()
            opt.step()
            running = 0.05 * len(rewards) + 0.95 * running
            losses.append(loss.item())
            mlflow.log_metrics(
                {"episode_reward": len(rewards), "running_reward": running, "loss": loss.item()}, episode
            )
    assert running > 10  # it learned: episodes of 1-2 steps at first
    assert min(losses) < 0 or max(losses) > 10 * abs(losses[0])  # the loss shapes that were read as harm
    res = _audit(run.info.run_id)
    assert res.status == "healthy", (res.causes, res.notes)
    assert any("reinforcement learning" in n for n in res.notes), res.notes


def test_zero_initialised_sparse_logistic_regression_with_two_optimizers_is_healthy(autologged):
    """The PyTorch docs' sparse set-up (h95, h98, h99): an `EmbeddingBag(sparse=True)` of hashed features,
    zero-initialised as logistic regressions are, trained by SparseAdam, and a dense bias by Adam. Its
    first logits are exactly 0 (no single-output log_softmax: they move after the first step), and the bias
    is in the second optimizer (not "in no optimizer group")."""
    torch.manual_seed(0)
    buckets, fields = 256, 6
    g = torch.Generator().manual_seed(0)
    true_w = torch.randn(buckets, generator=g)

    def batch(n, seed):
        ids = torch.randint(0, buckets, (n, fields), generator=torch.Generator().manual_seed(seed))
        return ids, (
            torch.rand(n, generator=torch.Generator().manual_seed(seed + 1)) < torch.sigmoid(true_w[ids].sum(1) - 1)
        ).float()

    class SparseLogReg(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.EmbeddingBag(buckets, 1, mode="sum", sparse=True)
            nn.init.zeros_(self.weights.weight)
            self.bias = nn.Parameter(torch.zeros(1))

        def forward(self, ids):
            return self.weights(ids).squeeze(1) + self.bias

    model, bce = SparseLogReg(), nn.BCEWithLogitsLoss()
    sparse, dense = torch.optim.SparseAdam(model.weights.parameters(), lr=0.01), torch.optim.Adam([model.bias], lr=0.01)
    (x, y), (xv, yv) = batch(4096, 1), batch(1024, 2)
    with mlflow.start_run() as run:
        for epoch in range(5):
            total = 0.0
            for i in range(0, len(x), 64):
                sparse.zero_grad()
                dense.zero_grad()
                loss = bce(model(x[i : i + 64]), y[i : i + 64])
                loss.backward()
                sparse.step()
                dense.step()
                total += loss.item() * 64
            with torch.no_grad():
                mlflow.log_metrics({"train_loss": total / len(x), "val_loss": bce(model(xv), yv).item()}, step=epoch)
    res = _audit(run.info.run_id)
    assert res.status == "healthy", (res.status, res.causes)
    with open(mlflow.MlflowClient().download_artifacts(run.info.run_id, schema.DIAGNOSTICS_ARTIFACT)) as fh:
        diagnostics = json.load(fh)
    assert "input_mismatch" not in diagnostics["loss"], diagnostics["loss"]
    assert diagnostics["model"]["trainable_not_in_optimizer"] == [], diagnostics["model"]


def _regression_epochs(model, x, y, xv, yv, epochs, loss_fn, val_out=lambda out: out, lr=1e-2):
    """A regression loop as users write it: Adam, minibatches of 32, per-epoch train_loss / val_loss."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for i in range(0, len(x), 32):
            opt.zero_grad()
            loss = loss_fn(model(x[i : i + 32]), y[i : i + 32])
            loss.backward()
            opt.step()
            total += loss.item() * len(x[i : i + 32])
        model.eval()
        with torch.no_grad():
            val = loss_fn(val_out(model(xv)), yv).item()
        mlflow.log_metrics({"train_loss": total / len(x), "val_loss": val}, step=epoch)


def test_regression_targets_paired_with_the_wrong_rows_are_labels_unrelated(autologged):
    """f178's bug in a plain loop: the targets were looked up by a shuffled index (pandas label indexing), so
    every row trains on another row's target. The model memorises the training pairs; the validation MSE
    never beats predicting the targets' mean (here it rises: the validation-rising reading; f178's flat
    validation loss is the regression reading's, tests/rules/test_labels_unrelated.py)."""
    torch.manual_seed(0)
    x, xv = torch.randn(512, 8), torch.randn(128, 8)
    w = torch.randn(8, 1)
    y, yv = x @ w + 0.1 * torch.randn(512, 1), xv @ w + 0.1 * torch.randn(128, 1)
    y = y[torch.randperm(512)]  # the bug: each input gets another row's target
    model = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 1))
    with mlflow.start_run() as run:
        _regression_epochs(model, x, y, xv, yv, 20, nn.MSELoss(), lr=1e-3)
    res = _audit(run.info.run_id)
    assert res.status == "failed" and res.causes[0] == "labels_unrelated", (res.status, res.causes)


@pytest.mark.parametrize("mapped_back", [False, True])
def test_validation_loss_of_standardised_predictions_against_raw_targets(autologged, mapped_back):
    """f181's bug: trained on standardised targets, validated against the targets in their own units (a level
    near 500) without mapping the predictions back: the validation loss is what predicting 0 scores. Mapped
    back (the fix), the same targets in their units are no mismatch."""
    torch.manual_seed(0)
    x, xv = torch.randn(512, 8), torch.randn(128, 8)
    w = torch.randn(8, 1)
    y, yv = 500 + 60 * (x @ w) / 3, 500 + 60 * (xv @ w) / 3
    mean, std = y.mean(), y.std()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    targets = (y - mean) / std
    with mlflow.start_run() as run:
        _regression_epochs(
            model,
            x,
            targets,
            xv,
            yv,
            8,
            nn.L1Loss(),
            (lambda out: out * std + mean) if mapped_back else (lambda out: out),
        )
    res = _audit(run.info.run_id)
    if mapped_back:
        assert res.status == "healthy", (res.status, res.causes)
    else:
        assert res.causes[0] == "train_val_preprocessing_mismatch", (res.status, res.causes)


def test_softmax_over_one_unit_in_one_of_two_heads_is_still_a_loss_input_mismatch(autologged):
    """A second, healthy head beside the buggy one (found by review): head A's raw logits vary, head B's softmax
    over its single unit is exactly 1 on every step. The varied head must not clear the buggy one."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def make(n):
        x = torch.randn(n, 16, generator=g)
        return x, (x @ w1 > 0).float(), (x @ w2 > 0).float()

    (x, ya, yb), (xv, yva, yvb) = make(1024), make(256)
    body, head_a, head_b = nn.Sequential(nn.Linear(16, 32), nn.ReLU()), nn.Linear(32, 1), nn.Linear(32, 1)
    model = nn.ModuleDict({"body": body, "head_a": head_a, "head_b": head_b})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def losses(inp, a, b):
        h = body(inp)
        bce_a = nn.functional.binary_cross_entropy_with_logits(head_a(h).squeeze(1), a)
        return bce_a + nn.functional.binary_cross_entropy(torch.softmax(head_b(h), dim=1), b.unsqueeze(1))

    with mlflow.start_run() as run:
        for epoch in range(6):
            total = 0.0
            for i in range(0, len(x), 32):
                opt.zero_grad()
                loss = losses(x[i : i + 32], ya[i : i + 32], yb[i : i + 32])
                loss.backward()
                opt.step()
                total += loss.item() * 32
            with torch.no_grad():
                mlflow.log_metrics({"train_loss": total / len(x), "val_loss": losses(xv, yva, yvb).item()}, step=epoch)
    res = _audit(run.info.run_id)
    assert res.causes[0] == "loss_input_mismatch", (res.status, res.causes)


def test_a_forecaster_validated_on_a_later_regime_is_not_labels_unrelated(autologged):
    """Found by review: the target follows an observed regime level plus noise, and validation is the latest
    regime. A good model scores the noise's variance there, which is the validation window's own variance
    (predicting its mean is an oracle); against the training mean it does far better: healthy."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    level = (3 * torch.randn(11, generator=g)).repeat_interleave(200)
    inputs = torch.cat([(level + 0.05 * torch.randn(2200, generator=g))[:, None], torch.randn(2200, 7, generator=g)], 1)
    targets = (level + torch.randn(2200, generator=g))[:, None]
    x, y, xv, yv = inputs[:2000], targets[:2000], inputs[2000:], targets[2000:]
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
    with mlflow.start_run() as run:
        _regression_epochs(model, x, y, xv, yv, 12, nn.MSELoss(), lr=1e-3)
    res = _audit(run.info.run_id)
    assert "labels_unrelated" not in res.causes, (res.status, res.causes)


def test_a_dead_output_on_a_growing_series_is_no_preprocessing_mismatch(autologged):
    """Found by review: an output ReLU dead from the start predicts 0 on both sets, and the later validation
    targets sit above the training ones; the validation loss is what predicting 0 scores, but so is the training
    loss: nothing about the validation targets' preprocessing differs."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(1500.0)
    inputs = torch.stack(
        [torch.sin(t / 7), torch.cos(t / 7), torch.randn(1500, generator=g), torch.randn(1500, generator=g)], 1
    )
    targets = (40 + 0.02 * t + 3 * torch.sin(t / 7) + torch.randn(1500, generator=g))[:, None]
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1), nn.ReLU())
    with torch.no_grad():
        model[2].bias.fill_(-20.0)
    with mlflow.start_run() as run:
        _regression_epochs(model, inputs[:1200], targets[:1200], inputs[1200:], targets[1200:], 6, nn.L1Loss(), lr=1e-3)
    res = _audit(run.info.run_id)
    assert "train_val_preprocessing_mismatch" not in res.causes, (res.status, res.causes)


def test_an_encoder_whose_state_never_reaches_the_decoder_is_named_by_its_missing_gradients(autologged):
    """pytorch-seq2seq#3 in small (f189): the decoder's GRU is called without the encoder's hidden state, so
    the encoder's parameters never get a gradient; the advice says its output never reaches the loss."""

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.GRU(4, 16, batch_first=True)
            self.decoder = nn.GRU(4, 16, batch_first=True)
            self.out = nn.Linear(16, 4)

        def forward(self, src, tgt_in):
            _, hidden = self.encoder(src)  # the bug: computed, never passed on
            dec, _ = self.decoder(tgt_in)  # should be self.decoder(tgt_in, hidden)
            return self.out(dec)

    g = torch.Generator().manual_seed(0)
    src = nn.functional.one_hot(torch.randint(0, 4, (320, 6), generator=g), 4).float()
    tgt = src.flip(1).argmax(-1)  # reverse the sequence
    tgt_in = torch.zeros_like(src)
    torch.manual_seed(0)
    model = Seq2Seq()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with mlflow.start_run() as run:
        for epoch in range(8):
            for i in range(0, 320, 32):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(
                    model(src[i : i + 32], tgt_in[i : i + 32]).flatten(0, 1), tgt[i : i + 32].flatten()
                )
                loss.backward()
                opt.step()
            mlflow.log_metric("train_loss", loss.item(), step=epoch)
    res = _audit(run.info.run_id)
    assert "frozen_parameters" in res.causes, res.causes
    f = res.findings[res.causes.index("frozen_parameters")]
    assert "encoder" in f.summary and "never reaches the loss" in f.recommendation
