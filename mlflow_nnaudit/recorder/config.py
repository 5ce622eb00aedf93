"""When is the recorder on, and with which settings.

Imports nothing of MLflow at module level: this module is reached from torch's import hook,
which can fire while `import mlflow` is still half-way (when torch was imported first), and
MLflow's autolog configuration is looked up in `sys.modules` at call time instead.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

FLAVOR = "nnaudit"
_DISABLE_ENV = "MLFLOW_NNAUDIT_DISABLE"
_log = logging.getLogger("mlflow_nnaudit")


@dataclass(frozen=True)
class RecorderConfig:
    """Effective recorder settings (from `mlflow_nnaudit.autolog()` or `mlflow.autolog()`)."""

    silent: bool = False
    sample_every_n_steps: int = 10
    flush_every_seconds: float = 10.0
    max_probe_overhead: float | None = 0.01


_DEFAULTS = RecorderConfig()


def auto_activation_disabled() -> bool:
    return os.environ.get(_DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


#: MLflow's PyTorch flavor: `mlflow.pytorch.autolog()` switches the recorder on as well
PYTORCH_FLAVOR = "pytorch"
# (own, mlflow.autolog, mlflow.pytorch.autolog config dicts, answer): holding the dicts themselves
# (not their ids) so that a replaced dict can never be mistaken for a new one at the same address
_cache: tuple[dict | None, dict | None, dict | None, RecorderConfig | None] | None = None


def current_config() -> RecorderConfig | None:
    """The recorder's settings if it is on now, else None. Called on every step, so the
    answer is cached until either autolog() is called again (each call stores a new dict).

    `mlflow_nnaudit.autolog(...)` wins when it was called; otherwise a plain
    `mlflow.autolog()` or `mlflow.pytorch.autolog()` turns the recorder on unless
    `mlflow.autolog()` was called with `disable=True` or with "nnaudit" in `exclude_flavors`,
    or `MLFLOW_NNAUDIT_DISABLE` is set.
    """
    global _cache
    utils = sys.modules.get("mlflow.utils.autologging_utils")
    integrations = getattr(utils, "AUTOLOGGING_INTEGRATIONS", None)
    if not integrations:
        return None  # nobody has called any autolog() yet
    own = integrations.get(FLAVOR)
    glob = integrations.get("mlflow")
    flavor = integrations.get(PYTORCH_FLAVOR)
    if _cache is not None and _cache[0] is own and _cache[1] is glob and _cache[2] is flavor:
        return _cache[3]
    config = _resolve(own, glob, flavor)
    _cache = (own, glob, flavor, config)
    return config


def _resolve(own: dict | None, glob: dict | None, flavor: dict | None = None) -> RecorderConfig | None:
    if own:  # a non-empty dict: our autolog() was called
        if own.get("disable", False):
            return None
        return RecorderConfig(
            silent=bool(own.get("silent", False)),
            sample_every_n_steps=int(own.get("sample_every_n_steps", _DEFAULTS.sample_every_n_steps)),
            flush_every_seconds=float(own.get("flush_every_seconds", _DEFAULTS.flush_every_seconds)),
            max_probe_overhead=own.get("max_probe_overhead", _DEFAULTS.max_probe_overhead),
        )
    if auto_activation_disabled():
        return None
    if glob:
        # mlflow.autolog() also calls mlflow.pytorch.autolog(): its switches decide
        if glob.get("disable", False) or FLAVOR in (glob.get("exclude_flavors") or ()):
            return None
        return RecorderConfig(silent=bool(glob.get("silent", False)))
    if flavor and not flavor.get("disable", False):
        return RecorderConfig(silent=bool(flavor.get("silent", False)))
    return None


def describe(exc: BaseException, limit: int = 300) -> str:
    """An error in one line for a warning: its type and the first line of its message, cut at
    `limit` characters (a dispatcher error from torch lists every backend over dozens of lines)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:limit]}" + ("..." if len(first) > limit or len(text) > 1 else "")


def warn(config: RecorderConfig | None, message: str) -> None:
    """The recorder's only way to complain: a logged warning, unless silent."""
    if config is None or not config.silent:
        _log.warning("mlflow-nnaudit: %s", message)
