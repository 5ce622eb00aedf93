"""Writing an audit back into the store: the `nnaudit.` tags users filter on and the
`nnaudit/audit.json` artifact. The last stage of the audit, and the only one that writes.

It writes only tags under `nnaudit.` and artifacts under `nnaudit/`, and of the `nnaudit.`
tags it only ever replaces or removes its own (the recorder's live under `nnaudit.recorder.`).
"""

from __future__ import annotations

import json
import os
import tempfile

from mlflow.entities import RunTag

from mlflow_nnaudit import schema
from mlflow_nnaudit._version import __version__
from mlflow_nnaudit.auditor.result import AuditResult

# the contract's names (see mlflow_nnaudit/schema.py), kept here under the names the auditor uses
TAG_STATUS = schema.TAG_STATUS
TAG_CAUSES = schema.TAG_CAUSES
TAG_CAUSE_PREFIX = schema.TAG_CAUSE_PREFIX
TAG_ADVISORIES = schema.TAG_ADVISORIES
TAG_RECOMMENDATION = schema.TAG_RECOMMENDATION
TAG_AUDITED_AT = schema.TAG_AUDITED_AT
TAG_VERSION = schema.TAG_VERSION
AUDIT_ARTIFACT = schema.AUDIT_ARTIFACT
REPORT_ARTIFACT = schema.REPORT_ARTIFACT
_MAX_TAGS_PER_BATCH = 100  # MLflow's log_batch limit


def audit_tags(result: AuditResult) -> dict[str, str]:
    """The auditor's tags for a result, exactly as the contract names them."""
    tags = {
        TAG_STATUS: result.status,
        TAG_CAUSES: ",".join(result.causes),
        # set-up risks on a run that showed no harm; each also has its nnaudit.cause.<id> tag
        TAG_ADVISORIES: ",".join(result.advisories),
        # the UI shows tags as plain text: drop the code-span backticks kept in audit.json
        TAG_RECOMMENDATION: result.recommendation.replace("`", ""),
        TAG_AUDITED_AT: result.audited_at,
        TAG_VERSION: __version__,
    }
    for f in result.findings:
        tags[TAG_CAUSE_PREFIX + f.cause] = f.confidence
    return tags


def is_audit_tag(key: str) -> bool:
    """Tags this writer owns (and may replace or delete)."""
    return key in (TAG_STATUS, TAG_CAUSES, TAG_ADVISORIES, TAG_RECOMMENDATION, TAG_AUDITED_AT, TAG_VERSION) or key.startswith(
        TAG_CAUSE_PREFIX
    )


def write_result(client, result: AuditResult, existing_tags: dict[str, str]) -> None:
    """Store one run's audit: the artifacts first (`audit.json`, and `report.html` when the
    result carries its page; one upload), then remove the cause tags of an earlier audit that
    no longer apply, then all tags in one batch (a single transaction on SQL stores, so a reader
    never sees a half-written status)."""
    with tempfile.TemporaryDirectory(prefix="nnaudit-") as tmp:
        with open(os.path.join(tmp, os.path.basename(AUDIT_ARTIFACT)), "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(), fh, indent=2, sort_keys=False)
        if result.report_html is not None:
            with open(os.path.join(tmp, os.path.basename(REPORT_ARTIFACT)), "w", encoding="utf-8") as fh:
                fh.write(result.report_html)
        client.log_artifacts(result.run_id, tmp, os.path.dirname(AUDIT_ARTIFACT))
    tags = audit_tags(result)
    # stale cause tags go before the new status and time arrive: an audit interrupted in
    # between leaves a run that the next audit sees as not yet audited (see runner.is_up_to_date)
    for key in existing_tags:
        if key.startswith(TAG_CAUSE_PREFIX) and key not in tags:
            client.delete_tag(result.run_id, key)
    items = [RunTag(k, v) for k, v in tags.items()]
    for i in range(0, len(items), _MAX_TAGS_PER_BATCH):
        client.log_batch(result.run_id, tags=items[i : i + _MAX_TAGS_PER_BATCH], synchronous=True)
