"""What the tests share besides graphs: running the command line as a user would.

Imported with ``from helpers import ...``, as pytest puts this folder on sys.path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from html.parser import HTMLParser
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


USER_OPS = Path(__file__).with_name("user_ops.py")
"""The plugin ops the tests share (tests/user_ops.py), to copy where a subprocess imports it."""

GRADCHECK_TESTS = {
    "test_fixture.py": """
        from user_ops import Cube

        class WrongCube(Cube):
            def vjp(self, xp, g, out, x):
                return (2 * g * x**2,)

        class Crashing(Cube):
            def vjp(self, xp, g, out, x):
                return (g * x.no_such_method(),)  # the plugin's own bug

        def test_good(gradcheck):
            from graphbp.testing import installed_backends
            reports = gradcheck(Cube())
            oracle = ["jax"] if "jax" in installed_backends() else []  # and jax.vjp
            assert [r.backend for r in reports] == installed_backends() + oracle
            assert all(r.compared > 0 for r in reports)

        def test_wrong_rule(gradcheck):
            gradcheck(WrongCube())

        def test_raising_rule(gradcheck):
            gradcheck(Crashing())
    """,
    "tests/test_network.py": """
        import graphbp as gb
        from user_ops import WrongSwish

        gb.register_op(WrongSwish)

        def test_network(gradcheck):
            g = gb.seed_network(3, 4, 1)
            g.nodes["h1"]["activation"] = "t_wrong_swish"
            gradcheck(gb.Network(g))
    """,
    # A user's clone of their plugin may sit in a folder named graphbp (or numpy): its frames
    # are still the user's.
    "graphbp/test_raising.py": """
        from user_ops import Cube

        class Raising(Cube):
            def vjp(self, xp, g, out, x):
                return (g / undefined_name,)

        def test_raising(gradcheck):
            gradcheck(Raising())
    """,
}
"""A plugin author's test files using the ``gradcheck`` fixture, by path; run once, in one
pytest subprocess, by the ``gradcheck_run`` fixture (every test name is unique)."""


@dataclass
class PytestRun:
    """What a pytest subprocess printed, read test by test."""

    root: Path
    out: str

    def outcome(self, test: str) -> str:
        """``"passed"``, ``"failed"``, ... of the test function named ``test``."""
        found = re.search(rf"^([A-Z]+) \S+::{re.escape(test)}\b", self.out, re.MULTILINE)
        assert found, self.out
        return found[1].lower()

    def report(self, test: str) -> str:
        """The failure report of the test function named ``test`` (from its ``___ test ___``
        header to the next header)."""
        lines = self.out.splitlines()
        start = lines.index(next(x for x in lines if re.fullmatch(rf"_+ {test} _+", x)))
        heads = (
            i for i in range(start + 1, len(lines)) if re.fullmatch(r"[_=]+ .+ [_=]+", lines[i])
        )
        return "\n".join(lines[start : next(heads, len(lines))])


def run_pytest(root: Path, files: dict[str, str]) -> PytestRun:
    """Write ``files`` (path: source) and ``user_ops.py`` under ``root`` and run pytest
    there, in a subprocess with its own configuration, as a plugin author would."""
    (root / USER_OPS.name).write_text(USER_OPS.read_text())
    for path, source in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--color=no"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    return PytestRun(root, done.stdout + done.stderr)


def assert_only_plugin_frames(report: str) -> None:
    """A failure report of the gradcheck fixture shows graphbp's message and the plugin's
    line, never graphbp's frames, a chained traceback or NumPy reprs, in a few lines."""
    for frame in ("testing.py", "pytest_plugin.py", "op.py", "_check_op", "check_network("):
        assert frame not in report, report
    assert "During handling" not in report and "np.int64" not in report, report
    assert len(report.splitlines()) < 40, report


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)
