"""Lint and types are part of the suite: ruff on everything, mypy --strict on the packages."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint_and_format() -> None:
    lint = _run("ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout
    fmt = _run("ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


def test_mypy_strict() -> None:
    """The core, and the backends and built-in ops too (the JAX backend where jax is installed)."""
    packages = ["graphbp", "backends/graphbp_numpy", "plugins/graphbp_ops"]
    if importlib.util.find_spec("jax") is not None:
        packages.append("backends/graphbp_jax")
    result = _run("mypy", "--strict", *packages)
    assert result.returncode == 0, result.stdout
