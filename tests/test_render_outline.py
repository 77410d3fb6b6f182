"""The outline drawing of large networks: chosen by size, folds drawn once with "× n" and the
chain-rule path through them, groups opened on request, layout engines."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from graphs import chain
from helpers import graphbp

import graphbp as gb
from graphbp.chain import Edge
from graphbp.outline import Outline
from graphbp.render import (
    BOXES,
    FULL_NODES,
    HIGHLIGHT,
    dot_bounds,
    draws_outline,
    layout_work,
    node_id,
    run_dot,
)

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
SVG = "{http://www.w3.org/2000/svg}"


def _ids(svg: bytes, kind: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {g.get("id", ""): g for g in root.iter(f"{SVG}g") if g.get("class") == kind}


def _hot(group: ET.Element) -> bool:
    return any(e.get("stroke") == HIGHLIGHT for e in group.iter())


def _box(outline: Outline, item: Any) -> str:
    return str(item) if outline.is_group(item) else node_id(outline.net, item)


@needs_dot
def test_a_large_mlp_is_drawn_folded_with_the_path_through_the_fold(
    tmp_path: Path, nx_paths: Any
) -> None:
    net = gb.Network(gb.mlp((4,) + (5,) * 330 + (1,)))
    assert len(net.order) > FULL_NODES
    drawing = gb.render(net, wrt="W1")
    assert drawing.engine == "dot"
    svg = run_dot(drawing.source, "svg", drawing.engine)
    outline = Outline(net)
    (fold,) = [g for g in outline.groups.values() if g.kind == "fold"]
    assert fold.repeats == 329 and "× 329" in drawing.source
    nodes = _ids(svg, "node")
    # layer1 and the output layer are small enough to open; the fold stays one box
    assert set(nodes) == {node_id(net, n) for n in ("x", "y", "L", "W1", "b1", "h1")} | {
        node_id(net, n) for n in ("W331", "b331", "yhat")
    } | {fold.id}
    view = outline.view({outline.root, outline.find("layer1"), outline.find("layer331")})
    paths = {Edge(*e) for p in nx_paths(net, "W1") for e in p}
    expected = set()
    for (a, b), edges in view.links.items():
        if set(edges) & paths:
            if outline.is_group(a) or outline.is_group(b):
                expected.add(f"l{_box(outline, a)}_{_box(outline, b)}")
            else:
                expected.update(
                    f"e{net.index[e.source]}_{net.index[e.target]}_{e.position}"
                    for e in set(edges) & paths
                )
    edges = _ids(svg, "edge")
    assert {eid for eid, group in edges.items() if _hot(group)} == expected
    assert f"l{node_id(net, 'h1')}_{fold.id}" in expected
    assert _hot(nodes[fold.id])


def test_small_graphs_stay_whole_and_collapse_closes_the_innermost_scopes() -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    assert "subgraph cluster_" in gb.render(net).source
    collapsed = gb.render(net, scopes="collapse").source
    assert "subgraph cluster_" not in collapsed and "3 nodes" in collapsed
    b = gb.Builder()
    h = b.input("x", (2, 3))
    with b.scope("enc"):
        for k in range(2):
            with b.scope(f"block{k}"):
                h = b.op("tanh", h, name=f"t{k}")
            with b.scope(f"odd{k}"):
                h = b.op("sigmoid" if k else "exp", h, name=f"s{k}")
    nested = b.network(b.op("sum", h, name="L"))
    outline = Outline(nested)
    source = gb.render(nested, scopes="collapse").source
    enc = outline.find("enc")
    assert f"cluster_{enc}" in source  # it holds scopes: open
    for name in ("enc/odd0", "enc/odd1"):  # the innermost: one box each
        assert f"\t{outline.find(name)} [label=<" in source
    assert "<B>enc/odd0</B>" in source


def test_expanded_opens_a_scope_by_name_or_id_and_refuses_others() -> None:
    net = gb.Network(gb.mlp((4,) + (5,) * 330 + (1,)))
    outline = Outline(net)
    source = gb.render(net, expanded=["layer7"]).source
    for node in ("W7", "b7", "h7"):
        assert f"\t{node_id(net, node)} [" in source
    assert f"\t{node_id(net, 'h8')} [" not in source
    fold = next(g for g in outline.groups.values() if g.kind == "fold")
    assert f"cluster_{fold.id}" in source and "(× 329)" in source
    by_id = gb.render(net, expanded=[outline.find("layer7") or ""]).source
    assert by_id == source
    with pytest.raises(gb.InputError, match=r"'layer0' is neither a scope nor a group id"):
        gb.render(net, expanded=["layer0"])
    small = gb.Network(gb.seed_network(3, 4, 1))
    assert gb.render(small, expanded=["layer2"]).source == gb.render(small).source
    with pytest.raises(gb.InputError, match=r"'layer9' is neither.*'layer1', 'layer2', 'l"):
        gb.render(small, expanded="layer9")
    with pytest.raises(gb.InputError, match=r"expanded=3: give scope names"):
        gb.render(net, expanded=[3])  # type: ignore[list-item]


def _random_dag(n: int) -> nx.DiGraph:
    g = nx.DiGraph(loss="L")
    g.add_node("w", op="param", shape=(3,), init="normal")
    g.add_node(0, op="tanh")
    g.add_edge("w", 0)
    for k in range(1, n):  # the value before and one from anywhere before it
        g.add_node(k, op="add")
        g.add_edge(k - 1, k, arg=0)
        g.add_edge("w" if k == 1 else (k * 7919) % (k - 1), k, arg=1)
    g.add_node("L", op="sum")
    g.add_edge(n - 1, "L")
    return g


@needs_dot
def test_engines(tmp_path: Path) -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    assert gb.render(net).engine == "dot"
    sfdp = gb.render(net, engine="sfdp")
    assert sfdp.engine == "sfdp"
    path = gb.write_diagram(net, tmp_path / "s.svg", engine="sfdp")
    assert b"<svg" in path.read_bytes()
    dense = gb.render(gb.Network(_random_dag(3000)))  # ranges linked every which way
    assert dense.engine == "sfdp"
    assert "nslimit" not in dense.source
    with pytest.raises(gb.InputError, match=r"engine='neato': choose one of auto, dot, sfdp"):
        gb.render(net, engine="neato")  # type: ignore[arg-type]
    with pytest.raises(gb.InputError, match=r"engine='neato': choose one of dot, sfdp"):
        run_dot(sfdp.source, "svg", "neato")
    # a .dot file names its engine: `dot -Tsvg file.dot` lays it out as sfdp does
    source = gb.write_diagram(net, tmp_path / "s.dot", engine="sfdp").read_text()
    assert "layout=sfdp" in source and "layout" not in gb.render(net).source
    laid = [
        subprocess.run([exe, "-Tsvg", tmp_path / "s.dot"], capture_output=True, check=True).stdout
        for exe in ("dot", "sfdp")
    ]
    assert laid[0] == laid[1]
    whole = gb.render(gb.Network(gb.mlp((4,) + (5,) * 330 + (1,))), scopes="cluster")
    assert whole.engine == "dot" and "nslimit=" in whole.source and "mclimit=" in whole.source


def _skips(n: int, every: int) -> gb.Network:
    """A chain of ``n`` ops, every ``every``-th adding a value from far back (the first
    quarter): few nodes, long edges."""
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(2,))
    order: list[Any] = ["p"]
    for k in range(n):
        if k % every == 0 and k > 10:
            g.add_node(k, op="add")
            g.add_edge(order[-1], k, arg=0)
            g.add_edge(order[(k * 7919) % (len(order) // 4)], k, arg=1)
        else:
            g.add_node(k, op="tanh")
            g.add_edge(order[-1], k)
        order.append(k)
    g.add_node("L", op="sum")
    g.add_edge(order[-1], "L")
    return gb.Network(g)


def test_layout_work_counts_the_ranks_links_span() -> None:
    # a -> b -> c labelled, a -> c labelled: ranks 0, 2, 4; spans 2 + 2 + 4; an unlabelled
    # link spans 1 rank; a link against the order counts 1
    assert layout_work("abc", [("a", "b", True), ("b", "c", True), ("a", "c", True)]) == 11
    assert layout_work("abc", [("a", "b", False), ("b", "c", False), ("a", "c", False)]) == 7
    assert layout_work("ab", [("b", "a", True)]) == 3


def test_the_default_drawing_follows_the_layout_work_not_only_the_nodes() -> None:
    # 400 nodes either way: a plain chain is drawn whole, one with long skips (dot: 40 s,
    # 11 s bounded) by its outline
    plain, skips = _skips(398, 10**6), _skips(398, 2)
    assert len(plain.order) == len(skips.order) == FULL_NODES
    assert not draws_outline(plain, "auto") and draws_outline(skips, "auto")
    assert "cluster_g" not in gb.render(plain).source
    assert gb.render(skips).source.count("× ") == 0 and "lg" in gb.render(skips).source
    assert draws_outline(plain, "collapse") and not draws_outline(skips, "cluster")


def test_dot_is_bounded_by_the_work_of_a_drawing_of_few_boxes() -> None:
    assert dot_bounds(12, 60) == {}
    bounds = dot_bounds(85, 14_000)  # an outline view with long links (dot: 60 s unbounded)
    assert bounds["nslimit"] == "2" and float(bounds["mclimit"]) < 1
    assert float(dot_bounds(1023, 250_000)["nslimit"]) < 0.1  # the transformer drawn whole
    assert bounds["splines"] == "line"
    # a group of the outline opened as the page's command does: its long links are bounded
    net = _skips(1000, 1)
    outline = Outline(net)
    (gid, *_) = [g for g, group in outline.groups.items() if group.kind == "range"]
    drawing = gb.render(net, scopes="collapse", expanded=[gid])
    assert drawing.engine == "sfdp" or "nslimit=" in drawing.source
    # a forced full drawing of a large graph: bounded dot, never sfdp
    forced = gb.render(net, scopes="ignore")
    assert forced.engine == "dot" and "mclimit=" in forced.source and "layout" not in forced.source


@needs_dot
def test_a_100000_node_chain_draws_collapsed(tmp_path: Path) -> None:
    net = gb.Network(chain(["tanh"] * 100_000))
    path = gb.write_diagram(net, tmp_path / "chain.svg", wrt="p")
    nodes = _ids(path.read_bytes(), "node")
    assert 2 < len(nodes) <= BOXES
    assert any(i.startswith("g") for i in nodes)
    edges = _ids(path.read_bytes(), "edge")
    assert edges and all(_hot(g) for g in edges.values())  # a chain: every link on the path


@needs_dot
def test_cli_render_scopes_engine_and_expand(tmp_path: Path) -> None:
    net = gb.Network(gb.mlp((4,) + (5,) * 330 + (1,)))
    net.to_json(tmp_path / "big.json")
    run = graphbp(
        "render", "big.json", "--wrt", "W1", "--expand", "layer7", "--expand", "layer9",
        "--engine", "dot", "-o", "big.dot", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "big.dot").read_text() == gb.render(
        net, "W1", expanded=["layer7", "layer9"], engine="dot"
    ).source
    run = graphbp("render", "big.json", "--scopes", "cluster", "-o", "all.dot", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "all.dot").read_text().count("subgraph cluster_") == 331
    bad = graphbp("render", "big.json", "--expand", "nope", "-o", "x.svg", cwd=tmp_path)
    assert bad.returncode == 2 and "'nope' is neither a scope nor a group id" in bad.stderr
    assert not (tmp_path / "x.svg").exists()
    bad = graphbp("render", "big.json", "--engine", "neato", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'neato'" in bad.stderr


@pytest.mark.parametrize(("wrt", "through"), [("W2", 329), ("W100", 231), ("W330", 1)])
def test_a_folds_box_says_how_many_of_its_blocks_the_paths_run_through(
    wrt: str, through: int
) -> None:
    net = gb.Network(gb.mlp((4,) + (5,) * 330 + (1,)))
    outline = Outline(net)
    (fold,) = [g for g in outline.groups.values() if g.kind == "fold"]
    on_paths = (nx.descendants(net.graph, wrt) & nx.ancestors(net.graph, "L")) | {wrt}
    blocks = [g.members for g in outline.groups.values() if g.kind == "scope"]
    assert len(blocks) == fold.repeats + 2  # layer1 and layer331 differ in shape: not folded
    assert sum(bool(set(b) & on_paths) for b in blocks[1:-1]) == through  # by networkx
    source = gb.render(net, wrt=wrt).source
    everything = "all" if through == fold.repeats else f"{through} of"
    assert f"paths run through {everything} {fold.repeats} blocks" in source
    assert "paths run through" not in gb.render(net).source
