"""Nothing of the recorder's prints a torch warning into the user's run, and its numbers are
right where torch's defaults would mislead it: complex parameters (norms of |z|, no casts to
real) and `torch.compile`d models (no "global hooks fire an extra time" warning, losses
bit-identical to the recorder off). Each loop runs under `warnings.simplefilter("error")`.
"""

from __future__ import annotations

import json
import warnings

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

import mlflow_nnaudit


class ComplexNet(nn.Module):
    """A complex-valued layer (complex weights and inputs) feeding a real classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Linear(8, 16, dtype=torch.cfloat)
        self.act = nn.Tanh()
        self.r = nn.Linear(16, 2)

    def forward(self, x):
        return self.r(self.act(self.c(x)).abs())


def _touch_store() -> None:
    """MLflow's own first use of a store may warn (SQLAlchemy deprecations): not ours, so it
    happens before the warnings become errors."""
    mlflow.log_param("store", "ready")


def test_complex_parameters_raise_no_warning_and_get_true_norms(store_uri):
    mlflow_nnaudit.autolog(sample_every_n_steps=1, max_probe_overhead=None)
    torch.manual_seed(0)
    model = ComplexNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 8, dtype=torch.cfloat), torch.randint(0, 2, (32,))
    grads = []
    with mlflow.start_run() as run:
        _touch_store()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(6):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                grads.append(torch.linalg.vector_norm(model.c.weight.grad).item())  # |z|-based, as torch's
                opt.step()
    client = MlflowClient()
    layer = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "nnaudit/grad_norm/c")}
    # layers are known from the second forward pass on; a layer's norm covers weight and bias: at
    # least the weight's |z| norm (the real part's alone would be smaller)
    assert sorted(layer) == [1, 2, 3, 4, 5]
    assert all(layer[s] >= grads[s] * (1 - 1e-5) for s in layer)
    assert all(0 < m.value for m in client.get_metric_history(run.info.run_id, "nnaudit/weight_norm/c"))
    with open(client.download_artifacts(run.info.run_id, "nnaudit/diagnostics.json", ".")) as fh:
        diag = json.load(fh)
    init = {i["param"]: i for i in diag["model"]["init"]}
    assert init["c.weight"]["std"] > 0.05  # the complex weights' spread, not 0 from a dropped imaginary part


def _train_compiled(recorder_on: bool, compile_first: bool) -> list[float]:
    mlflow_nnaudit.autolog(disable=not recorder_on, sample_every_n_steps=2, max_probe_overhead=None)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    compiled = torch.compile(model, backend="aot_eager") if compile_first else None
    losses = []
    with mlflow.start_run():
        _touch_store()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for i in range(8):
                if compiled is None and i == 1:
                    compiled = torch.compile(model, backend="aot_eager")  # compiled after the first step
                forward = compiled if compiled is not None else model
                opt.zero_grad()
                loss = nn.functional.cross_entropy(forward(x), y)
                loss.backward()
                opt.step()
                losses.append(loss.item())
    return losses


@pytest.mark.parametrize("compile_first", [True, False], ids=["compiled-before", "compiled-after-step-0"])
def test_a_compiled_model_trains_quietly_with_the_same_losses(store_uri, compile_first):
    without = _train_compiled(False, compile_first)
    with_recorder = _train_compiled(True, compile_first)
    assert with_recorder == without  # bit-for-bit
    run = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("Default").experiment_id], order_by=["attributes.start_time DESC"]
    )[0]
    keys = set(run.data.metrics)
    # the model was found through the compiled module: per-layer statistics are there
    assert {"nnaudit/train_loss", "nnaudit/weight_norm/0", "nnaudit/update_ratio/2"} <= keys, keys
