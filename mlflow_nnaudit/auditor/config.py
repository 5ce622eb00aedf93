"""The auditor's config file: curve-role overrides kept with the project instead of on every
command line.

    # nnaudit.toml                       # or, in pyproject.toml:
    [roles]                              [tool.nnaudit.roles]
    train_loss = "objective"             train_loss = "objective"
    val_loss = ["val/nll", "dev_loss"]   val_loss = ["val/nll", "dev_loss"]

A role maps to a metric key, or to a list of keys of which the first one a run has is used
(different projects in one store spell it differently). Given no path, `nnaudit.toml` and
then `pyproject.toml` in the working directory are looked at; neither is required. `--role`
on the command line (or `roles=` in Python) wins over the file, role by role.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mlflow_nnaudit.auditor.curves import ROLES

DEFAULT_FILES = ("nnaudit.toml", "pyproject.toml")
RoleOverrides = dict[str, "str | list[str]"]


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise ValueError(f"cannot read {path}: reading TOML on Python 3.10 needs `pip install tomli`") from exc
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None


def _roles_table(doc: dict[str, Any]) -> Any:
    tool = doc.get("tool", {}).get("nnaudit", {}) if isinstance(doc.get("tool"), dict) else {}
    return doc.get("roles", tool.get("roles") if isinstance(tool, dict) else None)


def load_roles(path: str | os.PathLike | None = None, cwd: str | os.PathLike | None = None) -> RoleOverrides:
    """Role overrides from a config file (`[roles]` or `[tool.nnaudit.roles]`).

    Raises ValueError for a missing named file, bad TOML, an unknown role or a value that is
    not a key or a list of keys. Returns {} when no file is named and none is found.
    """
    if path is not None:
        candidates = [Path(path)]
        if not candidates[0].exists():
            raise ValueError(f"config file {path} does not exist")
    else:
        base = Path(cwd) if cwd is not None else Path.cwd()
        candidates = [base / name for name in DEFAULT_FILES if (base / name).is_file()]
    for file in candidates:
        table = _roles_table(_load_toml(file))
        if table is None:
            continue  # a pyproject.toml without our section
        if not isinstance(table, dict):
            raise ValueError(f'{file}: the roles section must be a table of ROLE = "metric key"')
        out: RoleOverrides = {}
        for role, keys in table.items():
            if role not in ROLES:
                raise ValueError(f"{file}: unknown curve role {role!r}; roles are: {', '.join(ROLES)}")
            if isinstance(keys, str) and keys:
                out[role] = keys
            elif isinstance(keys, list) and keys and all(isinstance(k, str) and k for k in keys):
                out[role] = list(keys)
            else:
                raise ValueError(f"{file}: role {role!r} must name a metric key or a list of keys")
        return out
    return {}
