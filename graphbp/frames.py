"""Whose code a traceback frame runs: graphbp's own (its core, backends and built-in ops)
and the array libraries', or a plugin's, told by where the file really is (a user's own
folder named graphbp, numpy or jax holds the user's code)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

LIBRARIES = ("graphbp", "graphbp_ops", "graphbp_numpy", "graphbp_jax", "numpy", "jax", "jaxlib")
"""Packages whose frames are never the place to fix a plugin."""


@cache
def _library_folders() -> tuple[Path, ...]:
    """The folders the installed packages of ``LIBRARIES`` live in (found without
    importing them)."""
    folders = []
    for name in LIBRARIES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            folders.append(Path(folder).resolve())
    return tuple(folders)


def in_library(filename: str) -> bool:
    """Whether ``filename`` (a frame's ``co_filename``) is a module of one of ``LIBRARIES``,
    by its real location."""
    try:
        path = Path(filename).resolve()
    except (OSError, RuntimeError):
        return False
    return any(path.is_relative_to(folder) for folder in _library_folders())
