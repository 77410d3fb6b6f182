"""Drawing benchmarks (``graphbp bench --render``): seconds and megabytes of the SVG and the
HTML page of large networks, against the budgets a drawing must keep."""

from __future__ import annotations

import importlib.util
import tempfile
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

from graphbp.builders import mlp
from graphbp.graph import Network

SECONDS = 10.0
"""The budget of one drawing, in seconds."""
MEGABYTES = 10.0
"""The budget of one HTML page, in MB (10⁶ bytes)."""


def mlp_network(nodes: int) -> tuple[Network, Hashable]:
    """A ``gb.mlp`` of about ``nodes`` nodes (three a layer), and its first weight."""
    layers = max(1, (nodes - 3) // 3)
    return Network(mlp((4,) + (8,) * (layers - 1) + (1,))), "W1"


def imported_network(blocks: int) -> tuple[Network, Hashable]:
    """``jax_examples.residual_attention`` of ``blocks`` blocks through ``gb.from_jax``
    (scoped by its named scopes and jit functions), and a first-block weight."""
    from graphbp import jax_examples
    from graphbp.jax_import import from_jax

    fn, args = jax_examples.residual_attention(blocks)
    net, _, _ = from_jax(fn, *args)
    return net, "blocks.0.attn.q"


def random_network(nodes: int, seed: int = 0) -> tuple[Network, Hashable]:
    """An unscoped random DAG of about ``nodes`` nodes, and its first parameter: 20
    parameters, then ops each reading one or two of the 200 values before it (tanh, add),
    their sinks summed into the loss."""
    import random

    import networkx as nx

    rng = random.Random(seed)
    graph = nx.DiGraph()
    names = [f"p{k}" for k in range(20)]
    graph.add_nodes_from(names, op="param", shape=(2,))
    for k in range(nodes - 20):
        name = f"v{k}"
        if rng.random() < 0.5:
            a, b = rng.sample(names[-200:], 2)
            graph.add_node(name, op="add")
            graph.add_edges_from([(a, name, {"arg": 0}), (b, name, {"arg": 1})])
        else:
            graph.add_node(name, op="tanh")
            graph.add_edge(rng.choice(names[-50:]), name)
        names.append(name)
    sinks = [n for n in names if graph.out_degree(n) == 0 and not n.startswith("p")]
    total = sinks[0]
    for k, sink in enumerate(sinks[1:]):
        graph.add_node(f"s{k}", op="add")
        graph.add_edges_from([(total, f"s{k}", {"arg": 0}), (sink, f"s{k}", {"arg": 1})])
        total = f"s{k}"
    graph.add_node("L", op="sum")
    graph.add_edge(total, "L")
    return Network(graph, loss="L"), "p0"


def chain_network(length: int) -> tuple[Network, Hashable]:
    """An unscoped chain of ``length`` elementwise ops on one parameter."""
    from graphbp.bench import chain_graph

    return Network(chain_graph(length)), "p"


def time_drawing(net: Network, wrt: Hashable, suffix: str, folder: Path) -> tuple[float, float]:
    """Seconds to write ``net``'s drawing as ``suffix`` (.svg or .html), and its size in MB."""
    from graphbp.diagram import write_diagram

    start = time.perf_counter()
    path = write_diagram(net, folder / f"drawing{suffix}", wrt)
    seconds = time.perf_counter() - start
    size = path.stat().st_size / 1e6
    path.unlink()
    return seconds, size


Cases = dict[str, tuple[Callable[[], tuple[Network, Hashable]], str]]
"""The networks drawn, by name: a builder of the network and its ``wrt``, and the formats."""


def cases(nodes: int = 10_000, blocks: int = 120, length: int = 100_000) -> Cases:
    """A ``gb.mlp`` and an unscoped random DAG of ``nodes`` nodes and, with jax, an imported
    transformer of ``blocks`` blocks (81 nodes each) as SVG and HTML; a chain of ``length``
    ops as SVG."""
    found: Cases = {f"gb.mlp, {nodes:,} nodes": (lambda: mlp_network(nodes), ".svg .html")}
    found["random DAG, unscoped"] = (lambda: random_network(nodes), ".svg .html")
    if importlib.util.find_spec("jax") is not None:
        name = f"imported {blocks}-block transformer"
        found[name] = (lambda: imported_network(blocks), ".svg .html")
    found[f"chain of {length:,} ops"] = (lambda: chain_network(length), ".svg")
    return found


def bench_render(drawn: Cases) -> Iterator[dict[str, Any]]:
    """Time every case's drawings, one row each as it is measured: case, nodes, format,
    seconds (s) and MB."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, formats) in drawn.items():
            net, wrt = build()
            for suffix in formats.split():
                seconds, size = time_drawing(net, wrt, suffix, Path(tmp))
                yield {"case": name, "nodes": len(net.order), "format": suffix, "s": seconds} | {
                    "MB": size
                }


def run_render(quick: bool = False) -> None:
    """Print the drawing benchmarks against their budgets."""
    print(f"Drawings (write_diagram, wrt a first-layer weight): budgets {SECONDS:g} s a drawing,")
    print(f"{MEGABYTES:g} MB a page")
    print(f"{'network':<32}{'nodes':>9}{'format':>8}{'seconds':>9}{'MB':>8}  within budget")
    sizes = {"nodes": 2_000, "blocks": 12, "length": 20_000} if quick else {}
    for row in bench_render(cases(**sizes)):
        within = row["s"] <= SECONDS and (row["format"] != ".html" or row["MB"] <= MEGABYTES)
        print(
            f"{row['case']:<32}{row['nodes']:>9,}{row['format']:>8}{row['s']:>9.2f}"
            f"{row['MB']:>8.2f}  {'yes' if within else 'NO'}",
            flush=True,
        )
