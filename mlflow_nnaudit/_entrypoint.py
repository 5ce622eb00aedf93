"""Loaded by `import mlflow` (entry point group `mlflow.run_context_provider`).

This is the only way for a third-party package to run code when MLflow is imported, which is
what lets a plain `mlflow.autolog()` switch the recorder on. Rules for this module: import
nothing heavy, never raise (MLflow catches only ImportError/AttributeError here; anything else
would break `import mlflow` for the user), and do nothing at all when
`MLFLOW_NNAUDIT_DISABLE=true`.
"""

import os

_DISABLE_ENV = "MLFLOW_NNAUDIT_DISABLE"


def _auto_activation_disabled() -> bool:
    return os.environ.get(_DISABLE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _on_torch_import(_torch_module) -> None:
    try:
        from mlflow_nnaudit.recorder.patches import install_dormant_hooks

        install_dormant_hooks()
    except Exception:  # noqa: BLE001 - never break the user's `import torch`
        pass


def _arrange_torch_hook() -> None:
    try:
        if _auto_activation_disabled():
            return
        from mlflow.utils.import_hooks import register_post_import_hook

        register_post_import_hook(_on_torch_import, "torch", overwrite=True)
    except Exception:  # noqa: BLE001 - never break `import mlflow`
        pass


def _reconcile_hooks() -> None:
    """At each run start: hooks removed because the recorder was switched off come back when a
    later `mlflow.autolog()` switched it on again, and go when `mlflow.autolog(disable=True)`
    switched it off (nothing else in our code runs when MLflow's own autolog() is called)."""
    try:
        import sys

        patches = sys.modules.get("mlflow_nnaudit.recorder.patches")
        if patches is None:
            return  # torch not imported yet, or never with the recorder: nothing to reconcile
        from mlflow_nnaudit.recorder.config import current_config

        if patches.hooks_installed():
            patches.uninstall_if_switched_off()
        elif current_config() is not None:
            patches.install_dormant_hooks()
    except Exception:  # noqa: BLE001 - never break mlflow.start_run()
        pass


class NnauditRunContextProvider:
    """A run-context provider that provides nothing: it exists so that MLflow imports this
    module. (MLflow instantiates it once and asks `in_context()` at every run start.)"""

    def in_context(self) -> bool:
        _reconcile_hooks()
        return False

    def tags(self) -> dict:
        return {}


_arrange_torch_hook()
