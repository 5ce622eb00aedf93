"""From findings to a run's status: the false-discovery control across the runs of one audit
(from tests/test_setup_rules.py)."""

from __future__ import annotations

from mlflow_nnaudit.auditor.result import AuditResult
from mlflow_nnaudit.auditor.rules.base import Finding
from mlflow_nnaudit.auditor.verdict import control_false_discoveries, decide_status


def _result(run_id, *findings):
    return AuditResult(run_id, run_id, "0", "e", status=decide_status(list(findings)), findings=list(findings))


def test_benjamini_hochberg_across_the_runs_of_one_audit():
    strong = [_result(f"s{i}", Finding("not_converged", "medium", "warning", "s", "r", p_value=1e-6)) for i in range(5)]
    weak = _result("w", Finding("not_converged", "medium", "warning", "s", "r", p_value=0.04))
    recorded = _result("r", Finding("nonfinite_inputs", "high", "failed", "s", "r"))  # no p-value: untouched
    results = [*strong, weak, *[_result(f"h{i}") for i in range(20)], recorded]
    # 0.04 alone would pass at 5%; among 6 tests its BH threshold is 0.05 * 6/6 ... but with 20 more
    # healthy runs nothing changes (they have no tests): it is the number of tests that counts
    assert control_false_discoveries(results) == 0
    many = [_result(f"m{i}", Finding("oscillating_loss", "low", "warning", "s", "r", p_value=0.5)) for i in range(30)]
    results = [*strong, weak, *many, recorded]
    dropped = control_false_discoveries(results)
    assert dropped == 31  # the weak one and the 30 null ones; the strong ones survive
    assert weak.findings == [] and weak.status == "healthy" and "Benjamini-Hochberg" in weak.notes[0]
    assert all(r.findings for r in strong) and recorded.findings and recorded.status == "failed"
