"""The README's plugin package, exactly as printed, installed into a fresh virtual environment:
its tests pass with the gradcheck fixture, ``graphbp ops`` lists its op and package, and
``graphbp check --op`` checks it.

The files are the README's blocks whose first line is ``# graphbp-swish/PATH``; the commands
are the README's indented block that follows them (run with the new environment's tools).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PACKAGE = "graphbp-swish"


def package_files() -> dict[str, str]:
    """The README's files of the example package, by path: each is a fenced block whose first
    line is a comment naming its path."""
    blocks = re.findall(
        rf"```(?:toml|python)\n# ({PACKAGE}/\S+)\n(.*?)```", README.read_text(), flags=re.DOTALL
    )
    return {path: f"# {path}\n{body}" for path, body in blocks}


def package_commands() -> list[list[str]]:
    """The commands the README gives for the package: its indented block after the files."""
    text = README.read_text()
    start = text.index("python -m pytest graphbp-swish/tests")
    block = text[text.rindex("\n\n", 0, start) : text.index("\n\n", start)]
    return [shlex.split(line, comments=True) for line in block.strip("\n").splitlines()]


def test_the_readme_shows_a_whole_package() -> None:
    files = package_files()
    assert sorted(files) == [
        f"{PACKAGE}/graphbp_swish.py",
        f"{PACKAGE}/pyproject.toml",
        f"{PACKAGE}/tests/test_swish.py",
    ]
    pyproject = files[f"{PACKAGE}/pyproject.toml"]
    assert 'build-backend = "hatchling.build"' in pyproject
    assert 'dependencies = ["graphbp>=0.1"]' in pyproject
    assert '[project.entry-points."graphbp.ops"]\nswish = "graphbp_swish:Swish"' in pyproject
    assert "def test_swish_rule(gradcheck):" in files[f"{PACKAGE}/tests/test_swish.py"]
    assert [c[:2] for c in package_commands()] == [
        ["pip", "install"],  # graphbp itself, which is not on PyPI: the user's clone
        ["pip", "install"],
        ["python", "-m"],
        ["graphbp", "ops"],
        ["graphbp", "check"],
    ]


def _run(venv: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``args`` with its program taken from ``venv`` (as if it were activated)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    program = venv / "bin" / args[0]
    return subprocess.run(
        [str(program), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.skipif(sys.platform == "win32", reason="the venv layout differs on Windows")
def test_the_readme_package_installs_and_checks_in_a_fresh_venv(tmp_path: Path) -> None:
    for path, text in package_files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    commands = package_commands()
    # the README's first command installs graphbp from the user's clone: this checkout, not
    # editable; --no-compile skips byte-compiling every dependency at install (half the time
    # with matplotlib), as imports compile what they use
    assert commands[0] == ["pip", "install", "path/to/graphbp"]
    commands[0] = ["pip", "install", "--quiet", "--no-compile", str(ROOT)]

    results = [_run(venv, command, tmp_path) for command in commands]
    for command, result in zip(commands, results, strict=True):
        assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}{result.stderr}"
    _, _, tests, ops, check = results
    assert re.search(r"\b2 passed\b", tests.stdout), tests.stdout
    swish = next(line for line in ops.stdout.splitlines() if line.startswith("swish "))
    assert swish.split()[1:] == ["x·σ(x)", "σ(x)(1+x(1−σ(x)))", PACKAGE]
    assert "op 'swish' on numpy:" in check.stdout
    assert "op 'swish' (graphbp-swish): its vjp agrees" in check.stdout

    where = _run(
        venv,
        [
            "python",
            "-c",
            "import graphbp, graphbp_swish; print(graphbp.__file__); print(graphbp_swish.__file__)",
        ],
        tmp_path,
    )
    site = venv / "lib"
    assert all(Path(f).is_relative_to(site) for f in where.stdout.split()), where.stdout
