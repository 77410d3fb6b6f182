"""Node-link JSON: round trips, and bad files named with their line."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import graphbp as gb
from graphbp.errors import GraphError, GraphFileError


def test_round_trip_keeps_graph_loss_and_results(tmp_path: Path) -> None:
    g = gb.seed_network(3, 4, 2)
    g.add_node("c", op="const", value=np.array([0.5, 2.0]))
    g.add_node("scaled", op="mul")
    g.add_edge("yhat", "scaled", arg=0)
    g.add_edge("c", "scaled", arg=1)
    g.add_node("sq", op="mul")
    g.add_edge("scaled", "sq", arg=(0, 1))
    g.add_node("L2", op="sum", axis=[0, 1])
    g.add_edge("sq", "L2")
    net = gb.Network(g, loss="L2")
    path = tmp_path / "net.json"
    net.to_json(path)
    data = json.loads(path.read_text())
    assert data["graph"]["loss"] == "L2" and {"nodes", "edges"} <= set(data)
    back = gb.Network.from_json(path)
    assert back.loss == "L2" and back.order == net.order and back.shapes == net.shapes
    assert back.graph.edges["scaled", "sq"]["arg"] == (0, 1)
    a, b = net.compile(), back.compile()
    inputs = {"x": np.ones((2, 3)), "y": np.ones((2, 2))}
    la, ga = a.value_and_grad(a.init(0), inputs)
    lb, gbk = b.value_and_grad(b.init(0), inputs)
    assert la == lb and all(np.array_equal(ga[k], gbk[k]) for k in ga)


def test_multidigraph_round_trip(tmp_path: Path) -> None:
    g = nx.MultiDiGraph(loss="L")
    g.add_node("p", op="param", shape=(2,), init=3.0)
    g.add_node("m", op="mul")
    g.add_edge("p", "m", arg=0)
    g.add_edge("p", "m", arg=1)
    g.add_node("L", op="sum")
    g.add_edge("m", "L")
    gb.Network(g).to_json(tmp_path / "m.json")
    back = gb.Network.from_json(tmp_path / "m.json")
    prog = back.compile()
    assert prog.loss(prog.init(), {}) == 18.0


def test_missing_file() -> None:
    with pytest.raises(GraphFileError, match="nope.json: cannot read graph file"):
        gb.Network.from_json("nope.json")


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"nodes": [\n  {"id": "x", "op": "input"},\n  oops\n]}')
    with pytest.raises(GraphFileError, match=r"bad.json:3:3: not valid JSON"):
        gb.Network.from_json(path)


def test_json_that_is_not_node_link_data(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(GraphFileError, match="expected a JSON object"):
        gb.Network.from_json(path)
    for text in (
        '{"edges": []}',
        '{"nodes": "x", "edges": []}',
        '{"nodes": [{"id": "a"}], "edges": [{"source": "a"}]}',
    ):
        path.write_text(text)
        with pytest.raises(GraphFileError, match="list.json: not NetworkX node-link data"):
            gb.Network.from_json(path)


def test_invalid_network_in_a_file_names_file_and_node(tmp_path: Path) -> None:
    g = gb.seed_network(2, 2)
    data = nx.node_link_data(g, edges="edges")
    data["nodes"][-1]["op"] = "__import__('os').system('echo hi')"  # loading runs no code
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GraphFileError, match=r"evil.json: node 'L': unknown op"):
        gb.Network.from_json(path)


def test_to_json_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "net.json"
    path.write_text("previous")
    g = gb.seed_network(2, 2)
    g.add_node("c", op="const", value=object())
    g.add_edge("c", "L")  # never validated: construction fails first
    net = gb.Network(gb.seed_network(2, 2))
    net._graph = nx.freeze(g)  # a graph json cannot encode
    with pytest.raises(GraphError, match="cannot save the network as JSON"):
        net.to_json(path)
    assert path.read_text() == "previous"
    assert list(tmp_path.iterdir()) == [path]


def test_a_const_array_comes_back_as_the_list_of_its_numbers(tmp_path: Path) -> None:
    """As the README says: an array attribute round-trips as a list, computing the same."""
    g = nx.DiGraph()
    g.add_node("x", op="input", shape=(None, 2))
    g.add_node("c", op="const", value=np.array([1, 2], dtype=np.int32))
    g.add_node("m", op="mul")
    g.add_node("L", op="sum")
    g.add_edges_from([("x", "m", {"arg": 0}), ("c", "m", {"arg": 1}), ("m", "L", {})])
    net = gb.Network(g, loss="L")
    net.to_json(tmp_path / "n.json")
    back = gb.Network.from_json(tmp_path / "n.json")
    assert back.graph.nodes["c"]["value"] == [1, 2]
    assert (
        "as the nested list of its numbers" in (Path(__file__).parents[1] / "README.md").read_text()
    )
    x = {"x": np.array([[3.0, 4.0]])}
    assert back.compile().loss({}, x) == net.compile().loss({}, x) == 11.0


def test_graph_files_are_strict_json_as_model_files_are(tmp_path: Path) -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    net.to_json(tmp_path / "n.json")
    text = (tmp_path / "n.json").read_text()
    assert (tmp_path / "n.json").read_bytes() == net.to_json_bytes()
    (tmp_path / "n.json").write_text(text.replace('"loss":', '"loss": "W1", "loss":', 1))
    with pytest.raises(GraphFileError, match="key 'loss' appears twice in an object"):
        gb.Network.from_json(tmp_path / "n.json")
    g = gb.seed_network(3, 4, 1)
    g.graph["note"] = float("nan")
    with pytest.raises(GraphError, match=r"\['graph'\]\['note'\] is nan"):
        gb.Network(g).to_json(tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_non_finite_const_values_round_trip_as_text(tmp_path: Path) -> None:
    """NaN and ±inf in a const's value are written as "NaN"/"Infinity"/"-Infinity" and read
    back exactly; such text elsewhere stays text (bare tokens: test_safe_roundtrip)."""
    g = nx.DiGraph(loss="L")
    g.add_node("x", op="input", shape=(None, 3))
    g.add_node("mask", op="const", value=np.array([[0.0, -np.inf, np.inf]]))
    g.add_node("nan", op="const", value=float("nan"))
    g.add_node("m", op="max")
    g.add_edge("x", "m", arg=0)
    g.add_edge("mask", "m", arg=1)
    g.add_node("e", op="exp")
    g.add_edge("m", "e")
    g.add_node("L", op="sum", scope="NaN")
    g.add_edge("e", "L")
    g.add_node("unused", op="mul")
    g.add_edge("nan", "unused", arg=(0, 1))
    net = gb.Network(g)
    path = tmp_path / "net.json"
    net.to_json(path)
    data = json.loads(path.read_text())  # strict: no NaN/Infinity token to need
    values = {n["id"]: n.get("value") for n in data["nodes"]}
    assert values["mask"] == [[0.0, "-Infinity", "Infinity"]] and values["nan"] == "NaN"
    back = gb.Network.from_json(path)
    mask = back.attrs["mask"]["value"]
    assert np.array_equal(mask, [[0.0, -np.inf, np.inf]])
    assert np.isnan(back.attrs["nan"]["value"])
    assert back.graph.nodes["L"]["scope"] == "NaN"  # text outside a const's value stays text
    assert back.to_json_bytes() == net.to_json_bytes()
    x = {"x": np.array([[1.0, 2.0, 3.0]])}
    for prog in (net.compile(), back.compile()):
        assert prog.loss({}, x) == np.e + np.exp(2.0) + np.inf
