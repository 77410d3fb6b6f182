"""Shared fixtures: the seed network and a registry that forgets test ops afterwards."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphbp as gb
from graphbp.registry import unregister_op

pytest_plugins = ["pytester"]


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
    g = nx.DiGraph(loss="L")
    g.add_node(param, op="param", shape=shape, **({} if init is None else {"init": init}))
    prev: Any = param
    for node, op in zip(names or range(len(ops)), ops, strict=True):
        g.add_node(node, op=op)
        g.add_edge(prev, node)
        prev = node
    g.add_node("L", op="sum")
    g.add_edge(prev, "L")
    return g


@pytest.fixture(name="param_chain")
def param_chain_fixture() -> Any:
    """The param_chain builder."""
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
