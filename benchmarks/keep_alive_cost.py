"""What keeping a training step's model output alive one step longer costs, with no recorder at all.

The moment probe looks back one step, so it keeps references to the step before's batch. Kept as it
was, the model's output holds the step's autograd graph; this plain loop measures that cost against
the same loop letting the output go, and against keeping it detached (what the probe keeps since
2026-12-06). The benchmark's MLP, one torch thread, blocks of steps alternating between the three modes.

    python benchmarks/keep_alive_cost.py [--blocks 150] [--steps 100]
"""

import argparse
import statistics
import time

import torch
from torch import nn

MODES = ("plain", "keep", "keep_detached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=150)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def block(mode: str) -> float:
        kept: list = [None, None]  # this step's and the step before's
        t0 = time.perf_counter()
        for _ in range(args.steps):
            opt.zero_grad()
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            if mode == "keep":
                kept = [kept[1], (out, y)]
            elif mode == "keep_detached":
                kept = [kept[1], (out.detach(), y)]
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / args.steps

    times: dict[str, list[float]] = {m: [] for m in MODES}
    for m in MODES:  # warm-up
        block(m)
    for b in range(args.blocks):
        for m in MODES if b % 2 == 0 else MODES[::-1]:
            times[m].append(block(m))
    base = times["plain"]
    print(f"plain: {statistics.median(base) * 1e3:.3f} ms/step")
    for m in MODES[1:]:
        ratio = statistics.median([a / b for a, b in zip(times[m], base)])
        print(f"{m}: {statistics.median(times[m]) * 1e3:.3f} ms/step, median ratio to plain {ratio:.4f}")


if __name__ == "__main__":
    main()
