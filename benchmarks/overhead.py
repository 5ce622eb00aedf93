"""Recorder overhead: step time with the recorder at its defaults vs without it.

Same process, same model and optimizer, alternating blocks of steps between two modes so
that machine noise (these machines are shared) hits both alike. Three measurements:

1. `on` vs `off`, the steady state of a run: one recording session (a real sqlite store, the
   recorder at its defaults, its periodic flushes included) stays open for the whole
   alternation. In `off` blocks the recorder's entry points answer "not recording", which is
   exactly what they answer when it is switched off, and the model hook the session adds is
   taken off; the session's sampling rhythm and buffers carry on untouched. (Switching the
   recorder off and on with `autolog(disable=...)` would close and reopen the session every
   block, and each block would pay a run's one-off start: that is measured apart, in 3.)
2. `dormant` vs `absent`: hooks installed with the recorder switched off vs no hooks at all:
   what merely having the package installed costs a program that imports mlflow and torch.
3. The one-off start of a recording session (model discovery, structure and initial-weight
   statistics, the first tags): extra time of a session's first `--warm` steps.

Figures: the median over block pairs of (mean step time on) / (mean step time off), each
block's mean covering its sampled steps and flushes; and the ratio of total times.

    python benchmarks/overhead.py [--blocks 60] [--steps 100] [--warm 5] [--threads 1] [--breakdown]
"""

import argparse
import collections
import contextlib
import statistics
import tempfile
import time

import mlflow
import torch
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit.recorder import patches
from mlflow_nnaudit.recorder.session import FULL_RESOLUTION_STEPS


def make_mlp():
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    data = (torch.randn(128, 64), torch.randint(0, 10, (128,)))
    return model, data


def make_cnn():
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )
    data = (torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)))
    return model, data


def run_block(model, opt, data, steps: int) -> float:
    """Mean step time over `steps` training steps."""
    x, y = data
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


@contextlib.contextmanager
def recorder_off_session_kept():
    """The recorder's hooks see "not recording" (as when it is switched off) and the session's
    model hook is off, while the session itself stays open (benchmark-only: reaches into the
    recorder's internals)."""
    recorder = patches.RECORDER
    session = recorder.session
    recorder.recording = lambda: None
    handle, session._root_hook = session._root_hook, None
    if handle is not None:
        handle.remove()
    try:
        yield
    finally:
        del recorder.recording
        if handle is not None:
            session._root_hook = session.model.root.register_forward_pre_hook(session._on_root_forward)
        session._last_step_end = None  # the off block is not a step of the session


def steady_state(factory, blocks: int, steps: int) -> dict[str, list[float]]:
    """1: one session open throughout; blocks alternate on/off in ABBA order."""
    torch.manual_seed(0)
    model, data = factory()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    patches.install_dormant_hooks()
    mlflow_nnaudit.autolog(silent=True)
    times: dict[str, list[float]] = {"on": [], "off": []}
    # session start, model discovery, the sampling rhythm settles, and the first
    # FULL_RESOLUTION_STEPS steps (their losses are all written, one point each) pass
    run_block(model, opt, data, FULL_RESOLUTION_STEPS + 2 * steps)
    for b in range(blocks):
        for mode in ("on", "off") if b % 2 == 0 else ("off", "on"):
            if mode == "on":
                times[mode].append(run_block(model, opt, data, steps))
            else:
                with recorder_off_session_kept():
                    times[mode].append(run_block(model, opt, data, steps))
    mlflow_nnaudit.autolog(disable=True, silent=True)
    return times


def set_mode(mode: str) -> None:
    if mode == "absent":
        patches.uninstall_hooks()
        return
    patches.install_dormant_hooks()
    mlflow_nnaudit.autolog(disable=(mode != "on"), silent=True)


def switching(factory, modes: tuple[str, str], blocks: int, steps: int) -> dict[str, list[float]]:
    """2 and 3: the switch itself is flipped between blocks (ABBA order)."""
    torch.manual_seed(0)
    model, data = factory()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for mode in modes:  # warm-up
        set_mode(mode)
        run_block(model, opt, data, steps)
    for b in range(blocks):
        for mode in modes if b % 2 == 0 else modes[::-1]:
            set_mode(mode)
            times[mode].append(run_block(model, opt, data, steps))
    patches.uninstall_hooks()
    return times


def paired(times: dict[str, list[float]], a: str, b: str) -> tuple[float, float, float, float]:
    """(median ms/step of a, of b, median of the paired block ratios, ratio of total times)."""
    pairs = [x / y for x, y in zip(times[a], times[b])]
    return (
        statistics.median(times[a]) * 1e3,
        statistics.median(times[b]) * 1e3,
        statistics.median(pairs),
        sum(times[a]) / sum(times[b]),
    )


def _timed(spent: collections.Counter, name: str, fn):
    """`fn`, adding its wall time to `spent[name]` and its calls to `spent[name + " calls"]`."""

    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            spent[name] += time.perf_counter() - t0
            spent[name + " calls"] += 1

    return wrapper


def breakdown(steps: int = 5000) -> None:
    """Time each hook in place over `steps` ordinary MLP steps (sampling pushed out of reach):
    where the fixed per-step cost goes. Each hook is wrapped in a timer before the hooks are
    installed; the timer's own cost is measured and taken off."""
    from mlflow_nnaudit.recorder import session as session_module

    spent: collections.Counter = collections.Counter()

    def timed(name, fn):
        return _timed(spent, name, fn)

    probe = timed("timer", lambda: None)
    for _ in range(100_000):
        probe()
    timer = spent.pop("timer") / 100_000
    patches.uninstall_hooks()
    saved = {n: getattr(patches, n) for n in ("_step_pre_hook", "_step_post_hook", "_before_backward", "_after_loss")}
    saved_root = session_module.RunSession._on_root_forward
    try:
        for name, fn in saved.items():
            setattr(patches, name, timed(name, fn))
        session_module.RunSession._on_root_forward = timed("_on_root_forward", saved_root)
        torch.manual_seed(0)
        model, data = make_mlp()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        patches.install_dormant_hooks()
        mlflow_nnaudit.autolog(silent=True, flush_every_seconds=3600)
        with mlflow.start_run(run_name="overhead-breakdown"):
            run_block(model, opt, data, 50)
            patches.RECORDER.session._next_sample = 10**9  # no sampled steps: the fixed cost only
            spent.clear()
            run_block(model, opt, data, steps)
        mlflow_nnaudit.autolog(disable=True, silent=True)
    finally:
        patches.uninstall_hooks()
        for name, fn in saved.items():
            setattr(patches, name, fn)
        session_module.RunSession._on_root_forward = saved_root
    print(f"per-step time in each hook over {steps} ordinary MLP steps (timer cost {timer * 1e6:.2f} us taken off):")
    for name in ("_step_pre_hook", "_step_post_hook", "_on_root_forward", "_after_loss", "_before_backward"):
        print(f"  {name:<18} {max(spent[name] / steps - timer, 0.0) * 1e6:6.2f} us")
    variable_costs(3 * steps)


def variable_costs(steps: int) -> None:
    """The costs that grow with what is recorded, on a steady MLP session at the defaults:
    the flushes (writing to the store) and the sampled steps, as shares of the training time."""
    from mlflow_nnaudit.recorder import session as session_module

    flushes: collections.Counter = collections.Counter()
    original = session_module.RunSession.flush
    timed_flush = _timed(flushes, "flush", original)

    torch.manual_seed(0)
    model, data = make_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    patches.install_dormant_hooks()
    mlflow_nnaudit.autolog(silent=True)
    session_module.RunSession.flush = timed_flush
    try:
        with mlflow.start_run(run_name="overhead-variable-costs"):
            run_block(model, opt, data, FULL_RESOLUTION_STEPS + 200)  # past the full-resolution start
            session = patches.RECORDER.session
            flushes.clear()
            samples, last, sample_cost = 0, session.next_sample, 0.0
            t0 = time.perf_counter()
            for _ in range(steps):
                run_block(model, opt, data, 1)
                if session.next_sample != last:
                    samples, last, sample_cost = samples + 1, session.next_sample, sample_cost + session._probe_seconds
            elapsed = time.perf_counter() - t0
            print(f"variable costs over {steps} steady MLP steps ({elapsed:.1f} s, the recorder at its defaults):")
            print(
                f"  flushes: {flushes['flush calls']}, {flushes['flush']:.3f} s = {100 * flushes['flush'] / elapsed:.2f}% "
                f"(~{session.sink.seconds_per_point * 1e6:.0f} us a point; a loss point per {session.loss_window()} steps)"
            )
            print(
                f"  samples: {samples} (one per ~{steps // max(samples, 1)} steps), statistics "
                f"{sample_cost:.3f} s = {100 * sample_cost / elapsed:.2f}% (their points are in the flushes)"
            )
    finally:
        session_module.RunSession.flush = original
        mlflow_nnaudit.autolog(disable=True, silent=True)
        patches.uninstall_hooks()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=60, help="block pairs per comparison")
    parser.add_argument("--steps", type=int, default=100, help="steps per block (MLP; the CNN uses a fifth)")
    parser.add_argument("--warm", type=int, default=5, help="steps of a new session timed for its one-off start")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps the noise down)")
    parser.add_argument("--breakdown", action="store_true", help="also time each hook in place (MLP)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        # artifacts (the recorder's diagnostics.json) in the temporary directory, not ./mlruns
        mlflow.set_experiment(experiment_id=mlflow.create_experiment("overhead", artifact_location=f"{tmp}/artifacts"))
        print(f"recorder defaults; {args.blocks} block pairs per comparison; torch threads={args.threads}")
        print(f"{'model':<5} {'comparison':<18} {'ms/step':>16} {'ratio (median)':>15} {'ratio (total)':>14}")
        for name, factory, steps in (("mlp", make_mlp, args.steps), ("cnn", make_cnn, max(args.steps // 5, 1))):
            with mlflow.start_run(run_name=f"overhead-{name}"):
                on = steady_state(factory, args.blocks, steps)
            with mlflow.start_run(run_name=f"overhead-{name}-start"):
                start = switching(factory, ("on", "dormant"), 16, args.warm)
            installed = switching(factory, ("dormant", "absent"), args.blocks, steps)
            for label, t, a, b in (
                ("on vs off", on, "on", "off"),
                ("dormant vs absent", installed, "dormant", "absent"),
            ):
                ta, tb, rm, rt = paired(t, a, b)
                print(f"{name:<5} {label:<18} {ta:7.3f} / {tb:6.3f} {rm:15.3f} {rt:14.3f}", flush=True)
            extra = (statistics.median(start["on"]) - statistics.median(start["dormant"])) * args.warm * 1e3
            print(f"{name:<5} one-off start of a recording session (its first {args.warm} steps): {extra:.1f} ms")
        if args.breakdown:
            breakdown()


if __name__ == "__main__":
    main()
