"""Curve roles: the config file (`nnaudit.toml`, `[tool.nnaudit.roles]`) and slash-separated metric
names (from tests/test_setup_rules.py)."""

from __future__ import annotations

import pytest

from mlflow_nnaudit.auditor.config import load_roles
from mlflow_nnaudit.auditor.curves import GRAD_NORM, LEARNING_RATE, TRAIN_LOSS, VAL_LOSS, assign_roles


def test_wandb_and_lightning_slash_names():
    roles = assign_roles(
        {"train/loss": 300, "val/loss": 10, "train/learning_rate": 300, "train/grad_norm": 300, "train/epoch": 300}
    )
    assert roles == {
        TRAIN_LOSS: "train/loss",
        VAL_LOSS: "val/loss",
        LEARNING_RATE: "train/learning_rate",
        GRAD_NORM: "train/grad_norm",
    }
    assert assign_roles({"train/loss": 300, "eval/loss": 10})[VAL_LOSS] == "eval/loss"


def test_roles_from_config_files(tmp_path):
    (tmp_path / "nnaudit.toml").write_text('[roles]\ntrain_loss = "objective"\nval_loss = ["val/nll", "dev"]\n')
    assert load_roles(cwd=tmp_path) == {"train_loss": "objective", "val_loss": ["val/nll", "dev"]}
    # a list picks the first key the run has
    assert assign_roles({"objective": 100, "dev": 10}, load_roles(cwd=tmp_path)) == {
        TRAIN_LOSS: "objective",
        VAL_LOSS: "dev",
    }
    other = tmp_path / "sub"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.nnaudit.roles]\nlr = "eta"\n')
    assert load_roles(cwd=other) == {"lr": "eta"}
    assert load_roles(other / "pyproject.toml") == {"lr": "eta"}
    (other / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_roles(cwd=other) == {}
    bad = tmp_path / "bad.toml"
    bad.write_text('[roles]\nloss = "x"\n')
    with pytest.raises(ValueError, match="unknown curve role"):
        load_roles(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_roles(tmp_path / "missing.toml")
    bad.write_text("[roles\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_roles(bad)
