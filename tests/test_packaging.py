"""The wheel installs graphbp, graphbp_numpy, graphbp_jax, graphbp_ops and nothing else at the
top level; it carries the license and each package's type information (py.typed), and states
graphbp.__version__."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from hatchling.builders.wheel import WheelBuilder

import graphbp

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel, as pip would build it."""
    out = tmp_path_factory.mktemp("wheel")
    return Path(next(WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])))


def test_wheel_has_no_top_level_backends_or_plugins(tmp_path: Path) -> None:
    wheel = Path(
        next(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"]))
    )
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"graphbp", "graphbp_numpy", "graphbp_jax", "graphbp_ops"}
    assert "graphbp/data/diabetes.csv" in names and "graphbp/data/README.md" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/entry_points.txt").decode()
    assert (
        "[graphbp.backends]\njax = graphbp_jax:JaxBackend\nnumpy = graphbp_numpy:NumpyBackend"
        in (entry_points)
    )
    assert "sigmoid = graphbp_ops.elementwise:Sigmoid" in entry_points
    assert "[pytest11]\ngraphbp = graphbp.pytest_plugin" in entry_points


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(
        line.strip()
        for line in readme.splitlines()
        if "pytest" in line and line.strip().startswith("pip install")
    )
    assert command in ci


def test_the_wheel_ships_the_license_and_py_typed_and_states_the_version(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    for package in ("graphbp", "graphbp_numpy", "graphbp_jax", "graphbp_ops"):
        assert f"{package}/py.typed" in names, package
    dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
    assert archive.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    metadata = email.message_from_bytes(archive.read(f"{dist_info}/METADATA"))
    assert metadata["Version"] == graphbp.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]


def test_the_license_file_is_the_license_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert "version" not in project and project["dynamic"] == ["version"]  # one source


def test_the_version_is_one_everywhere() -> None:
    from importlib.metadata import version

    assert version("graphbp") == graphbp.__version__  # the installed metadata
    for command in (["-m", "graphbp"], ["-m", "graphbp.cli"]):
        run = subprocess.run(
            [sys.executable, *command, "--version"], capture_output=True, text=True, check=True
        )
        assert run.stdout == f"graphbp {graphbp.__version__}\n"


USER_CODE = """
    import graphbp as gb
    from graphbp.backend import Backend
    from graphbp_numpy import NumpyBackend
    from graphbp_ops.elementwise import Sigmoid


    def saved(hidden: int) -> float:
        cost: gb.Cost = gb.explain(gb.Network(gb.seed_network(10, hidden, 1)))
        return cost.path_by_path / cost.backprop


    names: list[str] = gb.ops()
    label: str = Sigmoid.label
    backend: Backend = NumpyBackend()
"""
USER_MISTAKES = """
    import graphbp as gb
    from graphbp_ops.elementwise import Sigmoid

    cost = gb.explain(gb.Network(gb.seed_network(10, "16", 1)))
    paths: str = cost.paths
    shown: int = Sigmoid().describe({})[0]
"""


def test_mypy_strict_on_user_code_reads_the_installed_wheels_types(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"  # graphbp from the wheel alone: no editable install, no source
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel]
    subprocess.run(install, check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    results = {}
    for name, code in (("good.py", USER_CODE), ("mistakes.py", USER_MISTAKES)):
        (tmp_path / name).write_text(textwrap.dedent(code))
        mypy = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
        mypy += ["--python-executable", str(python), "--cache-dir", str(tmp_path / "cache")]
        results[name] = subprocess.run(
            [*mypy, name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")},
        )
    assert results["good.py"].returncode == 0, results["good.py"].stdout
    mistakes = results["mistakes.py"]
    assert mistakes.returncode == 1
    assert 'Argument 2 to "seed_network" has incompatible type "str"; expected "int"' in (
        mistakes.stdout
    )
    assert 'expression has type "int", variable has type "str"' in mistakes.stdout
    assert 'expression has type "str", variable has type "int"' in mistakes.stdout  # the op's
    assert "py.typed" not in mistakes.stdout and "import-untyped" not in mistakes.stdout
