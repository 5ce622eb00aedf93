"""The recorder under Lightning, the HuggingFace Trainer and torch.distributed, each switched
on by MLflow's own autolog call only, in fresh processes (as users run them), training tiny
models built in the scripts (nothing downloaded) into a real sqlite store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytest.importorskip("lightning")


def run_script(tmp_path: Path, code: str, env: dict | None = None, timeout: int = 300) -> dict:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    full_env.pop("MLFLOW_NNAUDIT_DISABLE", None)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env={**full_env, **(env or {})},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "mlflow-nnaudit: recorder error" not in out.stderr, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def nnaudit_runs(client: MlflowClient) -> dict[str, dict]:
    """Every run in the store that holds recorder metrics: run id -> its metric keys and tags."""
    out = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            keys = sorted(k for k in run.data.metrics if k.startswith("nnaudit/"))
            if keys:
                out[run.info.run_id] = {"keys": keys, "tags": run.data.tags}
    return out


LIGHTNING = """
import json
import mlflow
mlflow.set_tracking_uri({uri!r})
{autolog}
import torch
from torch import nn
import lightning.pytorch as pl
from lightning.pytorch.loggers import MLFlowLogger

LOSSES = []

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        LOSSES.append(loss.item())
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

torch.manual_seed(0)
x = torch.randn(128, 8)
data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
train = torch.utils.data.DataLoader(data, batch_size=16)
val = torch.utils.data.DataLoader(data, batch_size=64)
logger = {logger}
trainer = pl.Trainer(logger=logger, max_epochs=2, enable_progress_bar=False, enable_checkpointing=False,
                     accelerator="cpu", enable_model_summary=False, num_sanity_val_steps=0)
trainer.fit(Tiny(), train, val)
print(json.dumps({{"logger_run": logger.run_id if logger else None, "losses": LOSSES}}))
"""


@pytest.mark.parametrize(
    "autolog, logger",
    [
        # lightning imported first, so that mlflow.autolog() also patches Trainer.fit and opens a
        # fluent run of its own: the recorder must still follow the MLFlowLogger's run
        (
            "import lightning.pytorch\nmlflow.autolog()",
            "MLFlowLogger(tracking_uri={uri!r}, experiment_name='lightning')",
        ),
        ("mlflow.pytorch.autolog(log_models=False)", "False"),
    ],
    ids=["mlflow.autolog+MLFlowLogger", "mlflow.pytorch.autolog"],
)
def test_lightning_records_into_the_trainers_run(tmp_path, autolog, logger):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_script(tmp_path, LIGHTNING.format(uri=uri, autolog=autolog, logger=logger.format(uri=uri)))
    client = MlflowClient(uri)
    runs = nnaudit_runs(client)
    assert len(runs) == 1, runs  # one run holds the evidence, and the recorder opened none of its own
    run_id, run = next(iter(runs.items()))
    assert "nnaudit.recorder.started_run" not in run["tags"]
    if out["logger_run"]:
        assert run_id == out["logger_run"]
    else:  # mlflow.pytorch.autolog's own run around fit()
        assert client.get_run(run_id).data.tags.get("mlflow.autologging") == "pytorch"
    loss = history(client, run_id, "nnaudit/train_loss")
    assert [s for s, _ in loss] == list(range(16))  # 2 epochs x 8 batches
    assert [v for _, v in loss] == pytest.approx(out["losses"], rel=1e-6)
    # the gradients of a closure step (Lightning's) exist only inside optimizer.step(): the first
    # sampled step must have them
    assert history(client, run_id, "nnaudit/grad_norm_total")[0][0] == 0
    # training_step calls self.net: that is the module found running the parameters, layers 0 and 2
    assert {"nnaudit/grad_norm/0", "nnaudit/update_ratio/2"} <= set(run["keys"])
    val = history(client, run_id, "nnaudit/val_loss")
    assert [s for s, _ in val] == [8, 16]
    assert [v for _, v in val] == pytest.approx([v for _, v in history(client, run_id, "val_loss")], rel=1e-5)


HF = """
import json, os
import mlflow
{autolog}
import torch
from torch import nn
from transformers import Trainer, TrainingArguments

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {{"logits": logits}}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out

class Data(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] > 0).long()
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return {{"x": self.x[i], "labels": self.y[i]}}

torch.manual_seed(0)
args = TrainingArguments(output_dir="out", report_to=["mlflow"], use_cpu=True, num_train_epochs=2,
                         learning_rate=1e-2, per_device_train_batch_size=16, per_device_eval_batch_size=32,
                         eval_strategy="epoch", logging_steps=1, save_strategy="no", disable_tqdm=True,
                         dataloader_num_workers=0)
Trainer(model=Tiny(), args=args, train_dataset=Data(128, 0), eval_dataset=Data(64, 1)).train()
print(json.dumps({{}}))
"""


@pytest.mark.parametrize(
    "autolog, records", [("mlflow.autolog()", True), ("mlflow.autolog(disable=True)", False)], ids=["on", "disabled"]
)
def test_hf_trainer_records_into_its_mlflow_run(tmp_path, autolog, records):
    pytest.importorskip("transformers")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_script(tmp_path, HF.format(autolog=autolog), env={"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "hf"})
    client = MlflowClient(uri)
    all_runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(all_runs) == 1  # the callback's run, no stray one
    run = all_runs[0]
    keys = [k for k in run.data.metrics if k.startswith("nnaudit/")]
    if not records:
        assert keys == []
        return
    run_id = run.info.run_id
    ours = [v for _, v in history(client, run_id, "nnaudit/train_loss")]
    theirs = [v for _, v in history(client, run_id, "loss")]  # the callback's per-step loss (4 decimals)
    assert len(ours) == len(theirs) == 16
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert [v for _, v in history(client, run_id, "nnaudit/val_loss")] == pytest.approx(
        [v for _, v in history(client, run_id, "eval_loss")], abs=1e-4
    )
    assert {"nnaudit/grad_norm_total", "nnaudit/grad_norm/net.0", "nnaudit/update_ratio/net.2"} <= set(keys)


DDP = """
import json, os
import mlflow
mlflow.set_tracking_uri({uri!r})
mlflow.autolog()
import torch
import torch.distributed as dist
from torch import nn

dist.init_process_group("gloo")
torch.manual_seed(0)
model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
g = torch.Generator().manual_seed(dist.get_rank())
for _ in range(10):
    x = torch.randn(16, 4, generator=g)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long()).backward()
    opt.step()
run = mlflow.active_run()
mlflow.end_run()
dist.destroy_process_group()
print(json.dumps({{"rank": int(os.environ["RANK"]), "run": run.info.run_id if run else None}}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_only_rank_zero_records(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # create the store once, before two processes race for it
    code = textwrap.dedent(DDP.format(uri=uri))
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    base.pop("MLFLOW_TRACKING_URI", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
        )
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    results = {r["rank"]: r for r in (json.loads(o[0].strip().splitlines()[-1]) for o in outs)}
    assert results[1]["run"] is None  # rank 1 started no run
    client = MlflowClient(uri)
    runs = nnaudit_runs(client)
    assert list(runs) == [results[0]["run"]]
    assert [s for s, _ in history(client, results[0]["run"], "nnaudit/train_loss")] == list(range(10))
