"""The rule-set fingerprint moves when the deciding code does, and only then."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import mlflow_nnaudit.auditor as auditor_pkg

AUDITOR = Path(auditor_pkg.__file__).resolve().parent


def _fingerprint_of(tree: Path) -> str:
    """The fingerprint computed by a copy of the ruleset module placed in `tree`."""
    spec = importlib.util.spec_from_file_location(f"ruleset_copy_{abs(hash(tree))}", tree / "ruleset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fingerprint()


def _copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(AUDITOR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _a_threshold(tree: Path) -> tuple[Path, str, str]:
    """A file under rules/ and one numeric literal in it."""
    import re

    for path in sorted((tree / "rules").rglob("*.py")):
        text = path.read_text()
        m = re.search(r"= (\d+\.\d+)\b", text)
        if m:
            return path, m.group(0), f"= {float(m.group(1)) * 2 + 1}"
    raise AssertionError("no numeric threshold found under rules/")


def test_same_code_same_fingerprint(tmp_path):
    assert _fingerprint_of(_copy(tmp_path, "a")) == _fingerprint_of(_copy(tmp_path, "b"))


def test_comments_and_formatting_do_not_move_it(tmp_path):
    base = _fingerprint_of(_copy(tmp_path, "a"))
    tree = _copy(tmp_path, "b")
    path, _, _ = _a_threshold(tree)
    path.write_text("# a new comment\n\n" + path.read_text().replace("\n\n\n", "\n\n\n\n") + "\n# the end\n")
    assert _fingerprint_of(tree) == base


def test_a_changed_threshold_moves_it(tmp_path):
    base = _fingerprint_of(_copy(tmp_path, "a"))
    tree = _copy(tmp_path, "b")
    path, old, new = _a_threshold(tree)
    path.write_text(path.read_text().replace(old, new, 1))
    assert _fingerprint_of(tree) != base


def test_a_changed_statistic_moves_it(tmp_path):
    base = _fingerprint_of(_copy(tmp_path, "a"))
    tree = _copy(tmp_path, "b")
    stats = tree / "stats.py"
    stats.write_text(stats.read_text() + "\n\ndef an_added_statistic(y):\n    return y\n")
    assert _fingerprint_of(tree) != base


def test_a_run_judged_by_another_rule_set_is_audited_again(store_uri):
    """The incremental key: same package version, same data, but tags written by another rule set
    (an upgrade that changed a rule) -> the nightly audit judges the run again."""
    import math

    import mlflow

    from mlflow_nnaudit import audit, schema
    from mlflow_nnaudit.auditor import ruleset

    with mlflow.start_run() as run:
        for step in range(60):
            mlflow.log_metric("train_loss", 2.0 * math.exp(-step / 10) + 0.05, step=step)
    first = audit(tracking_uri=store_uri)
    assert [r.skipped for r in first] == [False]
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags[schema.TAG_RULESET] == ruleset.fingerprint()
    assert [r.skipped for r in audit(tracking_uri=store_uri)] == [True]  # unchanged: skipped

    mlflow.MlflowClient().set_tag(run.info.run_id, schema.TAG_RULESET, "an-older-rule-set")
    again = audit(tracking_uri=store_uri)
    assert [r.skipped for r in again] == [False]
    assert mlflow.get_run(run.info.run_id).data.tags[schema.TAG_RULESET] == ruleset.fingerprint()
