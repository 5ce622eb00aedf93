"""The recorder: an MLflow autolog extension that watches PyTorch training from inside.

It is switched on by `mlflow_nnaudit.autolog()`, or by a plain `mlflow.autolog()` when the
package is installed (see `_entrypoint.py`). It installs a few of torch's global hooks once
(optimizer step pre/post hooks) and wraps `Tensor.backward`; while the recorder is off they
return at once. Nothing here imports torch at module level: the auditor and users without
torch can import the package freely.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS, autologging_integration

FLAVOR = "nnaudit"
_DISABLE_ENV = "MLFLOW_NNAUDIT_DISABLE"


@dataclass(frozen=True)
class RecorderConfig:
    """Effective recorder settings (from `mlflow_nnaudit.autolog()` or `mlflow.autolog()`)."""

    silent: bool = False
    sample_every_n_steps: int = 10
    flush_every_seconds: float = 10.0


_DEFAULTS = RecorderConfig()


@autologging_integration(FLAVOR)
def autolog(
    disable: bool = False,
    silent: bool = False,
    sample_every_n_steps: int = _DEFAULTS.sample_every_n_steps,
    flush_every_seconds: float = _DEFAULTS.flush_every_seconds,
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
        sample_every_n_steps: how often the per-layer statistics are taken.
        flush_every_seconds: how often buffered metrics are written to MLflow.

    Settings given here override those of `mlflow.autolog()`.
    """
    if sample_every_n_steps < 1:
        raise ValueError("sample_every_n_steps must be >= 1")
    from mlflow.utils.import_hooks import register_post_import_hook

    def _install(_torch):
        from mlflow_nnaudit.recorder.hooks import install_dormant_hooks

        install_dormant_hooks()

    register_post_import_hook(_install, "torch", overwrite=True)


def auto_activation_disabled() -> bool:
    return os.environ.get(_DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# (own config dict, mlflow.autolog config dict, answer): holding the dicts themselves (not their
# ids) so that a replaced dict can never be mistaken for a new one at the same address
_cache: tuple[dict | None, dict | None, RecorderConfig | None] | None = None


def current_config() -> RecorderConfig | None:
    """The recorder's settings if it is on now, else None. Called on every step, so the
    answer is cached until either autolog() is called again (each call stores a new dict).

    `mlflow_nnaudit.autolog(...)` wins when it was called; otherwise a plain
    `mlflow.autolog()` turns the recorder on unless it was called with `disable=True`,
    with "nnaudit" in `exclude_flavors`, or `MLFLOW_NNAUDIT_DISABLE` is set.
    """
    global _cache
    own = AUTOLOGGING_INTEGRATIONS.get(FLAVOR)
    glob = AUTOLOGGING_INTEGRATIONS.get("mlflow")
    if _cache is not None and _cache[0] is own and _cache[1] is glob:
        return _cache[2]
    config = _resolve(own, glob)
    _cache = (own, glob, config)
    return config


def _resolve(own: dict | None, glob: dict | None) -> RecorderConfig | None:
    if own:  # a non-empty dict: our autolog() was called
        if own.get("disable", False):
            return None
        return RecorderConfig(
            silent=bool(own.get("silent", False)),
            sample_every_n_steps=int(own.get("sample_every_n_steps", _DEFAULTS.sample_every_n_steps)),
            flush_every_seconds=float(own.get("flush_every_seconds", _DEFAULTS.flush_every_seconds)),
        )
    if not glob or glob.get("disable", False) or auto_activation_disabled():
        return None
    if FLAVOR in (glob.get("exclude_flavors") or ()):
        return None
    return RecorderConfig(silent=bool(glob.get("silent", False)))


__all__ = ["autolog", "current_config", "RecorderConfig"]
