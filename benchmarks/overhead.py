"""Recorder overhead: step time with the recorder at its defaults vs without it.

Same process, same architecture, alternating short blocks of steps between two modes so
that machine noise (these machines are shared) hits both alike; the figure is the ratio of
the median block step times (and of the total times, which include the recorder's periodic
flushes to the store). Two comparisons, each in its own alternation:

1. `on` vs `dormant`: the recorder at its default settings, logging into a real sqlite store,
   vs the same hooks installed with the recorder switched off. This is what turning the
   recorder on costs.
2. `dormant` vs `absent`: hooks installed but off vs no hooks at all. This is what merely
   having the package installed costs a program that imports mlflow and torch.

Each block starts with `--warm` untimed steps: switching the recorder on starts a new
recording session, whose first steps do one-off work (model discovery, structure and initial
weight statistics, the first diagnostics.json) that a real run pays once, not every 25 steps.
That one-off cost is printed separately.

    python benchmarks/overhead.py [--blocks 40] [--steps 25] [--warm 5]
"""

import argparse
import statistics
import tempfile
import time

import mlflow
import torch
from torch import nn

import mlflow_nnaudit
from mlflow_nnaudit.recorder import hooks


def make_mlp():
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    data = (torch.randn(128, 64), torch.randint(0, 10, (128,)))
    return model, data


def make_cnn():
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10),
    )
    data = (torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)))
    return model, data


def run_block(model, opt, data, steps: int, warm: int = 0) -> float:
    """Mean step time over `steps` steps, after `warm` untimed ones."""
    x, y = data
    for _ in range(warm):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def set_mode(mode: str) -> None:
    if mode == "absent":
        hooks.uninstall_hooks()
        return
    hooks.install_dormant_hooks()
    mlflow_nnaudit.autolog(disable=(mode == "dormant"), silent=True)


def alternate(factory, modes: tuple[str, str], blocks: int, steps: int, warm: int = 0) -> dict[str, list[float]]:
    """Median-friendly paired timing: blocks of `steps` steps, modes alternating (ABBA order)."""
    setups = {}
    for mode in modes:
        torch.manual_seed(0)
        model, data = factory()
        setups[mode] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), data)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for mode in modes:  # warm-up
        set_mode(mode)
        run_block(*setups[mode], steps)
    for b in range(blocks):
        for mode in (modes if b % 2 == 0 else modes[::-1]):
            set_mode(mode)
            times[mode].append(run_block(*setups[mode], steps, warm))
    return times


def ratios(times: dict[str, list[float]], a: str, b: str) -> tuple[float, float, float, float]:
    ma, mb = statistics.median(times[a]), statistics.median(times[b])
    return ma * 1e3, mb * 1e3, ma / mb, sum(times[a]) / sum(times[b])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps the noise down)")
    parser.add_argument("--warm", type=int, default=5,
                        help="untimed steps at the start of each block (switching the recorder on starts a "
                             "new recording session, whose one-off first-step work a real run pays once)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("overhead")
        print(f"recorder defaults; {args.blocks} alternating blocks of {args.steps} steps each; "
              f"torch threads={args.threads}")
        print(f"{'model':<5} {'comparison':<19} {'ms/step':>16} {'ratio (median)':>15} {'ratio (total)':>14}")
        for name, factory in (("mlp", make_mlp), ("cnn", make_cnn)):
            with mlflow.start_run(run_name=f"overhead-{name}"):
                on = alternate(factory, ("on", "dormant"), args.blocks, args.steps, args.warm)
                start = alternate(factory, ("on", "dormant"), 8, args.warm, 0)  # the session's first steps
            hooks.uninstall_hooks()
            installed = alternate(factory, ("dormant", "absent"), args.blocks, args.steps, args.warm)
            hooks.uninstall_hooks()
            for label, t, a, b in (("on vs dormant", on, "on", "dormant"),
                                   ("dormant vs absent", installed, "dormant", "absent")):
                ta, tb, rm, rt = ratios(t, a, b)
                print(f"{name:<5} {label:<19} {ta:7.3f} / {tb:6.3f} {rm:15.3f} {rt:14.3f}")
            extra = (statistics.median(start["on"]) - statistics.median(start["dormant"])) * args.warm * 1e3
            print(f"{name:<5} one-off cost of a recording session's first {args.warm} steps: {extra:.1f} ms")


if __name__ == "__main__":
    main()
