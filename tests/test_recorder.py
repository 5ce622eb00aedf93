"""The recorder on real (tiny) PyTorch training into a real sqlite store."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import textwrap

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit import schema
from mlflow_nnaudit.recorder.probes.gradients import GradientProbe


def train(steps: int = 40, lr: float = 0.05, seed: int = 0, manual_backward_only: bool = False) -> list[float]:
    """A plain loop: zero_grad, forward, backward, step. Returns the losses it saw."""
    torch.manual_seed(seed)
    x = torch.randn(256, 8)
    y = (x[:, :2].sum(dim=1) > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for i in range(steps):
        idx = torch.arange(i * 16, i * 16 + 16) % 256
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def metrics_of(run_id: str) -> dict[str, list]:
    client = MlflowClient()
    run = client.get_run(run_id)
    return {k: client.get_metric_history(run_id, k) for k in run.data.metrics}


def test_recorder_never_changes_the_numbers(store_uri):
    mlflow_nnaudit.autolog(disable=True)
    with mlflow.start_run():
        without = train()
    mlflow_nnaudit.autolog(sample_every_n_steps=1, max_probe_overhead=None)
    with mlflow.start_run():
        with_recorder = train()
    assert with_recorder == without  # bit-for-bit


def test_records_every_step_loss_and_sampled_layer_statistics(store_uri):
    mlflow_nnaudit.autolog(sample_every_n_steps=5, max_probe_overhead=None)
    with mlflow.start_run() as run:
        losses = train(steps=40)
    m = metrics_of(run.info.run_id)
    hist = m["nnaudit/train_loss"]
    assert [h.step for h in hist] == list(range(40))
    assert [h.value for h in hist] == pytest.approx(losses, rel=1e-6)
    assert len(m["nnaudit/grad_norm_total"]) == 8  # steps 0, 5, ..., 35
    # per-layer statistics, named after the model's modules (0 and 2 are the Linear layers)
    for key in ("grad_norm/0", "grad_norm/2", "weight_norm/0", "update_ratio/0", "update_ratio/2"):
        assert f"nnaudit/{key}" in m, sorted(m)
    ratios = [h.value for h in m["nnaudit/update_ratio/0"]]
    assert all(0 < r < 1 for r in ratios)
    assert m["nnaudit/lr"][0].value == pytest.approx(0.05)
    run_data = MlflowClient().get_run(run.info.run_id).data
    assert run_data.params["nnaudit.optimizer"] == "SGD"
    assert float(run_data.params["nnaudit.optimizer.lr"]) == pytest.approx(0.05)
    assert run_data.tags["nnaudit.recorder.version"] == mlflow_nnaudit.__version__
    arts = [a.path for a in MlflowClient().list_artifacts(run.info.run_id, "nnaudit")]
    assert schema.DIAGNOSTICS_ARTIFACT in arts


def train_with_schedule(make_scheduler, steps: int, step_every: int) -> list[float]:
    """The plain loop with an lr scheduler stepped every `step_every` steps; the rates in effect."""
    torch.manual_seed(0)
    x, model = torch.randn(64, 8), nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = make_scheduler(opt)
    rates = []
    for i in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        if (i + 1) % step_every == 0:
            scheduler.step()
    return rates


def test_a_step_change_of_the_learning_rate_is_logged_where_it_happens(store_uri):
    # sampled only every 100 steps: StepLR's 10x cuts at steps 10, 20, 30 show at those steps anyway
    mlflow_nnaudit.autolog(sample_every_n_steps=100, max_probe_overhead=None)
    with mlflow.start_run() as run:
        rates = train_with_schedule(lambda o: torch.optim.lr_scheduler.StepLR(o, 1, gamma=0.1), 40, 10)
    lr = {h.step: h.value for h in metrics_of(run.info.run_id)["nnaudit/lr"]}
    assert sorted(lr) == [0, 10, 20, 30]
    assert [lr[s] for s in sorted(lr)] == pytest.approx([rates[s] for s in sorted(lr)])


def test_a_smooth_schedule_logs_a_point_per_halving_only(store_uri):
    # a per-step cosine from 0.05 to 0.05/16 over 200 steps changes the rate every step: logged at
    # each 2x move (4 of them) besides the sampled steps, not 200 times
    mlflow_nnaudit.autolog(sample_every_n_steps=100, max_probe_overhead=None)
    with mlflow.start_run() as run:
        train_with_schedule(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 200, eta_min=0.05 / 16), 200, 1)
    steps = [h.step for h in metrics_of(run.info.run_id)["nnaudit/lr"]]
    assert 0 in steps and 100 in steps and len(steps) <= 2 + 4


def test_starts_a_run_when_none_is_active(store_uri):
    mlflow_nnaudit.autolog()
    assert mlflow.active_run() is None
    train(steps=5)
    run = mlflow.active_run()
    assert run is not None
    mlflow.end_run()
    data = MlflowClient().get_run(run.info.run_id).data
    assert data.tags["nnaudit.recorder.started_run"] == "true"
    assert len(MlflowClient().get_metric_history(run.info.run_id, "nnaudit/train_loss")) == 5


def test_each_run_gets_its_own_metrics(store_uri):
    mlflow_nnaudit.autolog()
    ids = []
    for steps in (7, 12):
        with mlflow.start_run() as run:
            train(steps=steps)
        ids.append(run.info.run_id)
    counts = [len(MlflowClient().get_metric_history(r, "nnaudit/train_loss")) for r in ids]
    assert counts == [7, 12]
    assert [h.step for h in MlflowClient().get_metric_history(ids[1], "nnaudit/train_loss")] == list(range(12))


def test_nan_loss_is_recorded_as_nan(store_uri):
    mlflow_nnaudit.autolog()
    with mlflow.start_run() as run:
        losses = train(steps=30, lr=1e4)
    assert any(math.isnan(v) for v in losses), "the fault did not happen"
    hist = MlflowClient().get_metric_history(run.info.run_id, "nnaudit/train_loss")
    assert any(math.isnan(h.value) for h in hist)


def test_disable_records_nothing(store_uri):
    mlflow_nnaudit.autolog(disable=True)
    with mlflow.start_run() as run:
        train(steps=5)
    assert not [k for k in MlflowClient().get_run(run.info.run_id).data.metrics if k.startswith("nnaudit/")]


def test_a_failing_probe_is_switched_off_and_training_goes_on(store_uri, monkeypatch, caplog):
    def broken(self, ctx):
        raise RuntimeError("odd model")

    monkeypatch.setattr(GradientProbe, "before_step", broken)  # fault injection
    mlflow_nnaudit.autolog(sample_every_n_steps=1, max_probe_overhead=None)
    with caplog.at_level(logging.WARNING, logger="mlflow_nnaudit"):
        with mlflow.start_run() as run:
            losses = train(steps=10)
    warnings = [r for r in caplog.records if "gradients" in r.getMessage()]
    assert len(warnings) == 1
    mlflow_nnaudit.autolog(disable=True)
    with mlflow.start_run():
        assert train(steps=10) == losses
    m = metrics_of(run.info.run_id)
    assert "nnaudit/grad_norm_total" not in m
    assert len(m["nnaudit/train_loss"]) == 10 and "nnaudit/update_ratio/0" in m


def test_a_run_resumed_from_a_checkpoint_keeps_its_first_params_without_a_warning(store_uri, caplog):
    """The checkpoint recipe: the job stops, a new process resumes the same run (`start_run(run_id=...)`) with a
    new optimizer whose learning rate its schedule has lowered (held-out program h82). MLflow refuses a changed
    param: the recorder kept warning that it could not write to the store. The first values stay, quietly."""
    mlflow_nnaudit.autolog(sample_every_n_steps=1, max_probe_overhead=None)
    with caplog.at_level(logging.WARNING, logger="mlflow_nnaudit"):
        with mlflow.start_run() as run:
            train(steps=5, lr=0.05)
        with mlflow.start_run(run_id=run.info.run_id):
            train(steps=5, lr=0.02)
    assert not [r.getMessage() for r in caplog.records], [r.getMessage() for r in caplog.records]
    params = MlflowClient().get_run(run.info.run_id).data.params
    assert float(params[schema.PARAM_OPTIMIZER_LR]) == 0.05
    assert len(metrics_of(run.info.run_id)["nnaudit/train_loss"]) == 10


def test_sampling_thins_out_when_probes_cost_too_much(store_uri):
    # a tiny model: one sample of the probes costs far more than 1/1000 of a step
    mlflow_nnaudit.autolog(sample_every_n_steps=1, max_probe_overhead=0.001)
    with mlflow.start_run() as run:
        train(steps=120)
    sampled = [h.step for h in MlflowClient().get_metric_history(run.info.run_id, "nnaudit/grad_norm_total")]
    assert sampled[0] == 0
    assert 2 <= len(sampled) < 60
    assert len(MlflowClient().get_metric_history(run.info.run_id, "nnaudit/train_loss")) == 120


def test_silent_suppresses_warnings(store_uri, monkeypatch, caplog):
    monkeypatch.setattr(GradientProbe, "before_step", lambda self, ctx: 1 / 0)
    mlflow_nnaudit.autolog(silent=True)
    with caplog.at_level(logging.WARNING, logger="mlflow_nnaudit"), mlflow.start_run():
        train(steps=3)
    assert not [r for r in caplog.records if r.name == "mlflow_nnaudit"]


# --- activation through a plain mlflow.autolog(), in fresh processes ----------------------------
SCRIPT = """
import os, sys
{imports}
mlflow.set_tracking_uri({uri!r})
{autolog}
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Linear(4, 2)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
with mlflow.start_run() as run:
    for _ in range(6):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 2, (8,)))
        loss.backward()
        opt.step()
keys = mlflow.tracking.MlflowClient().get_run(run.info.run_id).data.metrics
print(sorted(k for k in keys if k.startswith("nnaudit/")))
"""


@pytest.mark.parametrize(
    "name, imports, autolog, env, records",
    [
        ("mlflow.autolog, torch imported after", "import mlflow", "mlflow.autolog()", {}, True),
        ("mlflow.autolog, torch imported before", "import torch\nimport mlflow", "mlflow.autolog()", {}, True),
        ("mlflow.autolog(disable=True)", "import mlflow", "mlflow.autolog(disable=True)", {}, False),
        ("exclude_flavors", "import mlflow", "mlflow.autolog(exclude_flavors=['nnaudit'])", {}, False),
        ("env var off", "import mlflow", "mlflow.autolog()", {"MLFLOW_NNAUDIT_DISABLE": "true"}, False),
        (
            "explicit call wins over env var",
            "import mlflow, mlflow_nnaudit",
            "mlflow.autolog()\nmlflow_nnaudit.autolog()",
            {"MLFLOW_NNAUDIT_DISABLE": "true"},
            True,
        ),
        ("no autolog at all", "import mlflow", "", {}, False),
    ],
)
def test_activation_in_a_fresh_process(tmp_path, name, imports, autolog, env, records):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = textwrap.dedent(SCRIPT).format(imports=imports, uri=uri, autolog=autolog)
    full_env = {**os.environ, **env}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=full_env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    keys = eval(out.stdout.strip().splitlines()[-1])
    if records:
        assert "nnaudit/train_loss" in keys and "nnaudit/grad_norm_total" in keys, (name, keys)
    else:
        assert keys == [], (name, keys)


def diagnostics_of(run_id: str) -> dict:
    import json

    path = MlflowClient().download_artifacts(run_id, schema.DIAGNOSTICS_ARTIFACT)
    with open(path) as fh:
        return json.load(fh)


def train_with_validation(softmax_head: bool = False, eval_mode: bool = True, epochs: int = 4) -> None:
    torch.manual_seed(0)
    x, xv = torch.randn(256, 8), torch.randn(64, 8)
    y, yv = (x[:, 0] > 0).long(), (xv[:, 0] > 0).long()
    layers = [nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3)]
    if softmax_head:
        layers.append(nn.Softmax(dim=1))
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for i in range(0, 256, 32):
            opt.zero_grad()
            loss_fn(model(x[i : i + 32]), y[i : i + 32]).backward()
            opt.step()
        if eval_mode:
            model.eval()
        with torch.no_grad():
            for j in range(0, 64, 32):  # two validation batches: averaged into one point
                loss_fn(model(xv[j : j + 32]), yv[j : j + 32])


def test_validation_loss_is_captured_without_logging_code(store_uri):
    mlflow_nnaudit.autolog()
    with mlflow.start_run() as run:
        train_with_validation(epochs=4)
    hist = MlflowClient().get_metric_history(run.info.run_id, "nnaudit/val_loss")
    assert [h.step for h in hist] == [8, 16, 24, 32]  # one point per evaluation, at the step reached
    assert all(0 < h.value < 5 for h in hist)
    diag = diagnostics_of(run.info.run_id)
    assert diag["loss"]["loss_function"] == "cross_entropy" and diag["loss"]["n_classes"] == 3
    assert abs(diag["loss"]["first_loss"] - math.log(3)) < 0.5
    assert sum(diag["loss"]["label_counts"]) > 0
    assert "input_mismatch" not in diag["loss"]
    assert "eval_in_train_mode" not in diag


def test_softmax_before_cross_entropy_is_seen(store_uri):
    mlflow_nnaudit.autolog()
    with mlflow.start_run() as run:
        train_with_validation(softmax_head=True, epochs=1)
    diag = diagnostics_of(run.info.run_id)
    assert diag["loss"]["input_mismatch"]["problem"] == "probabilities"


def poly1_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 1.0) -> torch.Tensor:
    """PolyLoss (Leng et al. 2022) as polyloss-pytorch writes it: a per-sample cross-entropy plus epsilon (1 - p_t)."""
    pt = (nn.functional.one_hot(labels, logits.shape[1]) * nn.functional.softmax(logits, dim=-1)).sum(-1)
    return (nn.functional.cross_entropy(logits, labels, reduction="none") + epsilon * (1 - pt)).mean()


def train_with_own_loss(softmax_head: bool = False, reduced_later: bool = False, n: int = 256) -> dict:
    """Two epochs of `train_with_validation`'s classifier under `poly1_loss` over `n` samples in batches of 32 (the
    last one short); with `reduced_later`, 3 more under `nn.CrossEntropyLoss` on labels 0 and 1 only. The diagnostics."""
    torch.manual_seed(0)
    x, y = torch.randn(n, 8), torch.randint(0, 3, (n,))
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3), *([nn.Softmax(dim=1)] if softmax_head else []))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mlflow_nnaudit.autolog()
    reduced: list[float] = []
    with mlflow.start_run() as run:
        for epoch in range(5 if reduced_later else 2):
            loss_fn = nn.CrossEntropyLoss() if epoch >= 2 else poly1_loss
            for i in range(0, n, 32):
                opt.zero_grad()
                loss = loss_fn(model(x[i : i + 32]), y[i : i + 32] % (2 if epoch >= 2 else 3))
                reduced += [loss.item()] if epoch >= 2 else []
                loss.backward()
                opt.step()
    return diagnostics_of(run.info.run_id)["loss"] | ({"first_reduced": reduced[0]} if reduced else {})


def test_a_loss_built_on_a_per_sample_cross_entropy_is_read_for_what_it_is_fed(store_uri):
    loss = train_with_own_loss()
    assert loss["per_sample_loss"] == "cross_entropy" and loss["loss_function"] is None
    assert len(loss["label_counts"]) == 3 and sum(loss["label_counts"]) >= 5 * 32  # the first calls, checked
    # the objective is not the function's mean: no first loss or chance level is read from it
    assert loss["n_classes"] is None and "first_loss" not in loss and "chance_loss" not in loss
    assert "input_mismatch" not in loss
    assert train_with_own_loss(softmax_head=True)["input_mismatch"]["problem"] == "probabilities"


def test_a_reduced_loss_call_takes_over_from_per_sample_ones(store_uri):
    loss = train_with_own_loss(reduced_later=True)
    assert loss["loss_function"] == "cross_entropy" and loss["n_classes"] == 3 and "per_sample_loss" not in loss
    assert loss["label_counts"][2] == 0  # the per-sample calls' labels (class 2 among them) were dropped
    # the first reduced call is seen whether its step is sampled or not: per-sample calls keep the quiet gate shut
    assert loss["first_loss"] == pytest.approx(loss["first_reduced"], rel=1e-5)
    # a batch of one under the per-sample loss (65 samples: 32, 32, 1) is no reduced call (review)
    loss = train_with_own_loss(n=65)
    assert loss["per_sample_loss"] == "cross_entropy" and loss["loss_function"] is None


def test_a_per_sample_nll_loss_is_not_read(store_uri):
    # `-F.nll_loss(log_intensity, event, reduction="none")` gathers a point process's log-likelihood (review):
    # its input is no log-probabilities, and nothing of it is read
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    mlflow_nnaudit.autolog()
    with mlflow.start_run() as run:
        for _ in range(8):
            opt.zero_grad()
            x, events = torch.randn(16, 4), torch.randint(0, 3, (16,))
            (-nn.functional.nll_loss(model(x), events, reduction="none")).exp().mean().backward()
            opt.step()
    loss = diagnostics_of(run.info.run_id)["loss"]
    assert "per_sample_loss" not in loss and "input_mismatch" not in loss and "label_counts" not in loss


def train_binary(pos_weight: float | None = None, soft: bool = False) -> dict:
    """A one-logit classifier under `nn.BCEWithLogitsLoss` for 12 steps; the diagnostics' loss section."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else torch.tensor([pos_weight]))
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    mlflow_nnaudit.autolog()
    with mlflow.start_run() as run:
        for _ in range(12):
            opt.zero_grad()
            x = torch.randn(16, 4)
            y = torch.sigmoid(x[:, :1]) if soft else (x[:, :1] > 0).float()
            loss_fn(model(x), y).backward()
            opt.step()
    return diagnostics_of(run.info.run_id)["loss"]


def test_a_binary_cross_entropys_targets_and_weights_are_recorded(store_uri):
    # what decides whether a 0.5 guess costs ln 2 (the auditor's chance level for one logit)
    plain = train_binary()
    assert plain["binary_targets"] == "hard" and "class_weighted" not in plain
    assert train_binary(pos_weight=9.0)["binary_targets"] == "weighted"
    assert train_binary(soft=True)["binary_targets"] == "soft"


class IdsThenCounts(nn.Module):
    """A click-through-rate model called as `model(cat_ids, counts)`: categorical ids first, numbers second."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.head = nn.Embedding(20, 4), nn.Linear(4 + 3, 1)

    def forward(self, ids: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.emb(ids), counts], dim=1)).squeeze(1)


def test_a_model_called_with_ids_then_features_is_read_on_its_features(store_uri):
    torch.manual_seed(0)
    ids, counts = torch.randint(0, 20, (128,)), torch.rand(128, 3) * torch.tensor([1.0, 100.0, 1e4])
    y = (counts[:, 0] > 0.5).float()
    model = IdsThenCounts()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mlflow_nnaudit.autolog()
    with mlflow.start_run() as run:
        for i in range(0, 128, 16):
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(
                model(ids[i : i + 16], counts[i : i + 16]), y[i : i + 16]
            ).backward()
            opt.step()
    train = diagnostics_of(run.info.run_id)["inputs"]["train"]
    assert train["features"] == 3 and train["max_abs"] > 1000  # the raw counts, not the ids


def test_a_mask_or_hidden_state_after_ids_is_no_input(store_uri):
    # the nn.Transformer tutorial's `model(data, src_mask)` ([S, B] ids, an additive [S, S] mask of -inf) and a
    # word language model's `model(data, hidden)` ([layers, B, H]): neither is what the model is fed (review)
    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.out = nn.Embedding(12, 8), nn.Linear(8, 12)

        def forward(self, ids: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
            return self.out(self.emb(ids))

    torch.manual_seed(0)
    model, s, b = Seq(), 6, 8
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    mask = torch.triu(torch.full((s, s), float("-inf")), diagonal=1)
    mlflow_nnaudit.autolog()
    with mlflow.start_run() as run:
        for extra in (mask, torch.zeros(2, b, 8)):
            for _ in range(4):
                opt.zero_grad()
                ids = torch.randint(0, 12, (s, b))
                nn.functional.cross_entropy(model(ids, extra).reshape(-1, 12), ids.reshape(-1)).backward()
                opt.step()
    assert "train" not in diagnostics_of(run.info.run_id).get("inputs", {})


def test_evaluation_in_training_mode_is_seen(store_uri):
    mlflow_nnaudit.autolog()
    with mlflow.start_run() as run:
        train_with_validation(eval_mode=False, epochs=2)
    diag = diagnostics_of(run.info.run_id)
    assert diag["eval_in_train_mode"]["mode_dependent_layers"] == ["Dropout"]
