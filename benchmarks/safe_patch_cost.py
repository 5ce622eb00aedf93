"""Per-call cost of MLflow's `safe_patch` wrapper vs a plain `functools.wraps` wrapper (the kind
`mlflow_nnaudit/recorder/patches.py` uses), on a function that does nothing: the price of the
wrapper alone, which the recorder would pay on every `backward()`, loss call and optimizer
step. Ratios in one run; figures quoted in patches.py's docstring.

    python benchmarks/safe_patch_cost.py [--calls 200000]
"""

import argparse
import functools
import time

from mlflow.utils.autologging_utils import autologging_integration, safe_patch

FLAVOR = "nnaudit_bench"


class Target:
    def plain(self, x):
        return x

    def safe(self, x):
        return x


@autologging_integration(FLAVOR)
def _autolog(disable: bool = False, silent: bool = False) -> None:
    def patch(original, self, x):
        return original(self, x)

    safe_patch(FLAVOR, Target, "safe", patch)


def _plain_patch() -> None:
    original = Target.plain

    @functools.wraps(original)
    def plain(self, x):
        return original(self, x)

    Target.plain = plain


def per_call(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - t0) / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    calls = parser.parse_args().calls
    target = Target()
    bare = min(per_call(target.plain, calls) for _ in range(3))
    _autolog()
    _plain_patch()
    plain = min(per_call(target.plain, calls) for _ in range(3))
    safe = min(per_call(target.safe, calls) for _ in range(3))
    print(f"no-op method, best of 3 x {calls} calls")
    print(f"  unpatched         {bare * 1e6:7.3f} us/call")
    print(f"  functools.wraps   {plain * 1e6:7.3f} us/call  (+{(plain - bare) * 1e6:.3f})")
    print(
        f"  mlflow safe_patch {safe * 1e6:7.3f} us/call  (+{(safe - bare) * 1e6:.3f}, "
        f"{(safe - bare) / max(plain - bare, 1e-12):.0f}x the plain wrapper's cost)"
    )


if __name__ == "__main__":
    main()
