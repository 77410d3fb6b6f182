"""What the tests share besides graphs: running the command line as a user would.

Imported with ``from helpers import ...``, as pytest puts this folder on sys.path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
"""Debian's headless browser and its driver, for the HTML page's tests (None if missing)."""


def graphbp(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``graphbp ARGS...`` in a subprocess from ``cwd``, its output captured as text.

    Args:
        args: the command line after ``graphbp``.
        cwd: where it runs (and writes).
        env: variables to set or override in this process's environment.
    """
    return subprocess.run(
        [sys.executable, "-m", "graphbp.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def highlighted(browser: Any) -> set[str]:
    """The ids of the elements the HTML page currently highlights."""
    ids = browser.execute_script("return [...document.querySelectorAll('.hl')].map(e => e.id)")
    return set(ids)


def fake_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """An installed distribution on disk: modules plus a .dist-info with entry_points.txt."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"  # the spec's normalised name
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


def run_on_path(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new Python with ``path`` first on sys.path (its distributions
    installed)."""
    env_code = f"import sys; sys.path.insert(0, {str(path)!r})\n" + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", env_code], capture_output=True, text=True, timeout=120
    )
