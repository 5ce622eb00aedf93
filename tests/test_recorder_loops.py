"""The recorder on loops other than zero_grad/backward/step, on odd models, and its own hygiene
(hooks removed when switched off, bounded state on long runs). Real tiny models, real sqlite."""

from __future__ import annotations

import logging
import math

import mlflow
import pytest
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit.recorder import patches, sink
from mlflow_nnaudit.recorder import session as session_module
from mlflow_nnaudit.recorder.probes import ActivationProbe, DataProbe, UpdateProbe
from mlflow_nnaudit.recorder.probes.loss import LossProbe


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in MlflowClient().get_metric_history(run_id, key)]


def recorded_both_ways(train, **autolog) -> tuple[list, list, str]:
    """Train once with the recorder off and once on: (losses off, losses on, run id on)."""
    mlflow_nnaudit.autolog(disable=True)
    with mlflow.start_run():
        without = train()
    mlflow_nnaudit.autolog(**autolog)
    with mlflow.start_run() as run:
        with_recorder = train()
    return without, with_recorder, run.info.run_id


def recorder_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mlflow_nnaudit"]


# --- loops without optimizer.step() hooks ---------------------------------------------------
def train_by_hand(steps: int = 20, accumulate: int = 1) -> list[float]:
    """As in PyTorch's own examples: parameters updated under no_grad, gradients set to None."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    losses = []
    for _ in range(steps):
        total = 0.0
        for _ in range(accumulate):
            loss = F.mse_loss(model(x).squeeze(1), y)
            loss.backward()
            total += loss.item()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.05 * p.grad
                p.grad = None
        losses.append(total / accumulate)
    return losses


@pytest.mark.parametrize("accumulate", [1, 2])
def test_loop_without_optimizer_is_counted_from_backward(store_uri, accumulate, caplog):
    with caplog.at_level(logging.WARNING, logger="mlflow_nnaudit"):
        without, with_recorder, run_id = recorded_both_ways(
            lambda: train_by_hand(20, accumulate), sample_every_n_steps=5, max_probe_overhead=None
        )
    assert with_recorder == without
    assert recorder_warnings(caplog) == []
    loss = history(run_id, "nnaudit/train_loss")
    assert [s for s, _ in loss] == list(range(20))  # one step per update, not per backward call
    assert [v for _, v in loss] == pytest.approx(with_recorder, rel=1e-5)
    grads = history(run_id, "nnaudit/grad_norm_total")
    assert len(grads) >= 3 and all(math.isfinite(v) and v > 0 for _, v in grads)
    ratios = history(run_id, "nnaudit/update_ratio/0")  # the update by hand is measured too
    assert ratios and all(0 < v < 1 for _, v in ratios)
    assert MlflowClient().get_run(run_id).data.params["nnaudit.optimizer"] == "none"


def train_lbfgs(steps: int = 6, zero_grad_in_closure: bool = True) -> list[float]:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    model = nn.Linear(4, 1)
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
    losses = []
    for _ in range(steps):

        def closure():
            if zero_grad_in_closure:
                opt.zero_grad()
            loss = F.mse_loss(model(x).squeeze(1), y)
            loss.backward()
            return loss

        if not zero_grad_in_closure:
            opt.zero_grad()  # once a step, outside the closure: its later calls add to the first's gradients
        losses.append(opt.step(closure).item())  # LBFGS returns the closure's first loss
    return losses


def test_lbfgs_closure_steps(store_uri, caplog):
    with caplog.at_level(logging.WARNING, logger="mlflow_nnaudit"):
        without, with_recorder, run_id = recorded_both_ways(
            train_lbfgs, sample_every_n_steps=1, max_probe_overhead=None
        )
    assert with_recorder == without
    assert recorder_warnings(caplog) == []
    loss = history(run_id, "nnaudit/train_loss")
    # one point per optimizer step (not per closure call), the loss at the step's start
    assert [s for s, _ in loss] == list(range(6))
    assert [v for _, v in loss] == pytest.approx(with_recorder, rel=1e-6)
    grads = history(run_id, "nnaudit/grad_norm_total")
    # taken after the closure's first call: the gradients at the step's start, not the last step's
    assert grads[0][0] == 0 and grads[0][1] > 1
    assert history(run_id, "nnaudit/update_ratio/Linear")[0][1] > 0
    # each step that called its closure again began that call from zero gradients (a converged
    # step calls it once)
    again = [v for _, v in history(run_id, "nnaudit/grad_present_in_closure")]
    assert again and set(again) == {0.0}


def test_lbfgs_closure_without_zero_grad_is_seen_on_its_second_call(store_uri):
    without, with_recorder, run_id = recorded_both_ways(
        lambda: train_lbfgs(zero_grad_in_closure=False), sample_every_n_steps=1, max_probe_overhead=None
    )
    assert with_recorder == without
    # the step's first closure call is clean (zero_grad() before the step), its second is not
    assert [v for _, v in history(run_id, "nnaudit/grad_present_before_backward")] == [0.0] * 5
    again = [v for _, v in history(run_id, "nnaudit/grad_present_in_closure")]
    assert again and set(again) == {1.0}


def train_adam_beside_an_lbfgs_fit(steps: int = 8) -> list[float]:
    """Adam trains the model; an L-BFGS fits a temperature on its outputs each step, zeroing its own
    gradients inside its closure (a calibration or linear-probe fit beside training)."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    t = torch.ones(1, requires_grad=True)
    fit = torch.optim.LBFGS([t], lr=0.1, max_iter=5)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()  # the model's gradients stay until the next zero_grad()
        opt.step()
        with torch.no_grad():
            logits = model(x)

        def closure(logits=logits):
            fit.zero_grad()
            nll = F.cross_entropy(logits / t, y)
            nll.backward()
            return nll

        fit.step(closure)
        out.append(loss.item())
    return out


def test_another_optimizers_closure_is_not_checked_against_the_followed_parameters(store_uri):
    without, with_recorder, run_id = recorded_both_ways(
        train_adam_beside_an_lbfgs_fit, sample_every_n_steps=1, max_probe_overhead=None
    )
    assert with_recorder == without
    # the L-BFGS closure zeroes its own gradients; the model's, left from Adam's step, are not its business
    assert set(v for _, v in history(run_id, "nnaudit/grad_present_in_closure")) <= {0.0}


class FunctionalDropout(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.a, self.b, self.kind = nn.Linear(4, 16), nn.Linear(16, 2), kind
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        h = torch.relu(self.a(x))
        if self.kind == "default":  # the bug: F.dropout's `training` defaults to True, whatever model.eval() said
            h = F.dropout(h, 0.5)
        elif self.kind == "mode_aware":
            h = F.dropout(h, 0.5, training=self.training)
        elif self.kind == "explicit":  # dropout asked for in evaluation too, in so many words
            h = F.dropout(h, 0.5, training=True)
        else:  # "mc": the dropout module switched back on after model.eval() (Monte Carlo dropout)
            h = self.drop(h)
        return self.b(h)


def train_functional_dropout(kind: str, epochs: int = 6) -> list[float]:
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), (torch.randn(64) > 0).long()
    model = FunctionalDropout(kind)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = []
    for _ in range(epochs):
        model.train()
        for i in range(0, 64, 16):
            opt.zero_grad()
            F.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).backward()
            opt.step()
        model.eval()
        if kind == "mc":
            model.drop.train()
        with torch.no_grad():
            out.append(F.cross_entropy(model(x), y).item())
    return out


@pytest.mark.parametrize("kind", ["default", "mode_aware", "explicit", "mc"])
def test_a_functional_dropout_that_ignores_eval_mode_is_counted(store_uri, kind):
    original = F.dropout
    without, with_recorder, run_id = recorded_both_ways(
        lambda: train_functional_dropout(kind), sample_every_n_steps=1, max_probe_overhead=None
    )
    assert with_recorder == without
    assert F.dropout is original  # watched only within the checked evaluation forwards
    from tests.test_recorder import diagnostics_of

    facts = diagnostics_of(run_id).get("eval_in_train_mode", {})
    if kind == "default":  # one call in each of the first evaluation forwards watched
        assert facts["functional_dropout_calls"] == 3 and "mode_dependent_layers" not in facts, facts
    else:
        assert "functional_dropout_calls" not in facts


def test_a_watched_evaluation_forward_that_raises_leaves_torch_as_it_was(store_uri):
    class Flaky(FunctionalDropout):
        calls = 0

        def forward(self, x):
            out = super().forward(x)
            if not self.training:
                Flaky.calls += 1
                if Flaky.calls == 1:
                    raise ValueError("bad batch")  # the user's loop catches it and goes on
            return out

    original = F.dropout
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), (torch.randn(32) > 0).long()
    model = Flaky("default")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mlflow_nnaudit.autolog(sample_every_n_steps=1, max_probe_overhead=None)
    with mlflow.start_run():
        for _ in range(3):
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                try:
                    model(x)
                except ValueError:
                    assert F.dropout is not original  # (the watch was on when it raised)
        model.train()
        model(x)  # the next forward undoes the watch the raising one left
        assert F.dropout is original


# --- AMP ------------------------------------------------------------------------------------
def train_amp(steps: int = 12, overflow_at: tuple[int, ...] = (3,)) -> list[tuple[float, float]]:
    """bf16 autocast with a GradScaler on CPU; at `overflow_at` a gradient is made infinite (as an
    fp16 overflow would), so the scaler skips that step and halves its scale."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    out = []
    for i in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        handle = model[0].weight.register_hook(lambda g: torch.full_like(g, math.inf)) if i in overflow_at else None
        scaler.scale(loss).backward()
        if handle is not None:
            handle.remove()
        scaler.step(opt)
        scaler.update()
        out.append((loss.item(), scaler.get_scale()))
    return out


def test_amp_skipped_step_is_no_divergence_evidence(store_uri):
    without, with_recorder, run_id = recorded_both_ways(train_amp, sample_every_n_steps=1, max_probe_overhead=None)
    assert with_recorder == without
    assert with_recorder[2][1] == 1024 and with_recorder[3][1] == 512, "the scaler did not skip"
    loss = history(run_id, "nnaudit/train_loss")
    # 11 optimizer steps for 12 iterations; losses unscaled (not x1024) and all finite
    stepped = [v for i, (v, _) in enumerate(with_recorder) if i != 3]
    assert [s for s, _ in loss] == list(range(11))
    assert [v for _, v in loss] == pytest.approx(stepped, rel=1e-6)
    assert all(math.isfinite(v) for _, v in history(run_id, "nnaudit/grad_norm_total"))
    assert all(v == 0 for _, v in history(run_id, "nnaudit/nonfinite_grads"))
    assert history(run_id, "nnaudit/amp_skipped_steps") == [(3, 1.0)]
    result = mlflow_nnaudit.audit(tracking_uri=store_uri, force=True, dry_run=True)
    causes = {f.cause for r in result if r.run_id == run_id for f in r.findings}
    assert not causes & {"nonfinite_loss", "exploding_gradients", "learning_rate_too_high"}, causes


# --- odd models -----------------------------------------------------------------------------
class TupleOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = self.fc(x)
        return h, h.detach().abs()


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, batch):  # a dict batch in, a dict out
        return {"logits": self.fc(batch["x"]), "aux": batch["x"].mean()}


class Embedder(nn.Module):
    def __init__(self, sparse: bool = False):
        super().__init__()
        self.emb = nn.Embedding(20, 4, sparse=sparse)  # sparse: its gradient is a sparse tensor
        self.fc = nn.Linear(4, 3)

    def forward(self, tokens):
        return self.fc(self.emb(tokens).mean(dim=1))


class NoParams(nn.Module):
    """A functional model: its weights are plain tensors handed to it, it owns none."""

    def forward(self, x, w):
        return torch.relu(x @ w)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)
        self.b.weight = self.a.weight  # shared between the layers
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.b(torch.relu(self.a(x)))))


class Growing(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 3))

    def grow(self):
        self.body.append(nn.ReLU())
        self.body.append(nn.Linear(3, 3))


GLOBAL_FORWARD_HOOKS_AT_END: list[int] = []


def train_odd(kind: str, steps: int = 12) -> list[float]:
    torch.manual_seed(0)
    x = torch.randn(48, 6)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    tokens = torch.randint(0, 20, (48, 5))
    w = torch.randn(6, 3, requires_grad=True) if kind == "no_params" else None
    model = {
        "tuple": TupleOut,
        "dict": DictOut,
        "embedding": Embedder,
        "sparse_embedding": lambda: Embedder(sparse=True),
        "no_params": NoParams,
        "tied": Tied,
        "growing": Growing,
    }[kind]()
    params = [w] if w is not None else model.parameters()
    # (Adam takes no sparse gradient: word2vec-style code pairs them with SGD or SparseAdam)
    opt = torch.optim.SGD(params, lr=0.1) if kind == "sparse_embedding" else torch.optim.Adam(params, lr=1e-2)
    losses = []
    for i in range(steps):
        idx = torch.arange(i * 8, i * 8 + 8) % 48
        if kind == "growing" and i == steps // 2:
            model.grow()  # a layer added mid-run, its parameters handed to the optimizer
            opt.add_param_group({"params": list(model.body[-1].parameters())})
        opt.zero_grad()
        if kind == "tuple":
            logits, _ = model(x[idx])
        elif kind == "dict":
            logits = model({"x": x[idx], "y": y[idx]})["logits"]
        elif kind in ("embedding", "sparse_embedding"):
            logits = model(tokens[idx])
        elif kind == "no_params":
            logits = model(x[idx], w)
        else:
            logits = model.body(x[idx]) if kind == "growing" else model(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    GLOBAL_FORWARD_HOOKS_AT_END.append(len(torch.nn.modules.module._global_forward_pre_hooks))
    return losses


@pytest.mark.parametrize("kind", ["tuple", "dict", "embedding", "sparse_embedding", "no_params", "tied", "growing"])
def test_odd_models_train_identically_without_complaint(store_uri, kind, caplog):
    with caplog.at_level(logging.WARNING, logger="mlflow_nnaudit"):
        without, with_recorder, run_id = recorded_both_ways(
            lambda: train_odd(kind), sample_every_n_steps=1, max_probe_overhead=None
        )
    assert with_recorder == without
    assert recorder_warnings(caplog) == []
    assert [s for s, _ in history(run_id, "nnaudit/train_loss")] == list(range(12))
    assert len(history(run_id, "nnaudit/grad_norm_total")) == 12
    # no module owns the weights of a functional model: the global forward hook that looks
    # for the model must not stay on for the rest of training (checked before the run ends)
    assert GLOBAL_FORWARD_HOOKS_AT_END[-1] == 0


# --- a probe that fails ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, method, name",
    [
        (UpdateProbe, "after_step", "updates"),
        (ActivationProbe, "before_step", "activations"),
        (DataProbe, "on_input", "inputs"),
        (LossProbe, "on_loss", "loss"),
    ],
)
def test_each_failing_probe_is_switched_off_with_one_warning(store_uri, monkeypatch, caplog, cls, method, name):
    def broken(*args, **kwargs):
        # as torch's dispatcher errors are: one line of cause, then every backend on a line of its own
        raise RuntimeError("odd model\n" + "".join(f"Backend{i}: registered at somewhere.cpp\n" for i in range(40)))

    from tests.test_recorder import train

    monkeypatch.setattr(cls, method, broken)  # fault injection
    mlflow_nnaudit.autolog(sample_every_n_steps=1, max_probe_overhead=None)
    with caplog.at_level(logging.WARNING, logger="mlflow_nnaudit"):
        with mlflow.start_run() as run:
            losses = train(steps=10)
    messages = recorder_warnings(caplog)
    assert len(messages) == 1 and f"'{name}'" in messages[0], messages
    assert "RuntimeError: odd model..." in messages[0] and "\n" not in messages[0]  # one line, not the backends
    assert len(history(run.info.run_id, "nnaudit/train_loss")) == 10
    assert len(history(run.info.run_id, "nnaudit/grad_norm_total")) == 10  # the other probes go on
    monkeypatch.undo()
    mlflow_nnaudit.autolog(disable=True)
    with mlflow.start_run():
        assert train(steps=10) == losses


# --- hooks removed when switched off ----------------------------------------------------------
def our_hooks() -> dict[str, bool]:
    from torch.amp.grad_scaler import GradScaler
    from torch.optim import optimizer

    return {
        "optimizer_pre": any(h is patches._step_pre_hook for h in optimizer._global_optimizer_pre_hooks.values()),
        "optimizer_post": any(h is patches._step_post_hook for h in optimizer._global_optimizer_post_hooks.values()),
        "backward": hasattr(torch.Tensor.backward, "__nnaudit_original__"),
        "losses": hasattr(F.cross_entropy, "__nnaudit_original__"),
        "grad_scaler": hasattr(GradScaler.step, "__nnaudit_original__"),
        "end_run": hasattr(mlflow.end_run, "__wrapped__"),
        "forward": bool(torch.nn.modules.module._global_forward_pre_hooks),
    }


def test_own_autolog_disable_removes_every_hook_at_once(store_uri):
    from tests.test_recorder import train

    mlflow_nnaudit.autolog()
    with mlflow.start_run():
        train(steps=3)
    assert our_hooks()["optimizer_pre"] and our_hooks()["backward"]
    mlflow_nnaudit.autolog(disable=True)
    assert not any(our_hooks().values()), our_hooks()
    mlflow_nnaudit.autolog()  # and back
    with mlflow.start_run() as run:
        train(steps=3)
    assert len(history(run.info.run_id, "nnaudit/train_loss")) == 3


def test_mlflow_autolog_disable_removes_the_hooks_by_the_next_run(store_uri):
    from tests.test_recorder import train

    mlflow.autolog()
    with mlflow.start_run():
        train(steps=3)
    mlflow.autolog(disable=True)
    with mlflow.start_run() as run:  # MLflow asks our run-context provider at every run start
        assert not any(our_hooks().values()), our_hooks()
        train(steps=3)
    assert not [k for k in MlflowClient().get_run(run.info.run_id).data.metrics if k.startswith("nnaudit/")]
    mlflow.autolog()
    with mlflow.start_run() as run:
        train(steps=3)
    assert len(history(run.info.run_id, "nnaudit/train_loss")) == 3


# --- bounded state on long runs ----------------------------------------------------------------
def test_recorder_state_stays_bounded_over_many_steps(store_uri, monkeypatch):
    monkeypatch.setattr(sink, "FLUSH_AT_POINTS", 500)
    mlflow_nnaudit.autolog(flush_every_seconds=3600)  # only the point count triggers flushes
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(3000, 4), torch.randint(0, 3, (3000,))
    buffered, pending, seen, losses = [], [], [], []
    with mlflow.start_run() as run:
        for i in range(3000):
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i : i + 1].expand(8, 4)), y[i : i + 1].expand(8))
            loss.backward()
            opt.step()
            losses.append(loss.item())
            session = patches.RECORDER.session
            buffered.append(session.buffered)
            pending.append(len(patches.RECORDER.pending))
            act = next(p for p in session.probes if isinstance(p, ActivationProbe))
            seen.append(sum(len(v) for v in act._seen.values()) + len(act._handles))
            if i % 10 == 0:
                with torch.no_grad():
                    F.cross_entropy(model(x[:8]), y[:8])  # an evaluation loss now and then
        data_probe, loss_probe = session.data_probe, session.loss_probe
        assert max(buffered) <= 500 + 20  # a flush at 500 points, whatever flush_every_seconds says
        assert max(pending) == 0  # the losses are taken at each step
        assert max(seen) <= 2  # activation hooks and outputs held for one sampled forward at most
        assert len(data_probe.train.batch_sizes) <= 1000 and len(data_probe.eval.batch_sizes) <= 1000
        assert loss_probe.label_counts.numel() == 3
        assert session.sink.dropped == 0
    assert len(history(run.info.run_id, "nnaudit/val_loss")) == 300
    assert_loss_windows(history(run.info.run_id, "nnaudit/train_loss"), losses)


def assert_loss_windows(points: list[tuple[int, float]], losses: list[float]) -> None:
    """`nnaudit/train_loss` holds every step's loss up to FULL_RESOLUTION_STEPS, then each point
    is the mean of the losses since the previous point (windows no longer than 200 steps)."""
    full = session_module.FULL_RESOLUTION_STEPS
    steps = [s for s, _ in points]
    assert steps[:full] == list(range(full)) and steps[-1] == len(losses) - 1
    previous = -1
    for step, value in points:
        window = losses[previous + 1 : step + 1]
        assert 1 <= len(window) <= session_module.MAX_SAMPLE_INTERVAL
        assert value == pytest.approx(sum(window) / len(window), rel=1e-5, nan_ok=True)
        previous = step


def test_train_loss_is_averaged_over_windows_when_steps_outrun_the_store(store_uri, monkeypatch):
    """Past FULL_RESOLUTION_STEPS, a step far cheaper than writing a point gets one point per
    window of steps (here the budget is tiny, so windows are as long as allowed); a NaN loss
    inside a window makes that window's point NaN, and only that one."""
    monkeypatch.setattr(session_module, "FULL_RESOLUTION_STEPS", 20)
    mlflow_nnaudit.autolog(max_probe_overhead=1e-6, flush_every_seconds=0.0)  # a flush after every step
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    losses = []
    with mlflow.start_run() as run:
        for i in range(620):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            if i == 300:
                loss = loss + torch.tensor(float("nan"))  # a NaN loss whose gradients are still finite
            loss.backward()
            opt.step()
            losses.append(loss.item())
    points = history(run.info.run_id, "nnaudit/train_loss")
    assert_loss_windows(points, losses)
    assert len(points) <= 20 + 600 // 100  # windows of ~200 steps after the first 20
    bad = [s for s, v in points if not math.isfinite(v)]
    assert len(bad) == 1 and bad[0] >= 300 and bad[0] - 300 < session_module.MAX_SAMPLE_INTERVAL


# --- the fast paths of ordinary steps ----------------------------------------------------------
def test_ordinary_steps_take_the_fast_paths_and_miss_nothing(store_uri):
    """Between sampled steps the loss, backward and pre-step hooks take their fast paths
    (`Recorder.quiet`). They must keep every training loss, still see an evaluation done in
    eval mode with autograd on (a validation loss, not a training one), and stop recording at
    the first step after the recorder is switched off."""
    mlflow_nnaudit.autolog(sample_every_n_steps=7, max_probe_overhead=None)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    losses, quiet = [], []
    with mlflow.start_run() as run:
        for i in range(60):
            if i == 45:
                mlflow_nnaudit.autolog(disable=True)  # switched off between two ordinary steps
            quiet.append(patches.RECORDER.quiet)
            opt.zero_grad()
            loss = F.cross_entropy(model(x[:32]), y[:32])
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if i % 15 == 14 and i < 45:
                model.eval()  # evaluation with autograd on: only the eval mode tells
                F.cross_entropy(model(x[32:]), y[32:])
                model.train()
    assert sum(quiet[:45]) >= 30  # most steps before the switch-off were ordinary ones
    train_points = history(run.info.run_id, "nnaudit/train_loss")
    assert [s for s, _ in train_points] == list(range(45))
    assert [v for _, v in train_points] == pytest.approx(losses[:45], rel=1e-6)
    assert [s for s, _ in history(run.info.run_id, "nnaudit/val_loss")] == [15, 30, 45]
