"""The graphs the tests share, and example inputs for them.

Plain functions: a test module (or conftest.py) imports them with ``from graphs import ...``,
as pytest puts this folder on sys.path.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import networkx as nx
import numpy as np

import graphbp as gb
from graphbp.op import gradient_flows
from graphbp.testing import random_inputs


def chain(
    ops: Sequence[str],
    *,
    shape: tuple[int | None, ...] = (3,),
    init: Any = 1.0,
    names: Sequence[Hashable] | None = None,
    source: Hashable = "p",
    kind: str = "param",
) -> nx.DiGraph:
    """source → ops[0] → ops[1] → ... → L = sum, op nodes named by ``names`` or 0, 1, ....

    Args:
        ops: the op of each node along the chain; each takes the one before as its operand.
        shape: the source's shape.
        init: a param source's init; None leaves it out. An input has none.
        names: the op nodes' names, one per op.
        source: the source leaf's name.
        kind: the source leaf's op, ``"param"`` or ``"input"``.
    """
    g = nx.DiGraph(loss="L")
    leaf = {} if kind != "param" or init is None else {"init": init}
    g.add_node(source, op=kind, shape=shape, **leaf)
    prev = source
    for node, op in zip(names or range(len(ops)), ops, strict=True):
        g.add_node(node, op=op)
        g.add_edge(prev, node)
        prev = node
    g.add_node("L", op="sum")
    g.add_edge(prev, "L")
    return g


def reuse_graph() -> nx.DiGraph:
    """A small classifier that reuses values and a parameter in each way backprop must sum::

        z = affine(x, W, b)    h = tanh(z)    hh = h·h    hs = h·s    r = hh + hs
        u = r − x·W            yhat = u·V     L = softmax_cross_entropy(yhat, y)

    h fans out to two ops and is both operands of one (hh: one edge, ``arg=(0, 1)``); the
    parameter W is used by two ops (and so is the input x); s, of shape (1, 3), broadcasts
    over the batch; y holds one-hot targets (``example_inputs`` makes them). Four paths run
    from W to L: through hh's two operand positions, through hs, and through x·W.
    """
    g = nx.DiGraph(loss="L", output="yhat")
    g.add_node("x", op="input", shape=(None, 4))
    g.add_node("y", op="input", shape=(None, 2))
    for name, shape in {"W": (4, 3), "b": (3,), "s": (1, 3), "V": (3, 2)}.items():
        g.add_node(name, op="param", shape=shape, init="normal")
    nodes = {  # node: (op, operands)
        "z": ("affine", ["x", "W", "b"]),
        "h": ("tanh", ["z"]),
        "hh": ("mul", ["h", "h"]),  # h in both positions
        "hs": ("mul", ["h", "s"]),  # h fans out; s broadcasts over the batch
        "r": ("add", ["hh", "hs"]),
        "xW": ("matmul", ["x", "W"]),  # W (and x) used a second time, by another op
        "u": ("sub", ["r", "xW"]),
        "yhat": ("matmul", ["u", "V"]),
        "L": ("softmax_cross_entropy", ["yhat", "y"]),
    }
    for node, (op, operands) in nodes.items():
        g.add_node(node, op=op)
        for a in dict.fromkeys(operands):
            positions = tuple(i for i, b in enumerate(operands) if b == a)
            g.add_edge(a, node, arg=positions if len(positions) > 1 else positions[0])
    return g


def hand_built_seed(n_in: int, hidden: int, n_out: int, fused: bool = True) -> nx.DiGraph:
    """The textbook network declared node by node, as a user would without the builder.

    ``fused`` writes each hidden layer as one node, h = dense(x, W, b) = σ(x·W + b), as the
    builder does; otherwise as two, z = affine(x, W, b) and h = sigmoid(z).
    """
    g = nx.DiGraph()
    g.add_node("x", op="input", shape=(None, n_in))
    g.add_node("y", op="input", shape=(None, n_out))
    sizes = [n_in, hidden, hidden, n_out]
    prev = "x"
    for k in (1, 2, 3):
        g.add_node(f"W{k}", op="param", shape=(sizes[k - 1], sizes[k]))
        g.add_node(f"b{k}", op="param", shape=(sizes[k],))
        if k == 3:
            z = "yhat"
            g.add_node(z, op="affine")
        elif fused:
            z = f"h{k}"
            g.add_node(z, op="dense", activation="sigmoid")
        else:
            z = f"z{k}"
            g.add_node(z, op="affine")
            g.add_node(f"h{k}", op="sigmoid")
            g.add_edge(z, f"h{k}")
        g.add_edge(prev, z, arg=0)
        g.add_edge(f"W{k}", z, arg=1)
        g.add_edge(f"b{k}", z, arg=2)
        prev = f"h{k}"
    g.add_node("L", op="sse")
    g.add_edge("yhat", "L", arg=0)
    g.add_edge("y", "L", arg=1)
    return g


def leaky_where_graph() -> nx.DiGraph:
    """z = x·w; h = where(z > t, z, 0.1·z) (a leaky ReLU at threshold t); L = Σh."""
    g = nx.DiGraph(loss="L")
    g.add_node("x", op="input", shape=(4,))
    g.add_node("w", op="param", shape=(4,))
    g.add_node("t", op="param", shape=())
    g.add_node("slope", op="const", value=0.1)
    g.add_node("z", op="mul")
    g.add_node("above", op="gt")
    g.add_node("leak", op="mul")
    g.add_node("h", op="select_n")
    g.add_node("L", op="sum")
    g.add_edges_from([("x", "z", {"arg": 0}), ("w", "z", {"arg": 1})])
    g.add_edges_from([("z", "above", {"arg": 0}), ("t", "above", {"arg": 1})])
    g.add_edges_from([("slope", "leak", {"arg": 0}), ("z", "leak", {"arg": 1})])
    g.add_edge("above", "h", arg=0)
    g.add_edge("leak", "h", arg=1)
    g.add_edge("z", "h", arg=2)
    g.add_edge("h", "L", arg=0)
    return g


def _multigraph(net: gb.Network, *, every_edge: bool) -> nx.MultiDiGraph:
    """One edge per operand position; without ``every_edge``, only those gradient flows to."""
    m = nx.MultiDiGraph()
    m.add_nodes_from(net.order)
    for node in net.order:
        operands = net.operands[node]
        flows = (
            gradient_flows(net.ops[node], net.attrs[node], len(operands))
            if node in net.ops and not every_edge
            else (True,) * len(operands)
        )
        for position, (source, flow) in enumerate(zip(operands, flows, strict=True)):
            if flow:
                m.add_edge(source, node, key=position)
    return m


def gradient_paths(net: gb.Network, wrt: Hashable, *, every_edge: bool = False) -> list[Any]:
    """The loss→wrt paths networkx finds along the edges gradient flows along (or along
    every edge)."""
    return list(nx.all_simple_edge_paths(_multigraph(net, every_edge=every_edge), wrt, net.loss))


NETWORKS: dict[str, Callable[[], nx.DiGraph]] = {
    "seed": lambda: gb.seed_network(3, 4, 2),
    "reuse": reuse_graph,
    "diamonds": lambda: gb.diamond_chain(4),
}
"""The graphs the chain-rule, drawing and backend tests each run on, by test id."""


def example_inputs(net: gb.Network, rng: np.random.Generator, batch: int = 4) -> dict[Any, Any]:
    """Standard-normal inputs of ``batch`` rows; a softmax cross-entropy's targets one-hot.

    Args:
        net: the network whose inputs to make (each needs a declared shape).
        rng: the source of randomness.
        batch: the size of every None axis.
    """
    inputs = random_inputs(net, rng, batch)
    for node, op in net.ops.items():
        target = net.operands[node][1] if op.name == "softmax_cross_entropy" else None
        if target in inputs:
            classes = net.graph.nodes[target]["shape"][-1]
            inputs[target] = np.eye(classes)[rng.integers(0, classes, batch)]
    return inputs


def scoped_blocks(names: list[str], layers: int = 5, width: int = 3) -> gb.Network:
    """x through one block per name, then a dense layer and L = sse. A block (a scope) is a
    nested scope 'inner' of one dense layer on x + a parameter every block shares, then
    ``layers`` dense layers and a skip connection around them: more than views.SMALL
    children at the default 5, so that a page's views open it only when it is clicked."""
    b = gb.Builder()
    x, y = b.input("x", (None, width)), b.input("y", (None, 2))
    shared = b.param("shared", (width,))
    h, k = x, 0
    for name in names:
        with b.scope(name):
            with b.scope("inner"):
                z = b.dense(h + shared, width, "tanh", name=f"h{k}")
            for _ in range(layers):
                k += 1
                z = b.dense(z, width, "sigmoid", name=f"h{k}")
            h = z + h
            k += 1
    return b.network(b.sse(b.dense(h, 2, name="out", params=("Wout", "bout")), y))


def long_chain(length: int) -> gb.Network:
    """An unscoped chain of ``length`` tanh nodes on a parameter, with a second parameter
    added every 7 nodes (so the outline splits it into ranges of ranges)."""
    g = nx.DiGraph()
    g.add_node("p", op="param", shape=(2,))
    prev: Hashable = "p"
    for k in range(length):
        if k % 7 == 3:
            g.add_node(f"q{k}", op="param", shape=(2,))
            g.add_node(k, op="add")
            g.add_edge(prev, k, arg=0)
            g.add_edge(f"q{k}", k, arg=1)
        else:
            g.add_node(k, op="tanh")
            g.add_edge(prev, k)
        prev = k
    g.add_node("L", op="sum")
    g.add_edge(prev, "L")
    return gb.Network(g, loss="L")
