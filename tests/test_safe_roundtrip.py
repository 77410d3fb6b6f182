"""Every documented graph round-trips through node-link JSON, and what cannot is refused at
Network() with the rule stated: node names, scopes, attribute keys, const values and
graph["output"]."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from graphs import NETWORKS, hand_built_seed
from helpers import graphbp

import graphbp as gb
from graphbp.errors import GraphError, GraphFileError
from graphbp.graph import NAME_RULE


def _plain(value: Any) -> Any:
    """A value as JSON would give it back: tuples and arrays as lists."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _description(net: gb.Network) -> Any:
    g = net.graph
    nodes = {n: {k: _plain(v) for k, v in d.items()} for n, d in g.nodes(data=True)}
    edges = sorted(
        ((repr(u), repr(v), sorted((k, repr(_plain(w))) for k, w in d.items())))
        for u, v, d in g.edges(data=True)
    )
    graph = {k: _plain(v) for k, v in g.graph.items() if k != "loss"}
    return nodes, edges, graph, net.loss, net.order, net.shapes


def _roundtrip(net: gb.Network, tmp_path: Path) -> gb.Network:
    path = tmp_path / "net.json"
    net.to_json(path)
    back = gb.Network.from_json(path)
    back.to_json(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()  # a fixed point
    return back


def _with_const(value: Any, **attrs: Any) -> nx.DiGraph:
    """L = sum(mul(p, sum(c))), p of shape (3,), c a const of ``value``."""
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(3,), init=1.0)
    g.add_node("c", op="const", value=value, **attrs)
    g.add_node("s", op="sum")
    g.add_edge("c", "s")
    g.add_node("m", op="mul")
    g.add_edge("p", "m", arg=0)
    g.add_edge("s", "m", arg=1)
    g.add_node("L", op="sum")
    g.add_edge("m", "L")
    return g


GRAPHS = {
    **NETWORKS,
    "mlp-ce": lambda: gb.mlp((4, 5, 3), "tanh", "softmax_cross_entropy"),
    "mlp-mse": lambda: gb.mlp((2, 3, 3, 3, 1), "relu", "mse"),
    "hand-built": lambda: nx.DiGraph(hand_built_seed(3, 4, 2, fused=False), loss="L"),
    "int-names": lambda: _int_names(),
    "scoped": lambda: _scoped(),
}


def _int_names() -> nx.DiGraph:
    g = nx.DiGraph(loss=3)
    g.add_node(-1, op="param", shape=(2, 3), init="normal")
    g.add_node(0, op="tanh")
    g.add_node(2**63 - 1, op="sum", axis=[0], keepdims=True)
    g.add_node(3, op="sum")
    g.add_edge(-1, 0)
    g.add_edge(0, 2**63 - 1)
    g.add_edge(2**63 - 1, 3)
    return g


def _scoped() -> nx.DiGraph:
    g = gb.seed_network(3, 4, 2)
    for node in ("W1", "b1", "h1"):
        g.nodes[node]["scope"] = "layer 1 <&> ünï"
    return g


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_documented_networks_round_trip(name: str, tmp_path: Path) -> None:
    net = gb.Network(GRAPHS[name]())
    back = _roundtrip(net, tmp_path)
    assert _description(back) == _description(net)
    assert type(back.graph) is type(net.graph)


CONSTS = {
    "int": 3,
    "float": -2.5,
    "0-d array": np.array(1.5),
    "0-d int array": np.array(7),
    "numpy float": np.float64(0.25),
    "list": [1.0, 2.0, 3.0],
    "int list": [1, -2, 3],
    "nested": [[1.0], [2.0], [3.0]],
    "deeply nested": [[[[[0.5]]]]],
    "array": np.arange(3.0),
    "int array": np.arange(3),
    "2-d array": np.ones((2, 3)),
    "float32 array": np.ones(3, dtype=np.float32),
    "empty": np.zeros((0,)),
    "empty rows": np.zeros((3, 0)),
    "tiny and huge": [5e-324, 1.7e308, -1e-300],
}


@pytest.mark.parametrize("name", sorted(CONSTS))
def test_const_values_round_trip_equal(name: str, tmp_path: Path) -> None:
    value = CONSTS[name]
    net = gb.Network(_with_const(value))
    back = _roundtrip(net, tmp_path)
    got = back.attrs["c"]["value"]
    assert np.shape(got) == np.shape(value)
    assert np.array_equal(np.asarray(got), np.asarray(value))
    assert np.asarray(got, dtype=np.float64).tobytes() == np.asarray(value, np.float64).tobytes()
    assert back.shapes["c"] == np.shape(value) == net.shapes["c"]
    assert _description(back) == _description(net)


def test_const_declared_shape_must_match_its_value(tmp_path: Path) -> None:
    net = gb.Network(_with_const([[1.0, 2.0, 3.0]], shape=(1, 3)))
    assert _roundtrip(net, tmp_path).shapes["c"] == (1, 3)
    assert gb.Network(_with_const([1.0, 2.0, 3.0], shape=(None,))).shapes["c"] == (3,)
    for shape in [(3,), (1, 2), ()]:
        with pytest.raises(
            GraphError, match=r"node 'c' \(op 'const'\) declares shape .* but its value has"
        ):
            gb.Network(_with_const([[1.0, 2.0, 3.0]], shape=shape))


BAD_CONSTS = {
    "complex": (1 + 2j, "complex"),
    "complex array": (np.ones(3, dtype=complex), "complex128"),
    "string": ("abc", "a string"),
    "bool": (True, "a bool"),
    "bool array": (np.ones(3, dtype=bool), "dtype bool"),
    "list with a bool": ([1.0, True, 2.0], "a bool"),
    "list with a string": ([1.0, "2", 3.0], "a string"),
    "object": (object(), "object"),
    "object array": (np.array([1, None], dtype=object), "dtype object"),
    "string array": (np.array(["a"]), "dtype <U1"),
    "None": (None, "null"),
    "dict": ({"a": 1}, "an object"),
    "ragged": ([[1.0, 2.0], [3.0]], "a ragged list"),
    "ragged deep": ([[1.0, [2.0]], [3.0, 4.0]], "a ragged list"),
    "nan as lowercase text": (["nan", 1.0], "a string"),
    "Infinity as a bare string": ("Infinity", "a string"),
    "int beyond float": (10**400, "an int"),
    "int beyond float in a list": ([1, 10**400], "an int"),
    "empty list of lists": ([[], [1.0]], "a ragged list"),
    "empty with axes after": (np.zeros((0, 3)), "would load back with another shape"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONSTS))
def test_const_values_that_cannot_round_trip_are_refused(name: str) -> None:
    value, what = BAD_CONSTS[name]
    with pytest.raises(GraphError, match=r"const node 'c' has ") as info:
        gb.Network(_with_const(value))
    assert what in str(info.value)
    assert len(str(info.value)) < 400


def test_non_finite_const_in_a_json_file_is_refused_naming_file_and_place(tmp_path: Path) -> None:
    """Python's json reads NaN and Infinity tokens; graphbp refuses them as it reads."""
    path = tmp_path / "nan.json"
    gb.Network(_with_const([1.0, 2.0, 3.0])).to_json(path)
    for token in ("NaN", "Infinity", "-Infinity"):
        path.write_text(path.read_text().replace('"value": [', f'"value": [{token}, ', 1))
        with pytest.raises(
            GraphFileError, match=rf"nan.json:\d+:\d+: {token} is not a number JSON"
        ):
            gb.Network.from_json(path)
        gb.Network(_with_const([1.0, 2.0, 3.0])).to_json(path)


# ------------------------------------------------------------------ the node-name rule


BAD_NAMES = {
    "empty": ("", "a str of 0 characters"),
    "too long": ("n" * 1001, "a str of 1,001 characters"),
    "newline": ("a\nb", "a control character (U+000A) at position 1"),
    "NUL": ("a\x00", "a control character (U+0000)"),
    "DEL": ("\x7f", "a control character"),
    "C1 control": ("a\x85b", "a control character (U+0085)"),
    "right-to-left override": ("abc\u202edef", "a format character (U+202E)"),
    "zero-width joiner": ("a\u200db", "a format character (U+200D)"),
    "lone surrogate": ("x\ud800", "a lone surrogate (U+D800)"),
    "float": (1.5, "a float"),
    "NaN": (float("nan"), "a float"),
    "bool": (True, "a bool"),
    "tuple": (("sq", 0), "a tuple"),
    "frozenset": (frozenset({1}), "a frozenset"),
    "int beyond 64 bits": (2**63, "an int beyond 64 bits"),
    "negative int beyond 64 bits": (-(2**63) - 1, "an int beyond 64 bits"),
    "numpy int": (np.int64(3), "an int64"),
    "bytes": (b"ab", "a bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_names_that_break_the_rule_are_refused_stating_the_rule(case: str) -> None:
    name, problem = BAD_NAMES[case]
    g = _with_const([1.0, 2.0, 3.0])
    g = nx.relabel_nodes(g, {"m": name})
    with pytest.raises(GraphError) as info:
        gb.Network(g)
    message = str(info.value)
    assert message.startswith("node ") and problem in message
    assert NAME_RULE in message
    assert "1 to 1000 characters" in message and "int (not bool)" in message
    assert len(message) < 600 and message.isprintable()


GOOD_NAMES = [
    "n" * 1000,
    "a b",
    '<a> URL="javascript:alert(1)" tooltip=<b> & {x} \\ \'',
    "ünïcødé — 名前 🙂",
    "\u2028",  # a line separator is not a control or format character
    0,
    -5,
    2**63 - 1,
    -(2**63),
]


@pytest.mark.parametrize("name", GOOD_NAMES, ids=range(len(GOOD_NAMES)))
def test_names_within_the_rule_round_trip(name: Any, tmp_path: Path) -> None:
    param = f"p{name}" if len(f"p{name}") <= 1000 else "p"
    g = nx.relabel_nodes(_with_const([1.0, 2.0, 3.0]), {"m": name, "p": param})
    net = gb.Network(g)
    back = _roundtrip(net, tmp_path)
    assert name in back.graph and _description(back) == _description(net)
    prog = back.compile()
    loss, grads = prog.value_and_grad(prog.init(0), {})
    assert loss == 18.0 and list(grads) == [param]
    assert np.array_equal(grads[param], [6.0, 6.0, 6.0])


def test_the_loss_and_output_names_are_held_to_the_rule() -> None:
    g = _with_const([1.0, 2.0, 3.0])
    for loss in [["L"], {"a": 1}, float("nan"), "missing"]:
        g.graph["loss"] = loss
        with pytest.raises(GraphError, match="loss node .* is not in the graph"):
            gb.Network(g)
    g.graph["loss"] = "L"
    for output in [["m"], float("nan"), "missing", {"m": 1}]:
        g.graph["output"] = output
        with pytest.raises(GraphError, match=r"graph\['output'\] is .*which is not a node"):
            gb.Network(g)
    for leaf in ["p", "c"]:
        g.graph["output"] = leaf
        with pytest.raises(GraphError, match=rf"graph\['output'\] names '{leaf}', a (param|const)"):
            gb.Network(g)
    g.graph["output"] = "m"
    assert gb.Network(g).graph.graph["output"] == "m"


def test_scopes_and_attribute_keys_follow_the_text_rule() -> None:
    for scope in ["", "a\nb", 5, ["s"], "s" * 1001, "\ud800"]:
        g = _with_const([1.0, 2.0, 3.0])
        g.nodes["m"]["scope"] = scope
        with pytest.raises(GraphError, match=r"node 'm' has scope=.*; a scope is a str"):
            gb.Network(g)
    for key in [5, ("a",), "", "a\x00", "k" * 1001]:
        g = _with_const([1.0, 2.0, 3.0])
        g.nodes["m"][key] = 1
        with pytest.raises(
            GraphError, match=r"node 'm' has an attribute key .*an attribute key is a str"
        ):
            gb.Network(g)


# ------------------------------------------------------------------ the CLI: nothing runs


def _train_graph(tmp_path: Path, rename: dict[str, Any], **graph: Any) -> Path:
    """The seed network as a file for ``graphbp train --graph`` (diabetes: 10 features)."""
    data = gb.Network(gb.seed_network(10, 4, 1)).to_dict()
    for node in data["nodes"]:
        node["id"] = rename.get(node["id"], node["id"])
    for edge in data["edges"]:
        edge["source"] = rename.get(edge["source"], edge["source"])
        edge["target"] = rename.get(edge["target"], edge["target"])
    data["graph"].update(graph)
    path = tmp_path / "net.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("rename", "message"),
    [
        ({"h1": "h" * 100_000}, "a str of 100,000 characters"),
        ({"h1": "h\ud800"}, "a lone surrogate"),
        ({"h1": float("nan")}, "NaN is not a number JSON allows"),
        ({"h1": "h\u202e1"}, "a format character"),
    ],
    ids=["100000 characters", "lone surrogate", "NaN id", "RLO"],
)
def test_train_with_a_bad_name_fails_before_anything_runs(
    tmp_path: Path, rename: dict[str, Any], message: str
) -> None:
    path = _train_graph(tmp_path, rename)
    out = tmp_path / "out"
    for command in (
        ["train", "--graph", str(path), "--epochs", "1", "--out", str(out)],
        ["render", str(path), "-o", str(tmp_path / "d.svg")],
    ):
        done = graphbp(*command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.splitlines()) == 1 and message in done.stderr
        assert str(path) in done.stderr
        assert "1 to 1000 characters" in done.stderr or "NaN" in message  # NaN: not JSON
        assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json"]


def test_train_checks_the_output_node(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for graph, message in [
        (
            {"output": "h2"},
            "output node 'h2' (op 'dense') has shape (None, 4) but the target "
            "'y' has shape (None, 1)",
        ),
        ({"output": "W1"}, "graph['output'] names 'W1', a param node"),
        ({"output": "nope"}, "graph['output'] is 'nope', which is not a node"),
    ]:
        path = _train_graph(tmp_path, {}, **graph)
        done = graphbp(
            "train", "--graph", str(path), "--epochs", "1", "--out", str(out), cwd=tmp_path
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr
        assert not out.exists()


def test_cli_output_node_falls_back_to_the_loss_operand_and_takes_int_names() -> None:
    from graphbp.model import prediction

    g = gb.seed_network(3, 4, 1)
    del g.graph["output"]
    assert prediction(gb.Network(g)) == "yhat" == gb.Network(g).output
    g = nx.relabel_nodes(gb.seed_network(3, 4, 1), {"yhat": 0})
    g.graph["output"] = 0  # falsy, yet named
    assert prediction(gb.Network(g)) == 0
    g = gb.seed_network(3, 4, 1)
    del g.graph["output"]
    g.remove_edge("yhat", "L")
    g.remove_edge("y", "L")
    g.add_edge("y", "L", arg=0)
    g.add_edge("yhat", "L", arg=1)
    with pytest.raises(GraphError, match="its first operand 'y' is an input node"):
        prediction(gb.Network(g))


def test_train_with_names_at_the_edge_of_the_rule_writes_every_file(tmp_path: Path) -> None:
    """A 1000-character name, markup and emoji in a name, an int name: handled everywhere."""
    long, odd = "W" * 1000, 'ünï <&> "q" {x} \\ 名 🙂'
    path = _train_graph(tmp_path, {"W1": long, "W2": odd, "h1": -(2**63)})
    out = tmp_path / "out"
    done = graphbp("train", "--graph", str(path), "--epochs", "1", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    names = {"chain_rule.svg", "graph.html", "history.csv", "metrics.json", "network.json"}
    names |= {"model.json", "optimizer.npz", "loss.png", "loss.svg"}
    assert names | {"params.npz"} == {p.name for p in out.iterdir()}
    assert {long, odd} <= set(gb.load(out).params)  # the names survive the model folder too
    back = gb.Network.from_json(out / "network.json")
    assert {long, odd, -(2**63)} <= set(back.graph)
    with np.load(out / "params.npz") as saved:
        assert len(saved.files) == 6


# ------------------------------------------- what Network() accepts, to_json can write back


def _mul_by_const(value: Any) -> nx.DiGraph:
    g = nx.DiGraph(loss="L")
    g.add_node("W", op="param", shape=(2,))
    g.add_node("c", op="const", value=value)
    g.add_node("m", op="mul")
    g.add_node("L", op="sum")
    g.add_edges_from([("W", "m", {"arg": 0}), ("c", "m", {"arg": 1}), ("m", "L")])
    return g


@pytest.mark.parametrize(
    "value",
    [Fraction(1, 3), np.array([1.1, 2.2], dtype=np.longdouble), [Fraction(1, 2), 1.0]],
    ids=["Fraction", "long double", "a list holding a Fraction"],
)
def test_a_const_json_cannot_hold_exactly_is_refused(value: Any) -> None:
    with pytest.raises(GraphError, match="const node 'c' has value="):
        gb.Network(_mul_by_const(value))


@pytest.mark.parametrize("value", [np.float32(2), np.int64(3), [np.float16(1), 2]])
def test_numpy_scalars_in_a_const_round_trip(value: Any, tmp_path: Path) -> None:
    gb.Network(_mul_by_const(value)).to_json(tmp_path / "c.json")
    back = gb.Network.from_json(tmp_path / "c.json").graph.nodes["c"]["value"]
    np.testing.assert_array_equal(np.asarray(back, dtype=float), np.asarray(value, dtype=float))


def test_a_graph_attribute_json_cannot_hold_is_a_graph_error_on_saving(tmp_path: Path) -> None:
    g = _mul_by_const(1.0)
    g.graph["note"] = {1, 2}
    with pytest.raises(GraphError, match="cannot save the network as JSON .*set"):
        gb.Network(g).to_json(tmp_path / "c.json")
    assert list(tmp_path.iterdir()) == []


def test_names_that_read_alike_are_refused() -> None:
    g = nx.DiGraph(loss="L")
    g.add_node(0, op="param", shape=(2,))
    g.add_node("0", op="neg")
    g.add_node("L", op="sum")
    g.add_edges_from([(0, "0"), ("0", "L")])
    with pytest.raises(GraphError, match="nodes 0 and '0' have names that read alike"):
        gb.Network(g)


def test_an_attribute_named_id_is_refused_as_node_link_json_would_drop_it() -> None:
    g = _mul_by_const(1.0)
    g.nodes["m"]["id"] = "zzz"
    with pytest.raises(GraphError, match="node 'm' has an attribute 'id'"):
        gb.Network(g)


@pytest.mark.parametrize("name", ["file", "allow_pickle", 7])
def test_every_parameter_name_is_saved_in_params_npz(tmp_path: Path, name: Any) -> None:
    g = gb.seed_network(10, 4, 1)
    g = nx.relabel_nodes(g, {"W1": name})
    gb.Network(g).to_json(tmp_path / "g.json")
    done = graphbp("train", "--graph", "g.json", "--epochs", "1", "--out", "o", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "o" / "params.npz") as saved:
        assert sorted(saved.files) == sorted(["b1", "W2", "b2", "W3", "b3", str(name)])
        assert saved[str(name)].shape == (10, 4)
    wrt = graphbp("explain", "g.json", "--wrt", str(name), cwd=tmp_path)
    assert wrt.returncode == 0, wrt.stderr  # an int name is chosen by its digits


@pytest.mark.parametrize(
    "edit",
    [
        lambda g: g.graph.update(meta={1: 2, "1": 3}),
        lambda g: g.graph.update({1: "a", "1": "b"}),
        lambda g: g.graph.update(flags=[{True: 1, "true": 2}]),
    ],
)
def test_keys_json_would_write_alike_are_refused_when_saving(edit: Any, tmp_path: Path) -> None:
    g = gb.seed_network(3, 4, 1)
    edit(g)
    with pytest.raises(gb.GraphError, match=r"two keys of one object are both written"):
        gb.Network(g).to_json(tmp_path / "net.json")
    assert not (tmp_path / "net.json").exists()


@pytest.mark.parametrize("key", ["source", "target", "key"])
def test_edge_attributes_node_link_json_uses_are_refused(key: str) -> None:
    g = gb.seed_network(3, 4, 1)
    g.edges["x", "h1"][key] = "zz"
    with pytest.raises(gb.GraphError, match=rf"edge 'x' → 'h1' has an attribute '{key}'"):
        gb.Network(g)
