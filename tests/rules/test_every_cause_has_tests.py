"""Every cause in the catalog has its own test file here, with its rule firing and staying quiet."""

from pathlib import Path

import pytest

from mlflow_nnaudit.auditor.catalog import CAUSES
from mlflow_nnaudit.auditor.rules import ALL_RULES

HERE = Path(__file__).parent


@pytest.mark.parametrize("cause", [c.id for c in CAUSES])
def test_the_cause_has_a_test_file_with_a_fires_and_a_quiet_case(cause):
    path = HERE / f"test_{cause}.py"
    assert path.exists(), f"add {path.relative_to(HERE.parents[1])}: a fires / stays-quiet pair for {cause}"
    text = path.read_text()
    assert f'"{cause}"' in text and "fires(" in text and "quiet(" in text


def test_every_cause_has_exactly_one_rule():
    assert sorted(r.cause for r in ALL_RULES) == sorted(c.id for c in CAUSES)


#: a rule reads top to bottom in a minute; shared readings belong in rules/helpers.py
MAX_RULE_LINES = 150


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.cause)
def test_each_rule_lives_in_its_own_short_file_named_by_its_cause(rule):
    import inspect

    path = Path(inspect.getfile(type(rule)))
    category = next(c.category for c in CAUSES if c.id == rule.cause)
    assert (path.parent.name, path.stem) == (category, rule.cause)
    assert len(path.read_text().splitlines()) < MAX_RULE_LINES
