"""The recorder-auditor contract (`mlflow_nnaudit/schema.py`): every key, fact and param a rule
reads is one the schema says the recorder writes; what a real recorded run holds is all in the
schema; the audit fetches exactly the curves the rules read; and the schema imports neither
torch nor MLflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules import ALL_RULES, curves_read_by

REPO = Path(__file__).resolve().parents[1]


def _unknown_reads(reads) -> list:
    bad = []
    for r in reads:
        if isinstance(r, tuple):
            ok = schema.is_fact(r)
        elif r.startswith(schema.METRIC_PREFIX):
            ok = schema.recorder_writes(r)
        else:
            ok = r in schema.PARAMS
        if not ok:
            bad.append(r)
    return bad


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.cause)
def test_everything_a_rule_reads_is_something_the_recorder_writes(rule):
    assert isinstance(rule.reads, tuple)
    assert not _unknown_reads(rule.reads), f"{type(rule).__name__} reads what the schema does not know"


def test_the_check_itself_rejects_unknown_names():
    assert _unknown_reads(
        (
            schema.stored_key("no_such_metric"),
            "nnaudit/grad_norms/",
            ("model", "colour"),
            ("nope",),
            "nnaudit.optimizer.colour",
            "grad_norm/",
        )
    ) == [
        "nnaudit/no_such_metric",
        "nnaudit/grad_norms/",
        ("model", "colour"),
        ("nope",),
        "nnaudit.optimizer.colour",
        "grad_norm/",
    ]
    assert not _unknown_reads(
        (schema.layer_prefix(schema.LAYER_DEAD_RELU), ("inputs", "train", "median_std"), schema.PARAM_OPTIMIZER_LR)
    )


def test_the_audit_fetches_the_curves_the_rules_read():
    from mlflow_nnaudit.auditor.runner import RECORDER_EVIDENCE_CURVES

    assert RECORDER_EVIDENCE_CURVES == curves_read_by(ALL_RULES)
    # the per-layer and per-batch evidence of today's rules (a rule that stops reading one drops it)
    assert set(RECORDER_EVIDENCE_CURVES) == {
        schema.layer_prefix(schema.LAYER_UPDATE_RATIO),
        schema.layer_prefix(schema.LAYER_DEAD_RELU),
        schema.layer_prefix(schema.LAYER_SATURATED),
        schema.layer_prefix(schema.LAYER_GRAD_NORM),
        schema.stored_key(schema.LABELS_PER_BATCH),
        schema.stored_key(schema.GRAD_PRESENT_BEFORE_BACKWARD),
        schema.stored_key(schema.GRAD_PRESENT_IN_CLOSURE),
    }


def test_the_schema_imports_neither_torch_nor_mlflow():
    code = "import sys, mlflow_nnaudit.schema; print(sorted(m for m in ('torch', 'mlflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def _undescribed(facts, fields, path=()) -> list:
    """Paths in a diagnostics document that DIAGNOSTICS_FIELDS does not describe."""
    if not isinstance(fields, dict) or not isinstance(facts, dict):
        return []
    out = []
    for key, value in facts.items():
        if key not in fields:
            out.append((*path, key))
        else:
            out += _undescribed(value, fields[key], (*path, key))
    return out


def test_a_recorded_run_holds_only_what_the_schema_names(store_uri):
    """A real run with most kinds of evidence: every metric, param, tag and fact is in the schema."""
    import mlflow
    import torch
    from mlflow.tracking import MlflowClient
    from torch import nn

    import mlflow_nnaudit

    torch.manual_seed(0)
    ds = torch.utils.data.TensorDataset(torch.randn(320, 8), torch.randint(0, 3, (320,)))
    train = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4)
    mlflow_nnaudit.autolog(silent=True)
    with mlflow.start_run() as run:
        for _ in range(3):
            for x, y in train:
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            with torch.no_grad():  # evaluation left in training mode, on purpose
                nn.functional.cross_entropy(model(ds.tensors[0][:64]), ds.tensors[1][:64])
    client = MlflowClient()
    data = client.get_run(run.info.run_id).data
    keys = set(data.metrics)
    assert {schema.stored_key(schema.TRAIN_LOSS), schema.stored_key(schema.VAL_LOSS)} <= keys
    assert any(k.startswith(schema.layer_prefix(schema.LAYER_SATURATED)) for k in keys)
    assert [k for k in keys if not schema.recorder_writes(k)] == []
    assert [k for k in data.params if k.startswith("nnaudit.") and k not in schema.PARAMS] == []
    assert schema.PARAM_OPTIMIZER_WEIGHT_DECAY in data.params
    recorder_tags = {schema.TAG_RECORDER_VERSION, schema.TAG_RECORDER_STARTED_RUN}
    assert [k for k in data.tags if k.startswith("nnaudit.") and k not in recorder_tags] == []
    assert data.tags[schema.TAG_RECORDER_VERSION] == mlflow_nnaudit.__version__
    with open(client.download_artifacts(run.info.run_id, schema.DIAGNOSTICS_ARTIFACT)) as fh:
        facts = json.load(fh)
    assert {
        "optimizer",
        "model",
        "loss",
        "inputs",
        "data_loader",
        "clipping",
        "activations",
        "eval_in_train_mode",
    } <= set(facts)
    assert _undescribed(facts, schema.DIAGNOSTICS_FIELDS) == []
