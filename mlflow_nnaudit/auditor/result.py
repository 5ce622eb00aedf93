"""The result of auditing one run: what the writer stores and `audit()` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflow_nnaudit import schema
from mlflow_nnaudit.auditor.rules.base import Finding, OutcomeHarm

#: longest recommendation tag value (the contract's bound)
MAX_RECOMMENDATION = 1000


@dataclass
class AuditResult:
    """One audited run: its status, its findings (most likely first), and what was read."""

    run_id: str
    run_name: str
    experiment_id: str
    experiment_name: str
    status: str
    findings: list[Finding] = field(default_factory=list)  # causes first, then advisories (`Finding.advisory`)
    roles: dict[str, str] = field(default_factory=dict)  # role -> metric key
    reason: str | None = None  # why the run is inconclusive, when it is
    harm: OutcomeHarm | None = None  # harm seen in the outcome itself (`RunView.outcome_harm`), if any
    notes: list[str] = field(default_factory=list)  # rule errors and other remarks
    audited_at: str = ""
    skipped: bool = False  # already audited and unchanged: nothing was recomputed
    tags: dict[str, str] = field(default_factory=dict)  # the run's tags as read (for reports)
    artifacts_error: str | None = None  # why its nnaudit/ artifacts could not be written, when they could not
    # for the reports only (never in audit.json): the loss in a few points, the run's page until
    # it is written, and the curves by role when asked for (`explain`)
    sparkline: list[float] = field(default_factory=list, repr=False)
    report_html: str | None = field(default=None, repr=False)
    curves: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def causes(self) -> list[str]:
        """The causes of the run's status, most likely (upstream) first; advisories are not among them."""
        if self.skipped:  # not recomputed: what the earlier audit tagged
            return [c for c in self.tags.get(schema.TAG_CAUSES, "").split(",") if c]
        return [f.cause for f in self.findings if not f.advisory]

    @property
    def advisories(self) -> list[str]:
        """Set-up risks found on a run that showed no harm: advice that leaves the status `healthy`."""
        if self.skipped:
            return [c for c in self.tags.get(schema.TAG_ADVISORIES, "").split(",") if c]
        return [f.cause for f in self.findings if f.advisory]

    @property
    def recommendation(self) -> str:
        if self.skipped:
            return self.tags.get(schema.TAG_RECOMMENDATION, "")
        causes = [f for f in self.findings if not f.advisory]
        if causes:
            text = causes[0].advice
        elif self.findings:
            text = f"Advisory (the run showed no harm from it): {self.findings[0].advice}"
        elif self.reason:
            text = f"Not enough to judge: {self.reason}."
        else:
            text = ""
        return text if len(text) <= MAX_RECOMMENDATION else text[: MAX_RECOMMENDATION - 3] + "..."

    def to_dict(self) -> dict[str, Any]:
        from mlflow_nnaudit._version import __version__

        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "experiment_id": self.experiment_id,
            "experiment_name": self.experiment_name,
            "status": self.status,
            "causes": self.causes,
            "advisories": self.advisories,
            "recommendation": self.recommendation,
            "reason": self.reason,
            "outcome_harm": self.harm.summary if self.harm else None,
            "curves": self.roles,
            "findings": [f.to_dict() for f in self.findings],
            "notes": self.notes,
            "audited_at": self.audited_at,
            "nnaudit_version": __version__,
        }
