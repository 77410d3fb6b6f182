"""Shared fixtures: the seed network, a registry that forgets test ops afterwards, one pytest
run of a plugin author's gradcheck tests, and a guard that fails the run if a test leaves a
file in the directory pytest was started from."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from graphs import chain
from helpers import CHROMEDRIVER, CHROMIUM, GRADCHECK_TESTS, PytestRun, run_pytest

import graphbp as gb
from graphbp.registry import unregister_op

pytest_plugins = ["pytester"]

_NOT_OURS = (".git", ".venv", "venv*", "__pycache__", ".pytest_cache", ".mypy_cache")
_NOT_OURS += (".ruff_cache", ".hypothesis", "*.egg-info", "build", "dist")


def _files(root: Path) -> set[Path]:
    """Every file under ``root``, skipping caches, virtual environments and build output."""
    found: set[Path] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in _NOT_OURS)]
        found.update(Path(folder, f).relative_to(root) for f in files)
    return found


@pytest.fixture(autouse=True, scope="session")
def _no_test_writes_into_the_working_directory(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests write under tmp_path: a new file where pytest was started from fails the run."""
    root = request.config.invocation_params.dir
    if not root.is_relative_to(request.config.rootpath):  # started from outside: the project
        root = request.config.rootpath
    before = _files(root)
    yield
    if new := sorted(map(str, _files(root) - before)):
        pytest.fail(f"tests left files in {root} (write them under tmp_path): {', '.join(new)}")


@pytest.fixture(scope="session")
def gradcheck_run(tmp_path_factory: pytest.TempPathFactory) -> PytestRun:
    """One pytest subprocess over a plugin author's test files (``GRADCHECK_TESTS``), shared
    by the tests of the ``gradcheck`` fixture's output (a run costs seconds)."""
    return run_pytest(tmp_path_factory.mktemp("gradcheck"), GRADCHECK_TESTS)


@pytest.fixture
def register() -> Iterator[Any]:
    """register(op) for this test only."""
    names: list[str] = []

    def _register(op: Any, **kw: Any) -> gb.Op:
        registered = gb.register_op(op, **kw)
        names.append(registered.name)
        return registered

    yield _register
    for name in names:
        unregister_op(name)


@pytest.fixture
def seed_net() -> gb.Network:
    """The textbook network, 5 inputs, 4 hidden, 2 outputs."""
    return gb.Network(gb.seed_network(5, 4, 2))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def param_chain(
    ops: list[str],
    shape: tuple[int, ...] = (3,),
    init: Any = 1.0,
    names: list[Any] | None = None,
    param: str = "p",
) -> nx.DiGraph:
    """param → ops[0] → ops[1] → ... → L = sum, op nodes named by ``names`` or 0, 1, ...."""
    return chain(ops, shape=shape, init=init, names=names, source=param)


@pytest.fixture(name="param_chain")
def param_chain_fixture() -> Any:
    """The param_chain builder (graphs.chain from a param)."""
    return param_chain


def operand_multigraph(net: gb.Network) -> nx.MultiDiGraph:
    """One edge per operand position (h·h gives two), keyed by the position."""
    m = nx.MultiDiGraph()
    m.add_nodes_from(net.order)
    for source, target, data in net.graph.edges(data=True):
        arg = data.get("arg", 0)
        for position in arg if isinstance(arg, tuple) else (arg,):
            m.add_edge(source, target, key=position)
    return m


def _nx_paths(net: gb.Network, wrt: Hashable) -> list[list[tuple[Any, Any, int]]]:
    """Every path from wrt up to the loss, as networkx enumerates them (edges with keys)."""
    return list(nx.all_simple_edge_paths(operand_multigraph(net), wrt, net.loss))


@pytest.fixture(name="nx_paths", scope="session")
def nx_paths_fixture() -> Any:
    """nx_paths(net, wrt): the loss→wrt paths as networkx enumerates them."""
    return _nx_paths


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by chromedriver (nothing is downloaded)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",  # the machine has no internet: do not try
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
