"""Drawings: labels, local derivatives on edges, highlighted paths, formats and failures.

Structure, not pixels: the SVG that Graphviz's dot lays out is parsed and its highlighted
edges compared with the paths networkx finds.
"""

from __future__ import annotations

import html
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import graphviz
import networkx as nx
import numpy as np
import pytest
from graphs import NETWORKS, example_inputs
from helpers import graphbp

import graphbp as gb
from graphbp.chain import Edge
from graphbp.render import HIGHLIGHT, edge_id, node_id, run_dot, scripts_smaller

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot executable is not installed (apt-get install graphviz)",
)
SVG = "{http://www.w3.org/2000/svg}"


def _trained_values(net: gb.Network) -> tuple[dict[Any, Any], dict[Any, Any]]:
    prog = net.compile()
    inputs = example_inputs(net, np.random.default_rng(0), batch=6)
    params = prog.init(0)
    return prog.forward(params, inputs, net.order), prog.value_and_grad(params, inputs)[1]


def _svg_groups(svg: bytes, kind: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {g.get("id", ""): g for g in root.iter(f"{SVG}g") if g.get("class") == kind}


def _stroke(group: ET.Element) -> str | None:
    outline = (f"{SVG}path", f"{SVG}polygon", f"{SVG}ellipse")
    shape = next(e for e in group.iter() if e.tag in outline)
    return shape.get("stroke")


def test_nodes_show_name_op_label_shape_and_are_styled_by_kind() -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    dot = gb.render(net)
    lines = {node: _node_line(dot.source, node_id(net, node)) for node in net.order}
    assert scripts_smaller("<B>h<SUB>1</SUB></B>", 12) in lines["h1"] and "σ(x·W+b)" in lines["h1"]
    assert "(N, 4)" in lines["h1"] and "(3, 4)" in lines["W1"] and "(4,)" in lines["b1"]
    fills = {n: re.search(r'fillcolor="([^"]+)"', line)[1] for n, line in lines.items()}  # type: ignore[index]
    assert fills["x"] == fills["y"] != fills["W1"] == fills["b3"] != fills["h1"]
    assert fills["L"] not in (fills["x"], fills["W1"], fills["h1"])
    assert "value" not in dot.source  # no summaries without values


def _node_line(source: str, name: str) -> str:
    return next(line for line in source.splitlines() if line.strip().startswith(f"{name} ["))


def test_values_and_gradients_are_summarised_on_their_nodes() -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    values, grads = _trained_values(net)
    source = gb.render(net, values=values, grads=grads).source
    loss_line = _node_line(source, node_id(net, "L"))
    assert f"value {float(values['L']):.4g}" in loss_line  # a scalar: its value
    w1 = _node_line(source, node_id(net, "W1"))
    assert f"value ‖·‖={np.linalg.norm(values['W1']):.4g}" in w1  # an array: its norm
    gradient = scripts_smaller("∂L/∂W<SUB>1</SUB>", 9)  # in a row of 9 points
    assert f"{gradient} ‖·‖={np.linalg.norm(grads['W1']):.4g}" in w1


def test_edges_carry_the_plugins_local_derivatives_as_html() -> None:
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(3,))
    g.add_node("z", op="sigmoid")
    g.add_node("L", op="sum")
    g.add_edge("p", "z")
    g.add_edge("z", "L")
    net = gb.Network(g)
    source = gb.render(net).source
    assert "<TR><TD>∂z/∂p</TD></TR><TR><TD>σ(z)(1−σ(z))</TD></TR>" in source
    seed = gb.Network(gb.seed_network(3, 4, 1))
    source = gb.render(seed).source
    label = re.search(rf"{node_id(seed, 'h1')} -> {node_id(seed, 'h2')} \[[^\n]*", source)
    assert label is not None
    rows = "∂h<SUB>2</SUB>/∂h<SUB>1</SUB></TD></TR><TR><TD>(σ(z)(1−σ(z))⊙·)·W<SUP>T</SUP>"
    assert scripts_smaller(rows, 10) in label[0]


@needs_dot
def test_user_text_is_escaped_and_dot_accepts_it() -> None:
    name = '<b onload="x">&'
    g = nx.DiGraph(loss="L")
    g.add_node(name, op="param", shape=(2,), scope="<i>scope</i>")
    g.add_node("L", op="sum")
    g.add_edge(name, "L")
    dot = gb.render(gb.Network(g), wrt=name)
    assert "<B>&lt;b onload=&quot;x&quot;&gt;&amp;</B>" in dot.source
    root = ET.fromstring(dot.pipe(format="svg"))  # well-formed, and no markup got through
    tags = {e.tag.removeprefix(SVG) for e in root.iter()}
    assert not tags & {"b", "i"}
    texts = "".join(e.text or "" for e in root.iter(f"{SVG}text"))
    assert name in texts and "<i>scope</i>" in texts


@needs_dot
@pytest.mark.parametrize("graph", NETWORKS)
def test_highlighted_edges_in_the_svg_equal_the_networkx_paths(graph: str, nx_paths: Any) -> None:
    net = gb.Network(NETWORKS[graph]())
    wrt = net.params[0]
    svg = gb.render(net, wrt=wrt).pipe(format="svg")
    edges = _svg_groups(svg, "edge")
    hot = {eid for eid, group in edges.items() if _stroke(group) == HIGHLIGHT}
    expected = {edge_id(net, Edge(a, b, k)) for p in nx_paths(net, wrt) for a, b, k in p}
    assert hot == expected and expected
    nodes = _svg_groups(svg, "node")
    hot_nodes = {nid for nid, group in nodes.items() if _stroke(group) == HIGHLIGHT}
    on_paths = {n for p in nx_paths(net, wrt) for e in p for n in e[:2]}
    assert hot_nodes == {node_id(net, n) for n in on_paths}


def test_the_caption_has_the_formula_and_with_values_each_paths_contribution() -> None:
    net = gb.Network(gb.diamond_chain(2))
    values, grads = _trained_values(net)
    source = gb.render(net, wrt="w", values=values, grads=grads).source
    rule = gb.chain_rule(net, "w", values=values)
    assert scripts_smaller(rule.html, 14) in source and rule.path_count == 4
    for k, path in enumerate(rule.paths, start=1):
        assert f"path {k}: ‖·‖={np.linalg.norm(path.contribution):.4g}" in source
    assert f"sum of the paths: ‖·‖={np.linalg.norm(grads['w']):.4g}" in source
    capped = gb.render(gb.Network(gb.diamond_chain(12)), wrt="w", max_paths=3).source
    assert "3 of 4,096 paths listed; every path is highlighted" in capped


def test_reused_upstream_gradients_are_marked_with_their_count() -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    source = gb.render(net).source
    assert "∂L/∂ŷ reused by 6 params" in _node_line(source, node_id(net, "yhat"))
    assert "reused by 4 params" in _node_line(source, node_id(net, "h2"))
    assert "reused by 2 params" in _node_line(source, node_id(net, "h1"))
    assert source.count("reused by") == 3


def test_scopes_become_clusters_or_single_nodes() -> None:
    g = gb.seed_network(3, 4, 1)  # gb.mlp's layers are the scopes layer1, layer2, layer3
    for k in (1, 2):
        for n in (f"W{k}", f"b{k}", f"h{k}"):
            g.nodes[n]["scope"] = f"layer {k}"
    net = gb.Network(g)
    clustered = gb.render(net, wrt="W1").source
    assert clustered.count("subgraph cluster_") == 3 and "label=<layer 1>" in clustered
    collapsed = gb.render(net, wrt="W1", scopes="collapse").source
    node_lines = [ln for ln in collapsed.splitlines() if re.match(r"\s+\w+ \[label=", ln)]
    assert len(node_lines) == len(net.order) - 9 + 3  # nine scoped nodes become three
    assert "<TR><TD><B>layer 1</B></TD></TR><TR><TD>3 nodes</TD></TR>" in collapsed
    hot = [ln for ln in collapsed.splitlines() if "->" in ln and HIGHLIGHT in ln]
    assert len(hot) == 3  # layer 1 → layer 2 → layer3 → L


def test_a_bad_wrt_names_it_and_lists_the_parameters() -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    with pytest.raises(gb.GraphError, match=r"wrt='h1' is not a parameter \(op 'dense'\).*'b3'"):
        gb.render(net, wrt="h1")


@needs_dot
def test_every_format_by_extension_written_atomically(tmp_path: Path) -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    magic = {
        ".dot": b"digraph",
        ".svg": b"<?xml",
        ".png": b"\x89PNG",
        ".pdf": b"%PDF",
        ".html": b"<!doctype html>",
    }
    for suffix, start in magic.items():
        path = gb.write_diagram(net, tmp_path / f"seed{suffix}", wrt="W1")
        assert path.read_bytes().startswith(start), suffix
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"seed{s}" for s in magic)
    with pytest.raises(gb.GraphFileError, match=r"'\.txt'; use one of \.dot .*\.html"):
        gb.write_diagram(net, tmp_path / "seed.txt")


def test_without_dot_the_source_is_written_and_the_error_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a machine with no Graphviz
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the source goes beside the file asked for, never here
    out = tmp_path / "out"
    net = gb.Network(gb.seed_network(3, 4, 1))
    for suffix in (".svg", ".html"):
        with pytest.raises(gb.GraphvizError) as info:
            gb.write_diagram(net, out / f"out{suffix}", wrt="W1")
        message = str(info.value)
        assert message == (  # as the README shows it
            f"cannot write {out / f'out{suffix}'}: Graphviz's 'dot' executable is not on PATH; "
            f"the graph's source is in {out / 'out.dot'}; install Graphviz: apt-get install "
            "graphviz (Debian/Ubuntu) or brew install graphviz"
        )
        assert sorted(p.name for p in out.iterdir()) == ["out.dot"], suffix
        source = (out / "out.dot").read_text()
        assert source == info.value.source and source.startswith("digraph"), suffix
        assert scripts_smaller(">W<SUB>1</SUB><", 12) in source, (
            suffix
        )  # the node W1 (page draws no formula)
        (out / "out.dot").unlink()
    assert list(cwd.iterdir()) == []
    with pytest.raises(gb.GraphvizError, match=r"cannot write .*nowhere\.svg"):
        gb.write_diagram(net, "nowhere.svg", wrt="W1")  # a relative path: beside it is here
    assert [p.name for p in cwd.iterdir()] == ["nowhere.dot"]
    assert (
        scripts_smaller("∂L/∂W<SUB>1</SUB>", 14) in (cwd / "nowhere.dot").read_text()
    )  # with wrt's formula
    assert gb.write_diagram(net, out / "asked.dot").read_text().startswith("digraph")  # no dot


def test_run_dot_only_renders_and_without_dot_the_error_carries_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = gb.render(gb.Network(gb.seed_network(2, 3, 1)), wrt="W1").source
    if shutil.which("dot") is not None:
        assert run_dot(source, "svg").startswith(b"<?xml")
        with pytest.raises(
            gb.GraphvizError, match=r"dot failed \(exit status 1\): .*syntax error in line 1"
        ):
            run_dot("digraph { a -> }", "svg")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(gb.GraphvizError, match=r"'dot' executable is not on PATH; install") as info:
        run_dot(source, "svg")
    assert info.value.source == source
    assert list(tmp_path.iterdir()) == []  # nothing written, wherever dot runs from


@needs_dot
def test_a_thousand_node_graph_renders_to_svg_whole_when_asked(tmp_path: Path) -> None:
    net = gb.Network(gb.mlp((4,) + (5,) * 330 + (1,)))
    assert len(net.order) >= 990
    path = gb.write_diagram(net, tmp_path / "big.svg", wrt="W1", scopes="cluster")
    nodes = _svg_groups(path.read_bytes(), "node")
    assert len(nodes) == len(net.order)


# -------------------------------------------------------------------------------- the CLI


@needs_dot
def test_cli_render_writes_the_highlighted_diagram(tmp_path: Path, nx_paths: Any) -> None:
    net = gb.Network(gb.seed_network(2, 3, 1))
    net.to_json(tmp_path / "seed.json")
    run = graphbp("render", "seed.json", "--wrt", "W1", "-o", "out.svg", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "wrote out.svg"
    edges = _svg_groups((tmp_path / "out.svg").read_bytes(), "edge")
    hot = {eid for eid, group in edges.items() if _stroke(group) == HIGHLIGHT}
    assert hot == {edge_id(net, Edge(*e)) for p in nx_paths(net, "W1") for e in p}
    bad = graphbp("render", "seed.json", "--wrt", "x", "-o", "bad.svg", cwd=tmp_path)
    assert bad.returncode == 2 and "choose one of 'W1', 'b1', 'W2'" in bad.stderr
    assert not (tmp_path / "bad.svg").exists()


def test_cli_explain_counts_the_diamond_chain(tmp_path: Path) -> None:
    gb.Network(gb.diamond_chain(10)).to_json(tmp_path / "d.json")
    run = graphbp("explain", "d.json", "--wrt", "w", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "32 nodes, 1 parameter, 1,024 paths from the loss to the parameter\n" in run.stdout
    assert "41 local-derivative evaluations" in run.stdout
    assert "21,504 local-derivative evaluations (524.5×)" in run.stdout
    assert "∂L/∂w = ∂L/∂v10 · ∂v10/∂a10 ·" in run.stdout
    assert "(1,008 more paths)" in run.stdout


def test_the_dot_fallback_never_replaces_a_file_and_never_hides_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a machine with no Graphviz
    net = gb.Network(gb.seed_network(3, 4, 1))
    (tmp_path / "model.dot").write_text("the user's own")
    with pytest.raises(gb.GraphvizError, match=r"source is in .*model\.svg\.dot"):
        gb.write_diagram(net, tmp_path / "model.svg")
    assert (tmp_path / "model.dot").read_text() == "the user's own"
    assert (tmp_path / "model.svg.dot").read_text().startswith("digraph")
    (tmp_path / "model.svg.dot").write_text("also the user's")
    with pytest.raises(gb.GraphvizError, match=r"its DOT source was not written: .* exist"):
        gb.write_diagram(net, tmp_path / "model.svg")
    assert (tmp_path / "model.svg.dot").read_text() == "also the user's"
    (tmp_path / "file").write_text("")  # a file where the folder would have to be
    with pytest.raises(gb.GraphvizError, match=r"'dot' executable is not on PATH; its DOT sou"):
        gb.write_diagram(net, tmp_path / "file" / "a.svg")


def test_a_norm_near_the_float64_limit_is_drawn_finite() -> None:
    from graphbp.render import summary

    assert summary(np.full(4, 1e300)) == "‖·‖=2e+300"  # the plain sum of squares overflows
    assert summary(np.array([3.0, 4.0])) == "‖·‖=5"
    assert summary(np.array([np.inf, 1.0])) == "‖·‖=inf"


class _Plain(gb.Op):
    label = "f"
    local_grads = ("1",)

    def forward(self, xp: Any, x: Any) -> Any:
        return x

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g,)


def _describes(result: Any) -> Any:
    def describe(self: gb.Op, attrs: Any) -> Any:
        if isinstance(result, Exception):
            raise result
        return result

    return describe


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("a plugin's broken __str__")


_BROKEN_DESCRIBES = {  # what a plugin's describe may do wrong, and how the message says it
    "raises": (ZeroDivisionError("division by zero"), "describe() raised ZeroDivisionError"),
    "unprintable": (_Unprintable(), "raised _Unprintable: <_Unprintable whose message cannot be"),
    "long": (ValueError("line\n" * 9999), "raised ValueError: line\\nline\\n"),
    "label": ((None, ("1",)), "describe() returned label None"),
    "grads": (("f", "1"), "a tuple of 1 str (one per operand)"),
    "arity": (("f", ()), "a tuple of 1 str (one per operand)"),
    "pair": ("f", "describe() raised ValueError"),  # not a pair: unpacking fails
}


@pytest.mark.parametrize("case", list(_BROKEN_DESCRIBES))
def test_a_plugin_whose_describe_breaks_is_named_by_render_and_the_network_shows_a_note(
    case: str, register: Any
) -> None:
    result, says = _BROKEN_DESCRIBES[case]
    op = type("Broken", (_Plain,), {"name": f"broken_{case}", "describe": _describes(result)})
    register(op)
    g = nx.DiGraph()
    g.add_node("p", op="param", shape=(2,))
    g.add_node("q", op=op.name)
    g.add_node("L", op="sum")
    g.add_edges_from([("p", "q"), ("q", "L")])
    net = gb.Network(g, loss="L")
    for wrt in (None, "p"):
        with pytest.raises(gb.PluginError) as info:
            gb.render(net, wrt)
        message = str(info.value)
        assert "\n" not in message and says in message, message
        assert message.startswith(f"node 'q': op {op.name!r} ({__name__}.Broken): ")
    bundle = net._repr_mimebundle_()  # Jupyter: a note, never a traceback
    assert set(bundle) == {"text/plain", "text/markdown"}
    note = html.unescape(bundle["text/markdown"])
    assert f"not drawn: node 'q': op {op.name!r}" in note and "gb.render" not in note
    assert note.startswith("**graphbp network**: 3 nodes, 2 edges, 1 parameter, loss 'L';")


@needs_dot
def test_a_drawing_shows_in_jupyter_as_run_dot_lays_it_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.core.formatters import DisplayFormatter

    net = gb.Network(gb.seed_network(3, 4, 1))
    drawing = gb.render(net, "W1", values=_trained_values(net)[0])
    assert isinstance(drawing, graphviz.Digraph)
    shown, _ = DisplayFormatter().format(drawing)
    assert shown["image/svg+xml"] == run_dot(drawing.source, "svg").decode()
    assert 'textLength="' in shown["image/svg+xml"]  # fit_text's, which graphviz's pipe lacks
    png = drawing._repr_mimebundle_(include=["image/png"])["image/png"]
    assert png == run_dot(drawing.source, "png")
    with drawing.subgraph(name="cluster_more") as more:  # graphviz's API is all there
        more.node("extra")
    assert type(more) is type(drawing) and "extra" in drawing.source
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot: a line saying how to install it
    shown, _ = DisplayFormatter().format(drawing)
    assert set(shown) == {"text/plain"}
    assert "'dot' executable is not on PATH; install Graphviz" in shown["text/plain"]
    assert ".source is the drawing's Graphviz source" in shown["text/plain"]
