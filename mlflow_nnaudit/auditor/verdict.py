"""From findings to a run's status and the order its causes are listed in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.rules.base import Finding

if TYPE_CHECKING:
    from mlflow_nnaudit.auditor.result import AuditResult

HEALTHY, WARNING, FAILED, INCONCLUSIVE = "healthy", "warning", "failed", "inconclusive"
STATUSES = (HEALTHY, WARNING, FAILED, INCONCLUSIVE)
_CONF_RANK = {"high": 0, "medium": 1, "low": 2}
_SEV_RANK = {"failed": 0, "warning": 1}


def drop_explained(findings: list[Finding], explained_by: dict[str, tuple[str, ...]]) -> tuple[list[Finding], list[str]]:
    """Leave out the findings that another finding on the run explains better (each rule names
    those causes in `explained_by`; a finding marked `explains=False` explains nothing away).
    Returns what is kept and a note for each left out."""
    present = {f.cause for f in findings if f.explains}
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


#: false-discovery rate for the curve-only statistical findings of one audit
FDR_Q = 0.05


def control_false_discoveries(results: list[AuditResult], q: float = FDR_Q) -> int:
    """Benjamini-Hochberg across one audit: the findings that rest on a curve-only statistical
    test (those with a `p_value`) of all the audited runs form one family; the ones that are
    not discoveries at false-discovery rate q are left out (with a note) and the run's status is
    decided again. Findings on recorder facts or on deterministic readings (NaN, a recorded
    fact) carry no p-value and are untouched. Each rule already demands an effect size as well
    as significance, so this only removes findings whose p-value is weak among many tests.
    Returns how many findings were left out."""
    family = [(r, f) for r in results if not r.skipped for f in r.findings if f.p_value is not None]
    if not family:
        return 0
    keep = stats.benjamini_hochberg([f.p_value for _, f in family], q)
    dropped = 0
    for (result, finding), ok in zip(family, keep):
        if ok:
            continue
        result.findings = [f for f in result.findings if f is not finding]
        result.notes.append(f"{finding.cause} not reported: p = {finding.p_value:.3g} is not a discovery at a "
                            f"false-discovery rate of {q:g} across the {len(family)} curve tests of this audit "
                            "(Benjamini-Hochberg)")
        result.status = decide_status(result.findings, result.reason)
        dropped += 1
    return dropped
