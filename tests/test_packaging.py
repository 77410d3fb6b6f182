"""The wheel installs graphbp, graphbp_numpy, graphbp_ops and nothing else at the top level."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).resolve().parent.parent


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
