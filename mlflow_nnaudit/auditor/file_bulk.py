"""Bulk reading of metric histories from a `./mlruns` file store, straight from its files.

`MlflowClient.get_metric_history` on a file store re-reads and validates the run's metadata on
every call; this reader opens `<root>/<experiment id>/<run id>/metrics/<key>` directly and
parses it exactly as MLflow's FileStore does (one `timestamp value step` line per point).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable, Mapping

import numpy as np

from mlflow_nnaudit.auditor.curves import Curve


def file_store_root(uri: str) -> str | None:
    """The directory of a `file:` (or bare path) store, else None."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        return urllib.parse.unquote(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return uri
    return None


class FileBulkReader:
    """Reads metric histories of a `./mlruns` file store straight from its files
    (`<root>/<experiment id>/<run id>/metrics/<key>`, one `timestamp value step` line per
    point), parsed exactly as MLflow's FileStore parses them, without the run-metadata reads
    and validation each `get_metric_history` call repeats."""

    def __init__(self, root: str) -> None:
        self.root = root

    def close(self) -> None:
        pass

    def read(
        self, keys_by_run: Mapping[str, Iterable[str]], experiments: Mapping[str, str]
    ) -> dict[tuple[str, str], Curve]:
        out: dict[tuple[str, str], Curve] = {}
        for rid, keys in keys_by_run.items():
            metrics_dir = os.path.join(self.root, str(experiments[rid]), rid, "metrics")
            if not os.path.isdir(metrics_dir):
                raise FileNotFoundError(f"no metrics folder for run {rid} under {self.root}")
            for key in dict.fromkeys(keys):
                try:
                    with open(os.path.join(metrics_dir, key), encoding="utf-8") as fh:
                        lines = fh.read().splitlines()
                except FileNotFoundError:
                    lines = []
                out[(rid, key)] = _file_curve(key, lines)
        return out


def _file_curve(key: str, lines: list[str]) -> Curve:
    steps, stamps, values = [], [], []
    for line in lines:
        parts = line.strip().split(" ")
        if parts == [""]:
            continue  # MLflow's reader would fail on a blank line; a torn last line is skipped here
        if len(parts) not in (2, 3, 5):
            raise ValueError(f"metric {key!r} is malformed: {len(parts)} fields in {line!r}")
        stamps.append(int(parts[0]))
        values.append(float(parts[1]))
        steps.append(int(parts[2]) if len(parts) == 3 else 0)  # as FileStore: 5-field lines have step 0
    return Curve(key, np.asarray(steps, dtype=float), np.asarray(values, dtype=float), np.asarray(stamps, dtype=float))
