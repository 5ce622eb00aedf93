"""The recorder writes exactly the metrics the contract (`schema.py`) declares, in a real tiny
training run sampled on every step: no key outside the schema (tests/test_schema.py checks
the same on a run at the defaults, and that every key a rule reads is declared), and no
declared metric the recorder never writes (a name left in the schema after the recorder
stopped writing it would let a rule read nothing, silently)."""

from __future__ import annotations

import mlflow
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit import schema


def test_the_recorder_writes_exactly_the_metrics_the_schema_declares(store_uri):
    """ReLU and sigmoid layers, sampling on every step, a classification loss, an evaluation,
    a step that kept the last step's gradients. Only `amp_skipped_steps` needs a GradScaler
    that skips a step (CUDA float16), and `grad_present_in_closure` an optimizer that calls its
    closure twice a step (L-BFGS: test_recorder_loops checks it), so they are left out here."""
    mlflow_nnaudit.autolog(sample_every_n_steps=1, max_probe_overhead=None)
    torch.manual_seed(0)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.Sigmoid(), nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True)
    with mlflow.start_run() as run:
        for epoch in range(3):
            for i, (xb, yb) in enumerate(loader):
                if not (epoch == 1 and i == 0):  # one step keeps the last step's gradients
                    opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                opt.step()
            model.eval()
            with torch.no_grad():
                F.cross_entropy(model(x[:16]), y[:16])
            model.train()
    written = set(MlflowClient().get_run(run.info.run_id).data.metrics)
    assert sorted(k for k in written if not schema.recorder_writes(k)) == []
    names = {k[len(schema.METRIC_PREFIX) :] for k in written}
    assert {n for n in names if "/" not in n} == set(schema.METRICS) - {
        schema.AMP_SKIPPED_STEPS,
        schema.GRAD_PRESENT_IN_CLOSURE,
    }
    assert {n.partition("/")[0] for n in names if "/" in n} == set(schema.LAYER_KINDS)
