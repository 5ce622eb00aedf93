"""Bulk reading of metric histories through a tracking server's REST API.

Through `mlflow server`, `MlflowClient.get_metric_history` is one HTTP round trip per run and
metric (~75 ms each), so a store of thousands of runs takes hours. The server has a bulk
endpoint, `GET /ajax-api/2.0/mlflow/metrics/get-history-bulk` (one metric key, at most 100
run ids, at most 25,000 points in all): this module asks it for groups of runs sized so that
their points fit (estimated from each run's latest step), several requests at a time.

Its one trap: beyond 25,000 points the answer is cut short without a word. An answer of
exactly the limit is therefore taken as possibly cut: its group is split in two and asked
again, down to a single run, whose history then comes through the client's own paginated
call. So a curve is never silently short.

The other endpoint, `get-history-bulk-interval`, downsamples; it is not used. Requests go
through MLflow's own `http_request` with the client's credentials (MLFLOW_TRACKING_USERNAME /
PASSWORD / TOKEN, TLS settings), so authentication works as it does for the client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mlflow_nnaudit.auditor.curves import Curve

ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
#: the server's limits (mlflow/server/handlers.py, get_metric_history_bulk_handler)
MAX_RUNS_PER_REQUEST = 100
MAX_POINTS_PER_REQUEST = 25_000
#: requests in flight at once (the server answers each from its database; more threads mostly wait)
PARALLEL_REQUESTS = 8


def supports(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


class RestBulkReader:
    """Reads many runs' histories from a tracking server, grouped per metric key."""

    def __init__(self, client) -> None:
        self.client = client  # an MlflowClient on the server: its credentials and its fallback
        self._creds = client._tracking_client.store.get_host_creds

    def close(self) -> None:
        pass

    def read(
        self, keys_by_run: Mapping[str, Iterable[str]], sizes: Mapping[tuple[str, str], int] | None = None
    ) -> dict[tuple[str, str], Curve]:
        """{(run id, key): Curve} for every requested pair (an empty Curve when nothing was
        logged). `sizes` estimates the points of each pair (e.g. latest step + 1), to fill
        each request without passing the server's limit; a wrong estimate costs only an extra
        request. Raises on any HTTP error; nothing is returned half-read."""
        sizes = sizes or {}
        by_key: dict[str, list[str]] = {}
        for rid, keys in keys_by_run.items():
            for key in dict.fromkeys(keys):
                by_key.setdefault(key, []).append(rid)
        jobs = []
        for key, rids in by_key.items():
            group, total = [], 0
            for rid in rids:
                n = max(1, int(sizes.get((rid, key), 1)))
                if n >= MAX_POINTS_PER_REQUEST:  # more than one answer can hold: the client pages it
                    jobs.append((key, [rid], True))
                    continue
                if group and (len(group) >= MAX_RUNS_PER_REQUEST or total + n >= MAX_POINTS_PER_REQUEST):
                    jobs.append((key, group))
                    group, total = [], 0
                group.append(rid)
                total += n
            if group:
                jobs.append((key, group))
        out: dict[tuple[str, str], Curve] = {}
        with ThreadPoolExecutor(PARALLEL_REQUESTS, thread_name_prefix="nnaudit-rest") as pool:
            for part in pool.map(lambda job: self._read_group(*job), jobs):  # (key, runs[, big])
                out.update(part)
        return out

    def _read_group(self, key: str, run_ids: list[str], big: bool = False) -> dict[tuple[str, str], Curve]:
        if len(run_ids) == 1:
            points = [] if big else self._request(key, run_ids)
            if not big and len(points) < MAX_POINTS_PER_REQUEST:
                return {(run_ids[0], key): _curve(key, points)}
            # one run with the limit or more: the client's own call pages through all of it
            hist = self.client.get_metric_history(run_ids[0], key)
            return {(run_ids[0], key): _curve(key, [(m.step, m.timestamp, m.value) for m in hist])}
        points = self._request(key, run_ids)
        if len(points) >= MAX_POINTS_PER_REQUEST:  # possibly cut short: ask again in halves
            half = len(run_ids) // 2
            return {**self._read_group(key, run_ids[:half]), **self._read_group(key, run_ids[half:])}
        per_run: dict[str, list[tuple[float, float, float]]] = {rid: [] for rid in run_ids}
        for m in points:
            per_run[m[3]].append(m[:3])
        return {(rid, key): _curve(key, pts) for rid, pts in per_run.items()}

    def _request(self, key: str, run_ids: list[str]) -> list[tuple]:
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        resp = http_request(
            self._creds(),
            ENDPOINT,
            "GET",
            params={"run_id": run_ids, "metric_key": key, "max_results": MAX_POINTS_PER_REQUEST},
        )
        verify_rest_response(resp, ENDPOINT)
        return [
            (m.get("step", 0), m.get("timestamp", 0), m["value"], m["run_id"]) for m in resp.json().get("metrics", [])
        ]


def _curve(key: str, points: list[tuple]) -> Curve:
    """A Curve from (step, timestamp, value) points, ordered as the client path orders them:
    by (timestamp, step, value) as the server returns them, then stably by step."""
    if not points:
        return Curve(key, np.zeros(0), np.zeros(0), np.zeros(0))
    arr = np.array([p[:3] for p in points], dtype=float)
    order = np.lexsort((arr[:, 2], arr[:, 0], arr[:, 1]))  # timestamp, then step, then value
    arr = arr[order]
    return Curve(key, arr[:, 0], arr[:, 2], arr[:, 1])
