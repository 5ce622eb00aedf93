"""From findings to a run's status, its advisories, and the order its causes are listed in.

Status follows harm (spec/causes.md): each cause has a kind in the catalog (`outcome`: harm
seen in the curves; `bug`: a definite bug; `risk`: a set-up smell), and only `outcome` and
`bug` findings move a run off `healthy`. The rules' declarations about each other
(`explained_by`, `consequence_of`, `contradicted_by`) decide what is left out and the order:
the upstream cause first, its consequences after it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlflow_nnaudit.auditor import stats
from mlflow_nnaudit.auditor.catalog import BUG, OUTCOME, RISK
from mlflow_nnaudit.auditor.rules.base import Finding, OutcomeHarm

if TYPE_CHECKING:
    from mlflow_nnaudit.auditor.result import AuditResult

HEALTHY, WARNING, FAILED, INCONCLUSIVE = "healthy", "warning", "failed", "inconclusive"
STATUSES = (HEALTHY, WARNING, FAILED, INCONCLUSIVE)
_CONF_RANK = {"high": 0, "medium": 1, "low": 2}
_SEV_RANK = {"failed": 0, "warning": 1}
#: at equal confidence and severity a definite bug before a set-up risk; a finding that saw the harm itself
#: (an outcome: the loss blew up) ties with the bug, its score decides (a blow-up that saturated a sigmoid to
#: exactly 0 reads as a constant loss input: found by review)
_KIND_RANK = {BUG: 0, OUTCOME: 0, RISK: 1}


@dataclass(frozen=True)
class Links:
    """What the rules declare about each other, by cause: which causes explain a finding away
    (`Rule.explained_by`), which it is a consequence of (`Rule.consequence_of`) and which
    contradict it (`Rule.contradicted_by`). Several rules of one cause pool their declarations."""

    explained_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    consequence_of: dict[str, tuple[str, ...]] = field(default_factory=dict)
    contradicted_by: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: Iterable) -> Links:
        out: dict[str, dict[str, tuple[str, ...]]] = {"explained_by": {}, "consequence_of": {}, "contradicted_by": {}}
        for rule in rules:
            for name, table in out.items():
                table[rule.cause] = tuple(dict.fromkeys(table.get(rule.cause, ()) + tuple(getattr(rule, name, ()))))
        return cls(**out)


@functools.lru_cache(maxsize=1)
def default_links() -> Links:
    """The links of the registered rules (`rules.ALL_RULES`)."""
    from mlflow_nnaudit.auditor.rules import ALL_RULES

    return Links.of(ALL_RULES)


def drop_contradicted(
    findings: list[Finding], contradicted_by: dict[str, tuple[str, ...]]
) -> tuple[list[Finding], list[str]]:
    """Leave out the findings that another finding on the run contradicts (each rule names those
    causes in `contradicted_by`: no "learning rate too low" where the loss exploded). Returns
    what is kept and a note for each left out."""
    present = {f.cause for f in findings}
    kept, notes = [], []
    for f in findings:
        by = [c for c in contradicted_by.get(f.cause, ()) if c in present and c != f.cause]
        if by:
            notes.append(f"{f.cause} not reported: contradicted by {', '.join(by)}")
        else:
            kept.append(f)
    return kept, notes


def drop_explained(
    findings: list[Finding], explained_by: dict[str, tuple[str, ...]]
) -> tuple[list[Finding], list[str]]:
    """Leave out the findings that another finding on the run explains better (each rule names
    those causes in `explained_by`; a finding marked `explains=False` explains nothing away).
    The harm a dropped finding showed is not lost: the finding that explains it takes on its kind
    and its severity when they are worse (labels that look unrelated to their inputs, explained by
    a skewed label histogram: the run still failed, and the imbalance is why). Returns what is
    kept and a note for each left out."""
    present = {f.cause: f for f in findings if f.explains}
    kept, notes = [], []
    for f in findings:
        by = [c for c in explained_by.get(f.cause, ()) if c in present and c != f.cause]
        if not by:
            kept.append(f)
            continue
        notes.append(f"{f.cause} not reported: explained by {', '.join(by)}")
        if f.harmful:
            for c in by:
                heir = present[c]
                if not heir.harmful:
                    heir.kind = f.effective_kind
                if _SEV_RANK[f.severity] < _SEV_RANK[heir.severity]:
                    heir.severity = f.severity
    return kept, notes


def _rank_severity(f: Finding) -> int:
    """The severity a finding ranks by: its own where it is harm or a bug, at most `warning` where
    it is a set-up risk (a risk never sets the status, so it does not outrank harm seen on the run;
    among risks their own severities still part them, after the kind)."""
    return _SEV_RANK[f.severity] if f.harmful else max(_SEV_RANK[f.severity], _SEV_RANK[WARNING])


def rank_findings(findings: list[Finding], consequence_of: dict[str, tuple[str, ...]] | None = None) -> list[Finding]:
    """Most likely first: by confidence, then severity (a set-up risk's counts as `warning` at most: it
    never sets the status), then a definite bug (kind `bug`) or harm seen (kind `outcome`) before a
    set-up risk, then the risks' own severity, then the rule's own strength score (ties keep the rules'
    registry order, so the result is deterministic). Then the causal order: a
    finding that is a consequence of other findings on the run (`Rule.consequence_of`, and the
    finding's own `follows` where its rule saw a run-specific link, less those its `rules_out`) hangs under
    the nearest of them (one that leads to none of the others: a chain, the ReLUs died in the blow-up
    and the gradients vanished with them), a link seen on the run (`follows`, directly or through a
    cause downstream of one) before one only possible in general (unless that one is a definite bug),
    and is listed after it, direct consequences first; the
    root of each chain moves up to where the best-ranked finding of its group stood, so the first
    cause named is the most upstream one. A finding that explains nothing
    (`explains` False) is no finding's upstream cause. Each finding's `upstream` and
    `consequences` say so (its `advice` then mentions them)."""
    ranked = sorted(
        findings,
        key=lambda f: (
            _CONF_RANK[f.confidence],
            _rank_severity(f),
            _KIND_RANK[f.effective_kind],
            _SEV_RANK[f.severity],
            -f.score,
        ),
    )
    for f in ranked:
        f.upstream, f.consequences = None, []
    consequence_of = consequence_of or {}
    if not consequence_of and not any(f.follows for f in ranked):
        return ranked
    position = {f.cause: i for i, f in enumerate(ranked)}
    # a finding that explains nothing (`Finding.explains` False) is no one's upstream cause either
    can_lead = {f.cause for f in ranked if f.explains}
    present_up = {
        f.cause: [
            c
            for c in dict.fromkeys(consequence_of.get(f.cause, ()) + f.follows)
            if c in can_lead and c != f.cause and c not in f.rules_out
        ]
        for f in ranked
    }

    def ancestors(cause: str, skip: str | None = None) -> set[str]:
        """The causes upstream of `cause`, not walking through `skip`."""
        seen, todo = set(), [c for c in present_up.get(cause, ()) if c != skip]
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo += [u for u in present_up.get(c, ()) if u != skip]
        return seen

    kind = {f.cause: f.effective_kind for f in ranked}

    parent: dict[str, str] = {}

    def root_of(cause: str) -> str:
        while cause in parent:
            cause = parent[cause]
        return cause

    for f in ranked:  # best-ranked first: where two findings name each other, the first one read holds
        ups, own = present_up[f.cause], set(f.follows)
        # a link its rule saw on this run first (one of its own `follows`, or a cause downstream of one),
        # over one its rule only allows in general, unless that one is a definite bug; then the nearest
        # of its upstream causes (one that leads to no other candidate: a chain, not a fan), best-ranked
        # first (upstream walks never pass through the finding itself)
        ups = sorted(
            ups,
            key=lambda c: (
                not (c in own or own & ancestors(c, f.cause) or kind[c] == BUG),
                any(c in ancestors(o, f.cause) for o in ups if o != c),
                position[c],
            ),
        )
        for up in ups:
            if root_of(up) != f.cause:  # never a cycle
                parent[f.cause] = up
                break
    children: dict[str, list[Finding]] = {}
    for f in ranked:
        if f.cause in parent:
            children.setdefault(parent[f.cause], []).append(f)

    def group(f: Finding) -> list[Finding]:
        """The finding, then its consequences level by level (direct ones first), each level by rank."""
        out, level = [f], [f]
        while level:
            level = sorted((c for x in level for c in children.get(x.cause, [])), key=lambda c: position[c.cause])
            out += level
        return out

    best: dict[str, int] = {}
    for i, f in enumerate(ranked):
        best.setdefault(root_of(f.cause), i)
    ordered: list[Finding] = []
    for f in sorted((f for f in ranked if f.cause not in parent), key=lambda f: best[f.cause]):
        ordered += group(f)
    for f in ordered:
        if f.cause in parent:
            f.upstream = parent[f.cause]
            ranked[position[parent[f.cause]]].consequences.append(f.cause)
    return ordered


def effective_severity(f: Finding) -> str:
    """A low-confidence finding can warn but never fail a run on its own: crying wolf on a
    healthy run costs a team's trust in every other tag."""
    if f.confidence == "low":
        return WARNING
    return f.severity


def decide_status(
    findings: list[Finding], inconclusive_reason: str | None = None, harm: OutcomeHarm | None = None
) -> str:
    """`causes.md`'s status, which follows harm: only findings that show harm in the outcome or
    a definite bug (`Finding.harmful`) move a run off `healthy`, or harm seen in the outcome itself
    (`harm`, `RunView.outcome_harm`) when some finding explains it; a run whose findings are all
    set-up risks on an outcome that looks fine is `healthy` (they are its advisories, see
    `settle`). Failed if the harm says the run did not learn or broke, warning if it learned but
    something hurt, inconclusive when there was too little to judge. With too little to judge,
    only a high-confidence finding can fail the run: a short curve makes every reading weak."""
    harmful = [f for f in findings if f.harmful]
    if harm is not None and findings:
        harmful += [Finding(findings[0].cause, "high", harm.severity, harm.summary, "")]
    severities = {effective_severity(f) for f in harmful}
    if FAILED in severities and (
        not inconclusive_reason or any(f.confidence == "high" and f.severity == FAILED for f in harmful)
    ):
        return FAILED
    if inconclusive_reason:
        return INCONCLUSIVE
    if harmful:
        return WARNING
    return HEALTHY


def settle(findings: list[Finding], inconclusive_reason: str | None = None, harm: OutcomeHarm | None = None) -> str:
    """Mark the advisories and decide the status. When no finding shows harm and the outcome
    looks fine, every finding is an advisory: kept in the result (and tagged, so filtering by
    cause works), not a cause of anything. When harm is seen, the set-up risks found with it are
    listed among its causes: they may explain it."""
    harmed = harm is not None or any(f.harmful for f in findings)
    for f in findings:
        f.advisory = not harmed
    return decide_status(findings, inconclusive_reason, harm)


#: harm a game's losses still show: a non-finite loss is broken whatever the objective
GAME_HARM = ("nonfinite_loss",)


def set_aside_for_game(findings: list[Finding], game: str) -> tuple[list[Finding], list[str]]:
    """A run that trains two sides against each other (`curves.adversarial_game`): each side's
    loss rises when the other one gains, by design, so its rises, falls and stalls are not harm
    (a healthy GAN's discriminator loss fell and then climbed back: "diverging"). A reinforcement
    learning run (`curves.reinforcement_learning`) likewise: its loss follows the episodes (a
    healthy actor-critic's swung from -19 to 273 as the agent learned: "learning_rate_too_high"). The findings
    read from the outcome are left out, except a non-finite loss; definite bugs stay, and the
    set-up risks stay as advisories (no harm is read from the curves). Returns the findings
    kept and one note for what was left out."""
    kept = [f for f in findings if f.cause in GAME_HARM or f.effective_kind != OUTCOME]
    left = [f.cause for f in findings if f not in kept]
    note = f"{game}; its losses rise and fall by design, so they were read for non-finite values only"
    return kept, [note + (f" ({', '.join(left)} not reported)" if left else "")]


def judge(
    findings: list[Finding],
    links: Links | None = None,
    inconclusive_reason: str | None = None,
    harm: OutcomeHarm | None = None,
) -> tuple[list[Finding], str, list[str]]:
    """From the rules' findings on one run to its verdict: drop the contradicted and the
    explained findings, put the rest in causal order, mark the advisories and decide the
    status. Returns the findings in order, the status, and a note for each finding left out."""
    links = links or default_links()
    findings, contradicted = drop_contradicted(findings, links.contradicted_by)
    findings, explained = drop_explained(findings, links.explained_by)
    ordered = rank_findings(findings, links.consequence_of)
    return ordered, settle(ordered, inconclusive_reason, harm), contradicted + explained


#: false-discovery rate for the curve-only statistical findings of one audit
FDR_Q = 0.05


def control_false_discoveries(results: list[AuditResult], q: float = FDR_Q, links: Links | None = None) -> int:
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
        result.notes.append(
            f"{finding.cause} not reported: p = {finding.p_value:.3g} is not a discovery at a "
            f"false-discovery rate of {q:g} across the {len(family)} curve tests of this audit "
            "(Benjamini-Hochberg)"
        )
        result.findings = rank_findings(result.findings, (links or default_links()).consequence_of)
        result.status = settle(result.findings, result.reason, result.harm)
        dropped += 1
    return dropped
