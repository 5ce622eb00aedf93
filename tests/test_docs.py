"""The docs cannot drift from the code: docs/causes.md is generated, the spec's cause ids are
all in the catalog and documented, and every rule documents how it detects its cause."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_nnaudit.auditor import docgen
from mlflow_nnaudit.auditor.catalog import BY_ID, CAUSES
from mlflow_nnaudit.auditor.rules import ALL_RULES

REPO = Path(__file__).resolve().parents[1]
CAUSES_DOC = REPO / "docs" / "causes.md"
SPEC_CAUSES = REPO.parent / "shared" / "spec" / "causes.md"


def _doc_text() -> str:
    assert CAUSES_DOC.exists(), "docs/causes.md is missing: run `make docs`"
    return CAUSES_DOC.read_text(encoding="utf-8")


def _sections(text: str) -> set[str]:
    """Cause ids that have a section heading (### `id`) in the page."""
    return set(re.findall(r"^#{2,4} `([a-z0-9_]+)`\s*$", text, flags=re.MULTILINE))


def _spec_ids() -> list[str]:
    """Backticked ids in the first cell of the spec catalog's table rows."""
    ids = []
    for line in SPEC_CAUSES.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        first = line.strip("|").split("|")[0].strip()
        m = re.fullmatch(r"`([a-z0-9_]+)`", first)
        if m:
            ids.append(m.group(1))
    return ids


def test_causes_doc_is_generated_from_the_code():
    assert _doc_text() == docgen.render(), (
        "docs/causes.md is out of date with the catalog or the rules' docstrings: run `make docs`"
    )


def test_render_is_deterministic():
    assert docgen.render() == docgen.render()


def test_every_catalog_cause_has_a_section_in_catalog_order():
    text = _doc_text()
    order = re.findall(r"^### `([a-z0-9_]+)`\s*$", text, flags=re.MULTILINE)
    assert order == [c.id for c in CAUSES]


def test_undetected_causes_say_so_and_detected_ones_do_not():
    text = docgen.render()
    detected = {r.cause for r in ALL_RULES}
    for c in CAUSES:
        section = text.split(f"### `{c.id}`", 1)[1].split("\n### ", 1)[0]
        assert (docgen.NOT_DETECTED in section) == (c.id not in detected), c.id
        assert f"tags.`nnaudit.cause.{c.id}` = 'high'" in section, c.id


@pytest.mark.skipif(not SPEC_CAUSES.exists(), reason=f"spec catalog not found at {SPEC_CAUSES}")
def test_every_spec_cause_is_in_the_catalog_and_documented():
    spec_ids = _spec_ids()
    assert len(spec_ids) >= 30, f"parsed only {len(spec_ids)} ids from {SPEC_CAUSES}: has its format changed?"
    missing_catalog = [i for i in spec_ids if i not in BY_ID]
    assert not missing_catalog, f"spec cause ids missing from catalog.py: {missing_catalog}"
    missing_docs = sorted(set(spec_ids) - _sections(_doc_text()))
    assert not missing_docs, f"spec cause ids without a section in docs/causes.md: {missing_docs} (run `make docs`)"


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: type(r).__name__)
def test_every_rule_documents_a_known_cause(rule):
    doc = type(rule).__dict__.get("__doc__")
    assert doc and doc.strip(), f"{type(rule).__name__} has no docstring of its own (it becomes the docs)"
    assert rule.cause in BY_ID, f"{type(rule).__name__}.cause = {rule.cause!r} is not in the catalog"


def test_docgen_writes_the_file(tmp_path):
    out = tmp_path / "sub" / "causes.md"
    docgen.main([str(out)])
    assert out.read_text(encoding="utf-8") == docgen.render()


def test_docgen_does_not_import_torch():
    code = "import sys, mlflow_nnaudit.auditor.docgen as d; d.render(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
