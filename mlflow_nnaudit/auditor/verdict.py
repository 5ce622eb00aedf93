"""From findings to a run's status and the order its causes are listed in."""

from __future__ import annotations

from mlflow_nnaudit.auditor.rules.base import Finding

HEALTHY, WARNING, FAILED, INCONCLUSIVE = "healthy", "warning", "failed", "inconclusive"
STATUSES = (HEALTHY, WARNING, FAILED, INCONCLUSIVE)
_CONF_RANK = {"high": 0, "medium": 1, "low": 2}
_SEV_RANK = {"failed": 0, "warning": 1}


def drop_explained(findings: list[Finding], explained_by: dict[str, tuple[str, ...]]) -> tuple[list[Finding], list[str]]:
    """Leave out the findings that another finding on the run explains better (each rule names
    those causes in `explained_by`). Returns what is kept and a note for each left out."""
    present = {f.cause for f in findings}
    kept, notes = [], []
    for f in findings:
        by = [c for c in explained_by.get(f.cause, ()) if c in present]
        if by:
            notes.append(f"{f.cause} not reported: explained by {', '.join(by)}")
        else:
            kept.append(f)
    return kept, notes


def rank_findings(findings: list[Finding]) -> list[Finding]:
    """Most likely first: by confidence, then severity, then the rule's own strength score.
    Ties keep the rules' registry order, so the result is deterministic."""
    return sorted(findings, key=lambda f: (_CONF_RANK[f.confidence], _SEV_RANK[f.severity], -f.score))


def effective_severity(f: Finding) -> str:
    """A low-confidence finding can warn but never fail a run on its own: crying wolf on a
    healthy run costs a team's trust in every other tag."""
    if f.confidence == "low":
        return WARNING
    return f.severity


def decide_status(findings: list[Finding], inconclusive_reason: str | None = None) -> str:
    """`causes.md`'s status: failed if any finding says the run did not learn or broke,
    warning if it learned but something hurt, healthy if nothing was found, inconclusive when
    there was too little to judge (and nothing conclusive was found anyway)."""
    severities = {effective_severity(f) for f in findings}
    if FAILED in severities:
        return FAILED
    if inconclusive_reason:
        return INCONCLUSIVE
    if WARNING in severities:
        return WARNING
    return HEALTHY
