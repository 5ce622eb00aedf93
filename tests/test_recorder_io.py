"""The recorder never makes training wait on the tracking store: a server that is not there, a
server killed mid-training, and the run the recorder starts on a remote store (created on the
writer thread, then made the active run so the user's own `mlflow.log_metric` calls land in it).

Real processes on real ports: each script runs in its own Python process, and each is bounded
by a timeout that only a hang can reach (timings themselves are in benchmarks/dead_server.py).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.services import MlflowServer, SlowProxy, free_port

#: a tiny training loop as a user writes it: no start_run, mlflow.autolog(), then (optionally)
#: the user's own metric after training; prints one line per phase so a test can see how far it got
SCRIPT = """
import faulthandler, os, signal, sys, time
faulthandler.dump_traceback_later({dump_after}, exit=True)  # a hang shows every thread's stack
import mlflow, torch
from torch import nn
import mlflow_nnaudit

mlflow.autolog()
mlflow_nnaudit.autolog(flush_every_seconds=0.2, sample_every_n_steps=5)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
kill_at = int(os.environ.get("KILL_AT", "-1"))
killed_at, steps, give_up = None, {steps}, time.monotonic() + 30
i = 0
while i < steps:
    # the server is killed once the run exists and is active (on a loaded machine its creation
    # may outlast kill_at steps), or after 30 s without it: then "active None" fails the test
    run = mlflow.active_run() if 0 <= kill_at <= i and killed_at is None else None
    if killed_at is None and 0 <= kill_at <= i and (run is not None or time.monotonic() > give_up):
        print("active", run.info.run_id if run else None, flush=True)
        os.killpg(int(os.environ["SERVER_PGID"]), signal.SIGKILL)
        print("killed", flush=True)
        killed_at, steps = i, i + ({steps} - kill_at)  # as many steps after the kill as planned
    elif 0 <= kill_at <= i and killed_at is None:
        steps = i + 2  # not active yet: keep training
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    time.sleep({sleep})
    i += 1
print("trained", flush=True)
if os.environ.get("USER_METRIC"):
    mlflow.log_metric("user_metric", 1.5)
    print("run", mlflow.active_run().info.run_id, flush=True)
if os.environ.get("OTHER_THREAD_METRIC"):  # a thread of the user's that never trained
    import threading

    def other():
        mlflow.log_metric("other_thread_metric", 2.5)
        print("other", mlflow.active_run().info.run_id, flush=True)
        mlflow.end_run()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    print("run", mlflow.active_run().info.run_id if mlflow.active_run() else None, flush=True)
"""


def run_script(
    cwd, uri: str, steps: int, sleep: float = 0.0, timeout: float = 120, **env
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": uri, **{k: str(v) for k, v in env.items()}}
    code = textwrap.dedent(SCRIPT).format(steps=steps, sleep=sleep, dump_after=max(timeout - 15, 5))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full_env
    )


def test_a_dead_server_never_blocks_training(tmp_path):
    """Nothing listens on the port: MLflow's client would retry for minutes. Training and the
    process end within the recorder's bounded waits, with one warning saying what was lost."""
    port = free_port()  # bound and released: nothing listens there
    out = run_script(tmp_path, f"http://127.0.0.1:{port}", steps=200, timeout=90)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trained" in out.stdout
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "points could not be written" in out.stderr, out.stderr[-3000:]
    assert out.stderr.count("mlflow-nnaudit: could not write to the MLflow store") <= 1


@pytest.fixture
def server(tmp_path):
    srv = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path))
    yield srv
    srv.stop()


def test_a_server_killed_mid_training_never_blocks_training(tmp_path, server):
    """The server answers at first (the run is created and made active), then is SIGKILLed
    half-way: training goes on, and the process ends in bounded time (the run the recorder
    started is not left to MLflow's own end_run, which would retry for minutes)."""
    out = run_script(
        tmp_path, server.url, steps=300, sleep=0.01, timeout=120, KILL_AT=150, SERVER_PGID=os.getpgid(server.proc.pid)
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.split("\n")
    assert lines[0].startswith("active ") and lines[0] != "active None", out.stdout  # the run was made active
    assert "killed" in lines and "trained" in lines, out.stdout
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "points could not be written" in out.stderr, out.stderr[-3000:]


def test_the_run_started_on_a_server_is_the_users_active_run(tmp_path, server):
    """On a remote store the recorder creates its run on the writer thread; the training thread
    makes it the active run once it exists, so the user's later mlflow.log_metric lands there."""
    out = run_script(tmp_path, server.url, steps=60, sleep=0.01, timeout=120, USER_METRIC=1)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "points could not be written" not in out.stderr, out.stderr[-3000:]
    run_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("run "))
    client = MlflowClient(server.url)
    run = client.get_run(run_id)
    assert run.data.metrics["user_metric"] == 1.5
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "nnaudit/train_loss")]
    assert steps == list(range(60))
    assert run.data.tags.get("nnaudit.recorder.started_run") == "true"
    assert len(client.search_runs([run.info.experiment_id])) == 1  # no second run for the user's metric


def run_behind_slow_run_creation(tmp_path, server, **env) -> subprocess.CompletedProcess:
    """The script (20 steps) against the server through a proxy that holds `runs/create` for 3 s:
    training is over long before the run the recorder starts exists."""
    proxy = SlowProxy(server.url, {"runs/create": 3.0})
    try:
        return run_script(tmp_path, proxy.url, steps=20, sleep=0.0, timeout=120, **env)
    finally:
        proxy.stop()


def test_a_run_created_slower_than_training_still_takes_the_users_metric(tmp_path, server):
    """The store takes 3 s to create the run the recorder starts, and training (20 steps) is over
    long before: the user's `mlflow.log_metric` after training waits for that run (bounded, where
    the user's own call would talk to the same store anyway) and lands in it, instead of starting
    a second run that holds the user's metric while the recorder's holds the losses."""
    out = run_behind_slow_run_creation(tmp_path, server, USER_METRIC=1)
    assert out.returncode == 0, out.stderr[-3000:]
    run_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("run "))
    client = MlflowClient(server.url)
    run = client.get_run(run_id)
    assert run.data.metrics["user_metric"] == 1.5
    assert run.data.tags.get("nnaudit.recorder.started_run") == "true"
    assert [m.step for m in client.get_metric_history(run_id, "nnaudit/train_loss")] == list(range(20))
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_a_thread_that_never_trained_is_not_given_the_recorders_run(tmp_path, server):
    """MLflow's active run belongs to a thread. While the store is still creating the recorder's
    run (held 3 s), another thread of the user's that logs a metric is not handed that run (nor
    made to wait for it): it gets its own run, as MLflow would give it without the recorder, and
    the recorder's run keeps the training losses only."""
    out = run_behind_slow_run_creation(tmp_path, server, OTHER_THREAD_METRIC=1)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
    client = MlflowClient(server.url)
    other = client.get_run(lines["other"])
    assert other.data.metrics == {"other_thread_metric": 2.5}
    exp = other.info.experiment_id
    recorder_runs = [r for r in client.search_runs([exp]) if "nnaudit/train_loss" in r.data.metrics]
    assert len(recorder_runs) == 1 and recorder_runs[0].info.run_id != other.info.run_id
    assert "other_thread_metric" not in recorder_runs[0].data.metrics


STARTED_RUN = "nnaudit.recorder.started_run"


def run_with_tag_writes_refused(tmp_path, server, times: float) -> tuple[subprocess.CompletedProcess, SlowProxy]:
    """The script (60 steps) against the server through a proxy that answers 503 to the first
    `times` writes of the session's tags (version, started_run); MLflow's client does not retry
    on its own here, so each of the recorder's attempts meets a refusal."""
    proxy = SlowProxy(server.url, {}, refuse_bodies={STARTED_RUN: times})
    try:
        out = run_script(
            tmp_path, proxy.url, steps=60, sleep=0.01, timeout=120, USER_METRIC=1, MLFLOW_HTTP_REQUEST_MAX_RETRIES=0
        )
    finally:
        proxy.stop()
    return out, proxy


def test_a_tag_write_that_failed_is_written_once_the_store_answers_again(tmp_path, server):
    """Every attempt at writing the run's tags during training fails (the store does not answer
    that write; the metrics after it go through): the tags are written when the run ends, with the
    store answering again, instead of being dropped without a word (issue 12)."""
    out, proxy = run_with_tag_writes_refused(tmp_path, server, times=3)  # the writer's MAX_ATTEMPTS
    assert out.returncode == 0, out.stderr[-3000:]
    assert proxy.refused[STARTED_RUN] == 3, out.stderr[-3000:]  # all three attempts were refused
    assert "could not be written" not in out.stderr, out.stderr[-3000:]
    run_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("run "))
    client = MlflowClient(server.url)
    run = client.get_run(run_id)
    assert run.data.tags.get(STARTED_RUN) == "true"
    assert run.data.tags.get("nnaudit.recorder.version")
    assert run.data.metrics["user_metric"] == 1.5
    assert [m.step for m in client.get_metric_history(run_id, "nnaudit/train_loss")] == list(range(60))


def test_a_tag_the_store_never_takes_is_reported_lost(tmp_path, server):
    """The store never takes the run's tags: training and the metrics are not held up, and the
    loss is said in a warning that names the tags, as lost metric points are."""
    out, proxy = run_with_tag_writes_refused(tmp_path, server, times=math.inf)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "points could not be written" not in out.stderr, out.stderr[-3000:]
    lost = [line for line in out.stderr.splitlines() if "could not be written" in line]
    assert len(lost) == 1 and STARTED_RUN in lost[0] and "tags" in lost[0], out.stderr[-3000:]
    run_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("run "))
    client = MlflowClient(server.url)
    run = client.get_run(run_id)
    assert STARTED_RUN not in run.data.tags
    assert [m.step for m in client.get_metric_history(run_id, "nnaudit/train_loss")] == list(range(60))


def test_an_older_version_of_a_file_that_failed_never_overwrites_a_newer_one(tmp_path, server, monkeypatch):
    """Found by review: the diagnostics v1 fails its 3 tries while v2 waits behind it; v2 is written; the
    run's end must not try v1 again (it would overwrite v2 with stale evidence). A real server behind a
    proxy that refuses the first 3 uploads holding v1's marker and delays each upload (v1 is in flight
    when v2 is queued, so v2 does not replace it in the queue)."""
    from mlflow_nnaudit.recorder.sink import MlflowSink

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    proxy = SlowProxy(server.url, {"/artifacts/": 0.3}, refuse_bodies={"STALE-V1": 3})
    try:
        client = MlflowClient(proxy.url)
        run_id = client.create_run(client.create_experiment("stale")).info.run_id
        sink = MlflowSink(run_id, client=client)
        sink.log_text('{"v": "STALE-V1"}', "nnaudit/evidence.json")
        time.sleep(0.1)  # v1 is being uploaded (held 0.3 s by the proxy)
        sink.log_text('{"v": "NEW-V2"}', "nnaudit/evidence.json")
        lost = sink.close(wait_seconds=20)
    finally:
        proxy.stop()
    assert proxy.refused["STALE-V1"] == 3 and lost == 0
    path = MlflowClient(server.url).download_artifacts(run_id, "nnaudit/evidence.json", str(tmp_path))
    with open(path) as fh:
        assert "NEW-V2" in fh.read()
    assert not sink.lost_writes
