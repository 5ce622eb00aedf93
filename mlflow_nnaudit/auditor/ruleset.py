"""The rule set's own version: a fingerprint of everything that decides a verdict.

`nnaudit.version` names the package that wrote a run's tags, but a verdict depends on the rules,
their thresholds, the statistics, the curve recognition and the status logic, which change between
commits far more often than the package version moves. The nightly audit skips a run whose tags
were written by the same rule set; so the rule set carries a fingerprint computed from the code
that decides verdicts, and a changed rule or threshold re-audits every run without anyone having
to remember to bump a number.

The fingerprint hashes each deciding module's syntax tree (`ast.dump`), not its text: a comment,
a blank line or a re-formatting does not re-audit a store, a changed threshold or condition does.
Docstrings are part of the tree, so a reworded rule docstring does move it (they become the
documentation of how a cause is detected, and a re-audit is cheap next to a stale verdict).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

_AUDITOR = Path(__file__).resolve().parent
#: modules (files, or packages taken whole) whose code decides what a run's tags say
DECIDING = ("rules", "stats.py", "curves.py", "verdict.py", "catalog.py", "config.py")


def _deciding_files() -> list[Path]:
    files: list[Path] = []
    for name in DECIDING:
        path = _AUDITOR / name
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """12 hex digits identifying the rule set: the same for the same deciding code, whatever
    its formatting and comments; different when a rule, threshold or statistic changes."""
    digest = hashlib.sha256()
    for path in _deciding_files():
        digest.update(path.relative_to(_AUDITOR).as_posix().encode())
        digest.update(ast.dump(ast.parse(path.read_text(encoding="utf-8"))).encode())
    return digest.hexdigest()[:12]
