"""`mlflow_nnaudit.autolog()`: the user-facing switch, in MLflow's autolog conventions."""

from __future__ import annotations

import sys

from mlflow.utils.autologging_utils import autologging_integration

from mlflow_nnaudit.recorder.config import _DEFAULTS, FLAVOR


def autolog(
    disable: bool = False,
    silent: bool = False,
    sample_every_n_steps: int = _DEFAULTS.sample_every_n_steps,
    flush_every_seconds: float = _DEFAULTS.flush_every_seconds,
    max_probe_overhead: float | None = _DEFAULTS.max_probe_overhead,
) -> None:
    """Turn the training-time recorder on (or off with `disable=True`).

    Once on, every PyTorch optimizer step is watched: the training loss of every step (taken
    from `loss.backward()`, nothing to log by hand), and every `sample_every_n_steps` steps
    the global and per-layer gradient norms, weight norms, update/weight ratios, the learning
    rate and non-finite gradients. Metrics go under `nnaudit/` into the active MLflow run; if
    no run is active at the first optimizer step, one is started.

    Args:
        disable: turn the recorder off and remove its hooks' effect.
        silent: suppress the recorder's warnings (errors inside it are still never raised).
        sample_every_n_steps: the most often the per-layer statistics are taken.
        flush_every_seconds: how often buffered metrics are written to MLflow.
        max_probe_overhead: the share of training time the sampled statistics may cost; when
            one sample costs more (small models with cheap steps), samples are spaced further
            apart (at most every 200 steps). None: sample exactly every `sample_every_n_steps`.

    Settings given here override those of `mlflow.autolog()`. `disable=True` also removes the
    recorder's hooks from torch at once (they come back with the next `autolog()`).
    """
    if sample_every_n_steps < 1:
        raise ValueError("sample_every_n_steps must be >= 1")
    if max_probe_overhead is not None and not 0 < max_probe_overhead <= 1:
        raise ValueError("max_probe_overhead must be in (0, 1], or None")
    _autolog(
        disable=disable,
        silent=silent,
        sample_every_n_steps=sample_every_n_steps,
        flush_every_seconds=flush_every_seconds,
        max_probe_overhead=max_probe_overhead,
    )
    if disable:
        patches = sys.modules.get("mlflow_nnaudit.recorder.patches")
        if patches is not None:
            patches.uninstall_hooks()


@autologging_integration(FLAVOR)
def _autolog(
    disable: bool = False,
    silent: bool = False,
    sample_every_n_steps: int = _DEFAULTS.sample_every_n_steps,
    flush_every_seconds: float = _DEFAULTS.flush_every_seconds,
    max_probe_overhead: float | None = _DEFAULTS.max_probe_overhead,
) -> None:
    """MLflow's autologging integration: stores the settings (MLflow's config handling), and
    when enabled arranges for the hooks to be installed once torch is imported."""
    from mlflow.utils.import_hooks import register_post_import_hook

    def _install(_torch):
        from mlflow_nnaudit.recorder.patches import install_dormant_hooks

        install_dormant_hooks()

    register_post_import_hook(_install, "torch", overwrite=True)
