"""The README's Python examples run as written, in order, in one namespace."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphbp as gb
from graphbp.registry import unregister_op

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write files
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 5
    jax_installed = importlib.util.find_spec("jax") is not None
    dot_installed = shutil.which("dot") is not None
    namespace: dict[str, Any] = {}
    seed: dict[str, Any] = {}  # the names as the sections on the seed network leave them
    ops = set(gb.ops())
    try:
        for block in blocks:
            if "jax" in block and not jax_installed:
                continue  # the JAX sections' examples need the [jax] extra
            if "write_diagram" in block and not dot_installed:
                continue  # drawing an .html page needs Graphviz's dot
            if "gb.from_jax(" in block and not seed:  # the first JAX section's
                seed = dict(namespace)
            exec(compile(block, str(README), "exec"), namespace)
    finally:
        for name in set(gb.ops()) - ops:  # the ops the README registers (cube, wrong_cube)
            unregister_op(name)
    seed = seed or namespace
    assert sorted(seed["grads"]) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert np.isfinite(seed["loss"])
    if dot_installed:
        assert seed["rule"].text == "∂L/∂W1 = ∂L/∂ŷ · ∂ŷ/∂h2 · ∂h2/∂h1 · ∂h1/∂W1"
        np.testing.assert_allclose(seed["with_numbers"].gradient, seed["grads"]["W1"])
        assert (tmp_path / "seed.html").read_text().startswith("<!doctype html>")
    assert len(seed["history"]) == 150
    assert seed["history"][-1] < seed["history"][0]
    if jax_installed:
        for name, grad in seed["auto"].items():
            np.testing.assert_allclose(grad, seed["grads"][name], rtol=1e-12, atol=1e-14)
        assert len(seed["ensemble_losses"]) == 2 and len(seed["sharded_history"]) == 2
        _check_the_imported_model(namespace, dot_installed, tmp_path)


def _check_the_imported_model(ns: dict[str, Any], dot_installed: bool, tmp_path: Path) -> None:
    """What "Bring your own JAX model" says of its example: gb.from_jax's network gives
    jax.value_and_grad's loss and gradients on both backends, W1's paths sum to its gradient,
    and the drawing is the committed docs/jax_w1.svg."""
    assert sorted(ns["grads"]) == ["W1", "W2", "b1", "b2"] and sorted(ns["inputs"]) == ["x", "y"]
    for value, grads in ((ns["value"], ns["grads"]), (ns["value_on_jax"], ns["grads_on_jax"])):
        assert float(value) == pytest.approx(float(ns["value_jax"]), rel=1e-10)
        for name, grad in ns["grads_jax"].items():
            np.testing.assert_allclose(grads[name], grad, rtol=1e-10, atol=1e-14)
    assert ns["w1_rule"].path_count == len(ns["contributions"]) == 3
    np.testing.assert_allclose(sum(ns["contributions"]), ns["grads"]["W1"], rtol=1e-10)
    if dot_installed:
        assert "](docs/jax_w1.svg)" in _text()
        assert _drawing(README.parent / "docs/jax_w1.svg") == _drawing(tmp_path / "jax_w1.svg")


def test_the_diamond_table_is_what_explain_counts() -> None:
    rows = re.findall(r"^\| (\d+) \| (\d+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", _text(), re.M)
    assert len(rows) >= 6
    for k, nodes, paths, by_path, backprop in rows:
        net = gb.Network(gb.diamond_chain(int(k)))
        cost = gb.explain(net)
        assert int(nodes) == len(net.order)
        assert (cost.paths, cost.path_by_path, cost.backprop) == tuple(
            int(n.replace(",", "")) for n in (paths, by_path, backprop)
        )


def _text() -> str:
    return README.read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_the_readme_figure_is_what_graphbp_render_draws_now(tmp_path: Path) -> None:
    command = re.search(r"`graphbp render (--wrt W1 -o) seed_w1.svg`", _text())
    assert command is not None and "](docs/seed_w1.svg)" in _text()
    run = subprocess.run(
        [sys.executable, "-m", "graphbp.cli", "render", *command[1].split(), "now.svg"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    committed, now = (
        _drawing(p) for p in (README.parent / "docs/seed_w1.svg", tmp_path / "now.svg")
    )
    assert committed == now  # the same nodes, edges, texts and highlighting


def _drawing(path: Path) -> list[tuple[str, str, str]]:
    """Each element's tag, id and text, and every stroke colour: the SVG without coordinates."""
    root = ET.parse(path).getroot()
    return [(e.tag, e.get("id", ""), (e.text or "") + e.get("stroke", "")) for e in root.iter()]


def test_the_jax_sections_r2_is_the_quick_starts() -> None:
    """The JAX section quotes the test R² the Quick start's transcript shows for NumPy."""
    quick = re.search(r"^graphbp network +[\d.]+ +[\d.]+ +[\d.]+ +([\d.]+)$", _text(), re.M)
    jax = re.search(
        r"`graphbp train --backend jax` reaches the same test R²\s+\(([\d.]+)\)", _text()
    )
    assert quick is not None and jax is not None
    assert jax[1] == quick[1]
