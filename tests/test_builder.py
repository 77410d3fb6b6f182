"""gb.Builder: a network written as code is, node for node, the graph built by hand."""

from __future__ import annotations

import json
import operator
import re
import shutil
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphbp as gb
from graphbp.errors import GraphError, GraphFileError, PluginError
from graphbp.graph import NAME_RULE


def textbook(n_in: int = 10, hidden: int = 16, n_out: int = 1) -> gb.Network:
    """The README's example, as written there."""
    b = gb.Builder()
    x, y = b.input("x", (None, n_in)), b.input("y", (None, n_out))
    h1 = b.dense(x, hidden, "sigmoid", name="h1")  # creates W1, b1
    h2 = b.dense(h1, hidden, "sigmoid", name="h2")  # W2, b2
    yhat = b.dense(h2, n_out, None, name="yhat")  # W3, b3
    return b.network(b.sse(yhat, y, name="L"))


def assert_same_graph(built: nx.DiGraph, by_hand: nx.DiGraph) -> None:
    """Same nodes in the same order, same edges with their arg, every attribute alike (but
    gb.mlp's layer scopes, which the builder examples leave out)."""
    by_hand = by_hand.copy()
    for node, data in by_hand.nodes(data=True):
        if data.get("scope", "").startswith("layer") and "scope" not in built.nodes[node]:
            del data["scope"]
    assert list(built.nodes) == list(by_hand.nodes)
    assert dict(built.nodes(data=True)) == dict(by_hand.nodes(data=True))
    assert sorted(built.edges(data="arg"), key=str) == sorted(by_hand.edges(data="arg"), key=str)
    assert {(u, v): d for u, v, d in built.edges(data=True)} == {
        (u, v): d for u, v, d in by_hand.edges(data=True)
    }
    assert built.graph == by_hand.graph
    assert nx.utils.graphs_equal(built, by_hand)


def run(net: gb.Network, inputs: dict[str, Any], backend: str = "numpy") -> tuple[Any, Any]:
    prog = net.compile(backend)
    loss, grads = prog.value_and_grad(prog.init(seed=0), inputs)
    return np.asarray(loss), {name: np.asarray(grad) for name, grad in grads.items()}


# ------------------------------------------------------------------ the textbook network


@pytest.mark.parametrize(
    ("sizes", "backend"),
    [((10, 16, 1), "numpy"), ((10, 16, 1), "jax"), ((3, 5, 2), "numpy"), ((1, 1, 1), "numpy")],
)
def test_the_readme_example_is_the_seed_network(sizes: tuple[int, int, int], backend: str) -> None:
    if backend == "jax":
        pytest.importorskip("jax")
    built = textbook(*sizes)
    by_hand = gb.seed_network(*sizes)
    assert_same_graph(built.graph, by_hand)
    assert built.graph.graph == {"loss": "L", "output": "yhat"}
    assert built.params == ["W1", "b1", "W2", "b2", "W3", "b3"]
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((7, sizes[0])), "y": rng.standard_normal((7, sizes[2]))}
    loss, grads = run(built, inputs, backend)
    loss_by_hand, grads_by_hand = run(gb.Network(by_hand), inputs, backend)
    assert loss == loss_by_hand  # bit for bit: the same graph, planned the same way
    assert list(grads) == list(grads_by_hand)
    for name in grads:
        np.testing.assert_array_equal(grads[name], grads_by_hand[name])


@pytest.mark.parametrize(
    ("sizes", "activation", "loss"),
    [
        ((4, 8, 8, 8, 2), "relu", "mse"),
        ((3, 5, 4), "tanh", "softmax_cross_entropy"),
        ((2, 1), "sigmoid", "sse"),
    ],
)
def test_a_loop_of_layers_is_gb_mlp(sizes: tuple[int, ...], activation: str, loss: str) -> None:
    b = gb.Builder()
    x, y = b.input("x", (None, sizes[0])), b.input("y", (None, sizes[-1]))
    h = x
    for k in range(1, len(sizes) - 1):
        h = b.dense(h, sizes[k], activation)  # unnamed: h1, h2, ... with Wk, bk
    yhat = b.dense(h, sizes[-1], name="yhat")  # activation None: affine
    losses = {"sse": b.sse, "mse": b.mse, "softmax_cross_entropy": b.softmax_cross_entropy}
    net = b.network(losses[loss](yhat, y, name="L"))
    assert_same_graph(net.graph, gb.mlp(sizes, activation, loss))


def test_the_network_round_trips_through_json(tmp_path: Path) -> None:
    b = gb.Builder()
    x = b.input("x", (None, 3))
    scaled = x * np.array([1, 2, 3]) + 0.5  # an int array const and a float const
    net = b.network(b.op("sum", scaled**2, name="L"))
    net.to_json(tmp_path / "net.json")
    back = gb.Network.from_json(tmp_path / "net.json")
    assert list(back.graph.nodes) == list(net.graph.nodes)
    assert json.loads((tmp_path / "net.json").read_text())["graph"] == {"loss": "L"}
    inputs = {"x": np.arange(6.0).reshape(2, 3)}
    expected = np.sum((np.arange(6.0).reshape(2, 3) * [1, 2, 3] + 0.5) ** 2)
    for network in (net, back):
        assert network.compile("numpy").loss({}, inputs) == pytest.approx(expected)


# ------------------------------------------------------------------ operators

BINARY: list[tuple[Callable[[Any, Any], Any], str]] = [
    (operator.add, "add"),
    (operator.sub, "sub"),
    (operator.mul, "mul"),
    (operator.truediv, "div"),
]


def _values(net: gb.Network, inputs: dict[str, Any], node: Hashable) -> Any:
    prog = net.compile("numpy")
    return prog.forward(prog.init(), inputs, [node])[node]


def _operands_of(net: gb.Network, node: Hashable) -> tuple[Hashable, ...]:
    return net.operands[node]


@pytest.mark.parametrize(("fn", "op"), BINARY)
def test_every_binary_operator_and_its_reflected_form(
    fn: Callable[[Any, Any], Any], op: str
) -> None:
    a_in, c_in = np.array([[1.0, 2.0, 4.0]]), np.array([[0.5, -3.0, 8.0]])
    inputs = {"a": a_in, "c": c_in}
    cases: list[tuple[str, Callable[[Any, Any], Any], Any, str]] = [
        # (description, how it is written, what NumPy computes, the const's operand position)
        ("value op value", lambda a, c: fn(a, c), fn(a_in, c_in), ""),
        ("value op number", lambda a, c: fn(a, 3), fn(a_in, 3), "1"),
        ("number op value", lambda a, c: fn(3, a), fn(3, a_in), "0"),
        ("value op float", lambda a, c: fn(a, 2.5), fn(a_in, 2.5), "1"),
        ("array op value", lambda a, c: fn(np.array([1.0, 2.0, 3.0]), a), None, "0"),
        ("value op array", lambda a, c: fn(a, np.array([1.0, 2.0, 3.0])), None, "1"),
        ("numpy scalar op value", lambda a, c: fn(np.float64(2.0), a), fn(2.0, a_in), "0"),
    ]
    for description, written, expected, const_at in cases:
        b = gb.Builder()
        a, c = b.input("a", (None, 3)), b.input("c", (None, 3))
        out = written(a, c)
        assert isinstance(out, gb.Value), description
        assert (out.op, out.shape) == (op, (None, 3)), description
        net = b.network(b.op("sum", out, name="L"))
        operands = _operands_of(net, out.name)
        if const_at:
            assert net.kind[operands[int(const_at)]] == "const", description
            assert operands[1 - int(const_at)] == "a", description
        else:
            assert operands == ("a", "c"), description  # a - c: a is operand 0
        if expected is None:
            array = np.array([1.0, 2.0, 3.0])
            expected = fn(array, a_in) if const_at == "0" else fn(a_in, array)
        np.testing.assert_allclose(_values(net, inputs, out.name), expected, rtol=1e-15)


def test_matmul_and_its_reflected_form() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 3))
    w = b.param("W", (3, 2), init=0.5)
    left = np.arange(6.0).reshape(2, 3)
    xw, left_x = x @ w, left @ b.input("m", (3, 4))
    assert (xw.op, xw.shape, left_x.op, left_x.shape) == ("matmul", (None, 2), "matmul", (2, 4))
    net = b.network(b.op("sum", xw, name="L"))
    assert net.operands[xw.name] == ("x", "W")
    inputs = {"x": np.ones((5, 3))}
    np.testing.assert_array_equal(_values(net, inputs, xw.name), np.full((5, 2), 1.5))
    both = b.network(b.op("sum", left_x, name="L2"))
    const = both.operands[left_x.name][0]
    assert both.kind[const] == "const" and both.operands[left_x.name][1] == "m"
    m = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(_values(both, {"m": m}, left_x.name), left @ m)


def test_negation_and_square() -> None:
    b = gb.Builder()
    x = b.input("x", (4,))
    neg, sq, sq_float = -x, x**2, x**2.0
    assert (neg.op, sq.op, sq_float.op) == ("neg", "square", "square")
    net = b.network(b.op("sum", neg + sq + sq_float, name="L"))
    inputs = {"x": np.array([1.0, -2.0, 3.0, 0.5])}
    for node, expected in [(neg.name, -inputs["x"]), (sq.name, inputs["x"] ** 2)]:
        np.testing.assert_array_equal(_values(net, inputs, node), expected)


@pytest.mark.parametrize("exponent", [3, 0.5, 1, -2, True, "2", None])
def test_powers_other_than_two_say_what_to_do(exponent: Any) -> None:
    b = gb.Builder()
    x = b.input("x", (4,))
    with pytest.raises(GraphError, match=r"only \*\* 2 has an op \(square\); write other powers"):
        x**exponent
    assert len(b.network(b.op("sum", x, name="L")).graph) == 2  # nothing was added


def test_powers_of_a_value_say_what_to_do() -> None:
    b = gb.Builder()
    x = b.input("x", (4,))
    with pytest.raises(GraphError, match=r"2 \*\* 'x': no op raises.*b.op\('exp', x\)"):
        2**x
    with pytest.raises(GraphError, match=r"only \*\* 2 has an op"):
        x**x


def test_a_value_used_twice_by_one_op_gets_both_positions() -> None:
    b = gb.Builder()
    h = b.input("h", (3,))
    hh, doubled = h * h, b.op("add", h, h, name="twice")
    g = b.network(b.op("sum", hh + doubled, name="L")).graph
    assert g.edges["h", hh.name] == {"arg": (0, 1)}
    assert g.edges["h", "twice"] == {"arg": (0, 1)}
    net = gb.Network(g)
    inputs = {"h": np.array([1.0, -2.0, 3.0])}
    prog = net.compile("numpy")
    values = prog.forward({}, inputs, [hh.name, "twice"])
    np.testing.assert_array_equal(values[hh.name], inputs["h"] ** 2)
    np.testing.assert_array_equal(values["twice"], 2 * inputs["h"])


def test_values_compare_by_identity() -> None:
    b = gb.Builder()
    x = b.input("x", (3,))
    same = x
    assert same == x and x != b.input("z", (3,)) and len({x, same}) == 1


# ------------------------------------------------------------------ b.op, leaves, dense


def test_b_op_makes_a_node_of_a_registered_plugin_op(register: Any) -> None:
    class Cube(gb.Op):
        name = "cube_builder_test"
        label = "x³"
        local_grads = ("3x²",)

        def forward(self, xp: Any, x: Any, scale: float = 1.0) -> Any:
            return scale * x**3

        def vjp(self, xp: Any, g: Any, out: Any, x: Any, scale: float = 1.0) -> Any:
            return (3 * scale * g * x**2,)

    register(Cube)
    b = gb.Builder()
    w = b.param("w", (3,), init=2.0)
    cubed = b.op("cube_builder_test", w, scale=0.5)
    assert (cubed.name, cubed.shape) == ("cube_builder_test1", (3,))  # probed: no shape rule
    net = b.network(b.op("sum", cubed, name="L"))
    assert net.graph.nodes[cubed.name] == {"op": "cube_builder_test", "scale": 0.5}
    loss, grads = run(net, {})
    assert loss == pytest.approx(3 * 0.5 * 8)
    np.testing.assert_allclose(grads["w"], 3 * 0.5 * 4 * np.ones(3))
    match = r"node 'cube_builder_test2' \(op 'cube_builder_test'\) has attribute\(s\) \['power'\]"
    with pytest.raises(GraphError, match=match):
        b.op("cube_builder_test", w, power=2)


def test_b_op_passes_attributes_and_a_declared_shape() -> None:
    b = gb.Builder()
    h = b.input("h", (None, 4))
    col = b.op("sum", h, axis=0, name="col")
    assert col.shape == (4,)
    assert b.op("mean", h, axis=1, keepdims=True, shape=(None, 1)).shape == (None, 1)
    with pytest.raises(GraphError, match=r"declares shape \(3,\) but its operands give \(4,\)"):
        b.op("sum", h, axis=0, shape=(3,))
    net = b.network(b.op("sum", col, name="L"))
    assert net.graph.nodes["col"] == {"op": "sum", "axis": 0}


def test_leaves_carry_what_the_schema_says() -> None:
    b = gb.Builder()
    x = b.input("x", [None, 3])  # a list, as JSON writes shapes
    free = b.input("free")
    w = b.param("W", (3, 2), init="he")
    bias = b.param("bias", (2,))
    c = b.const([[1, 2]], name="c")
    assert (x.shape, free.shape, w.shape, c.shape) == ((None, 3), None, (3, 2), (1, 2))
    assert free.op == "input" and (free + 1).shape is None  # unknown: no shape rule can run
    net = b.network(b.op("sum", (x @ w + bias) * c, name="L"))
    nodes = net.graph.nodes
    assert nodes["x"] == {"op": "input", "shape": (None, 3)}
    assert nodes["W"] == {"op": "param", "shape": (3, 2), "init": "he"}
    assert nodes["bias"] == {"op": "param", "shape": (2,)}
    assert nodes["c"]["op"] == "const" and nodes["c"]["value"].tolist() == [[1.0, 2.0]]
    assert "free" not in net.graph  # the loss does not depend on it


def test_numpy_ints_are_taken_as_ints() -> None:
    b = gb.Builder()
    x = b.input("x", (None, np.int64(3)))
    h = b.dense(x, np.int32(4), "tanh")
    g = b.network(b.op("sum", h, name="L")).graph
    assert g.nodes["x"]["shape"] == (None, 3) and g.nodes["W1"]["shape"] == (3, 4)
    assert {type(d) for n in ("x", "W1", "b1") for d in g.nodes[n]["shape"]} <= {int, type(None)}


def test_a_const_is_a_copy_of_the_array_given() -> None:
    b = gb.Builder()
    array = np.array([1.0, 2.0])
    c = b.const(array)
    array[0] = 99.0
    net = b.network(b.op("sum", c, name="L"))
    assert net.compile("numpy").loss({}, {}) == 3.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda b: b.param("W", None), r"param node 'W' has no shape; give it one"),
        (lambda b: b.param("W", (3, None)), r"'W' \(op 'param'\) has shape=\(3, None\)"),
        (lambda b: b.param("W", (3,), init="xavier"), r"init='xavier'; use a finite number or one"),
        (lambda b: b.input("x", 10), r"node 'x' \(op 'input'\) has shape=10; a shape is a tuple"),
        (lambda b: b.const("a"), r"const node 'const1' has value='a'; give it numbers"),
        (lambda b: b.const([[1], [2, 3]]), r"not a ragged list"),
    ],
)
def test_bad_leaves_are_errors(call: Callable[[gb.Builder], Any], match: str) -> None:
    b = gb.Builder()
    with pytest.raises(GraphError, match=match):
        call(b)
    assert b.const(1.0).name == "const1"  # the failed call left nothing behind


def test_dense_reads_the_width_and_makes_dense_or_affine() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 5, 3))  # a batch of sequences: dense acts on the last axis
    h = b.dense(x, 4, "relu", name="h1")
    out = b.dense(h, 2, name="out")
    assert (h.shape, out.shape) == ((None, 5, 4), (None, 5, 2))
    g = b.network(b.op("sum", out, name="L")).graph
    assert g.nodes["h1"] == {"op": "dense", "activation": "relu"}
    assert g.nodes["out"] == {"op": "affine"}
    assert [g.nodes[p]["shape"] for p in ("W1", "b1", "W2", "b2")] == [(3, 4), (4,), (4, 2), (2,)]
    assert [(u, d) for u, _, d in g.in_edges("out", data="arg")] == [
        ("h1", 0),
        ("W2", 1),
        ("b2", 2),
    ]


def test_dense_with_a_plugin_activation(register: Any) -> None:
    class Swish(gb.Op):
        name = "swish_builder_test"
        label = "x·σ(x)"
        local_grads = ("σ(x)(1+x(1−σ(x)))",)

        def forward(self, xp: Any, x: Any) -> Any:
            return x / (1 + xp.exp(-x))

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> Any:
            s = 1 / (1 + xp.exp(-x))
            return (g * (s + x * s * (1 - s)),)

    register(Swish)
    b = gb.Builder()
    h = b.dense(b.input("x", (None, 2)), 3, "swish_builder_test")
    assert (h.name, h.op, h.shape) == ("h1", "dense", (None, 3))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda b, x: b.dense(b.input("u"), 3), r"dense layer 'h1': the width of its input 'u'"),
        (
            lambda b, x: b.dense(b.input("u", (None, None)), 3),
            r"the width of its input 'u' is unknown \(shape \(None, None\)\); declare it",
        ),
        (lambda b, x: b.dense(2.0, 3), r"the width of its input 'const1' is unknown"),
        (lambda b, x: b.dense(x, 0), r"units=0; give the layer's width, an int ≥ 1"),
        (lambda b, x: b.dense(x, 2.0), r"units=2.0"),
        (lambda b, x: b.dense(x, True), r"units=True"),
        (lambda b, x: b.dense(x, 3, "sigmod"), r"node 'h1' \(op 'dense'\).*'sigmoid'"),
        (lambda b, x: b.dense(x, 3, "add"), r"activation 'add' must be an op with one operand"),
        (lambda b, x: b.dense(x, 3, np.tanh), r"activation=<ufunc 'tanh'>; give an op's name"),
        (lambda b, x: b.dense(x, 3, params=("W",)), r"params=\('W',\); give the names of"),
        (lambda b, x: b.dense(x, 3, params=("P", "P")), r"three different names"),
        (lambda b, x: b.dense(x, 3, name="P", params=("P", "Q")), r"three different names"),
        (lambda b, x: b.dense(x, 3, name="Q", params=("P", "Q")), r"three different names"),
        (lambda b, x: b.dense(x, 3, params=("x", "Q")), r"the name 'x' is taken"),
    ],
)
def test_bad_dense_layers_are_errors(
    call: Callable[[gb.Builder, gb.Value], Any], match: str
) -> None:
    b = gb.Builder()
    x = b.input("x", (None, 2))
    nodes = set(b._draft.graph)
    with pytest.raises(GraphError, match=match):
        call(b, x)
    assert set(b._draft.graph) <= nodes | {"u"}  # the layer left nothing behind
    assert b.dense(x, 3).name == "h1"  # and took no number


# ------------------------------------------------------------------ names


def _layer_params(names: list[str | None]) -> list[tuple[Hashable, Hashable, Hashable]]:
    """Each dense layer's name and its parameters' names, for layers named ``names``."""
    b = gb.Builder()
    h = b.input("x", (None, 2))
    layers = []
    for name in names:
        h = b.dense(h, 2, "tanh", name=name)
        w, bias = (u for u, _, arg in b._draft.graph.in_edges(h.name, data="arg") if arg)
        layers.append((h.name, w, bias))
    return layers


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["h1", "h2", "yhat"], ["h1 W1 b1", "h2 W2 b2", "yhat W3 b3"]),  # the README
        ([None, None, None], ["h1 W1 b1", "h2 W2 b2", "h3 W3 b3"]),
        (["fc1", "fc2", "fc3"], ["fc1 W1 b1", "fc2 W2 b2", "fc3 W3 b3"]),
        (["encoder", "decoder", "head"], ["encoder W1 b1", "decoder W2 b2", "head W3 b3"]),
        (["layer0", "layer1", "out"], ["layer0 W0 b0", "layer1 W1 b1", "out W2 b2"]),
        (["h1", "h3", "out", None], ["h1 W1 b1", "h3 W3 b3", "out W4 b4", "h5 W5 b5"]),
        (["h01", None], ["h01 W01 b01", "h2 W2 b2"]),
        (
            ["block2_dense", "dense_10", None],
            ["block2_dense W1 b1", "dense_10 W10 b10", "h11 W11 b11"],
        ),
    ],
)
def test_the_parameter_naming_rule(names: list[str | None], expected: list[str]) -> None:
    assert [" ".join(map(str, layer)) for layer in _layer_params(names)] == expected


def test_int_layer_names_follow_the_same_rule() -> None:
    b = gb.Builder()
    h = b.dense(b.input("x", (None, 2)), 2, name=7)
    assert h.name == 7 and {"W7", "b7"} <= set(b._draft.graph)


def test_explicit_parameter_names_and_scopes_do_not_change_the_rule() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 2))
    with b.scope("enc"):
        e = b.dense(x, 2, "tanh", name="enc", params=("We", "be"))
    with b.scope("dec"):
        d = b.dense(e, 2, "tanh")
    g = b._draft.graph
    assert [u for u, _ in g.in_edges("enc")] == ["x", "We", "be"]
    assert d.name == "h2" and {"W2", "b2"} <= set(g)  # enc was layer 1


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda b, x: b.dense(b.dense(x, 2, name="out"), 2, name="h1"),
            r"its weight 'W1' is taken",
        ),
        (
            lambda b, x: b.dense(b.dense(x, 2, name="enc1"), 2, name="dec1"),
            r"dense layer 'dec1': its weight 'W1' is taken by an earlier node of op 'param'; name "
            r"the layer with a number of its own \(a layer whose name ends in n creates Wn and "
            r"bn\) or pass params=",
        ),
        (lambda b, x: (b.param("W1", (2, 2)), b.dense(x, 2, name="h1")), r"weight 'W1' is taken"),
        (lambda b, x: (b.param("b1", (2,)), b.dense(x, 2, name="h1")), r"bias 'b1' is taken"),
        (
            lambda b, x: b.input("x", (2,)),
            r"the name 'x' is taken by an earlier node of op 'input'; choose another",
        ),
        (lambda b, x: b.op("neg", x, name="x"), r"the name 'x' is taken"),
        (
            lambda b, x: (b.input(1), b.input("1")),
            r"'1' is taken by an earlier node \(a name that reads alike, 1\)",
        ),
        (lambda b, x: (x + 1, b.input("add1")), r"the name 'add1' is taken .* of op 'add'"),
    ],
)
def test_name_clashes_are_errors(build: Callable[[gb.Builder, gb.Value], Any], match: str) -> None:
    b = gb.Builder()
    x = b.input("x", (None, 2))
    with pytest.raises(GraphError, match=match):
        build(b, x)


@pytest.mark.parametrize("name", ["", "a\nb", "x\u202e", True, 2.5, ("a",), 2**64, "n" * 1001])
def test_names_follow_the_node_name_rule(name: Any) -> None:
    b = gb.Builder()
    x = b.input("x", (None, 3))
    for call in (
        lambda: b.input(name),
        lambda: b.param(name, (3,)),
        lambda: b.const(1.0, name=name),
        lambda: b.op("neg", x, name=name),
        lambda: b.dense(x, 2, name=name),
        lambda: b.dense(x, 2, params=(name, "bb")),
        lambda: b.sse(x, x, name=name),
    ):
        with pytest.raises(GraphError) as info:
            call()
        assert NAME_RULE in str(info.value) and "\n" not in str(info.value)


def test_automatic_names_are_readable_and_deterministic() -> None:
    def build() -> list[Hashable]:
        b = gb.Builder()
        x, w = b.input("x", (None, 3)), b.param("w", (3,))
        b.input("add2")  # taken: automatic names skip it
        z = (x + w) + (2 * x + w) + (x + 1.0) - x / 4
        loss = b.mse(z, x)
        return list(b.network(loss).graph)

    names = build()
    assert names == build()
    assert names == [
        "x", "w", "add1", "const1", "mul1", "add3", "add4", "const2", "add5",
        "add6", "const3", "div1", "sub1", "mse1",
    ]  # fmt: skip


def test_a_failed_call_takes_no_automatic_name() -> None:
    b = gb.Builder()
    x, v = b.input("x", (None, 3)), b.input("v", (None, 4))
    with pytest.raises(GraphError, match=r"shape mismatch at node 'add1' \(op 'add'\)"):
        x + v
    with pytest.raises(GraphError, match=r"at node 'add1'"):
        x + np.ones(4)  # the const made for it goes too
    assert [(x + 1).name, b.const(0.0).name] == ["add1", "const2"]
    assert set(b._draft.graph) == {"x", "v", "add1", "const1", "const2"}


# ------------------------------------------------------------------ scopes


def test_scopes_set_the_scope_attribute_and_nest() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 2))
    with b.scope("block1") as scope:
        assert scope == "block1"
        h = b.dense(x, 3, "tanh", name="h1")
        with b.scope("inner") as inner:
            assert inner == "block1/inner"
            k = h * 2
    out = b.dense(k, 1, name="yhat")
    g = b.network(b.sse(out, b.input("y", (None, 1)), name="L")).graph
    scoped = {n: d.get("scope") for n, d in g.nodes(data=True)}
    assert scoped == {
        "x": None, "W1": "block1", "b1": "block1", "h1": "block1", "const1": "block1/inner",
        "mul1": "block1/inner", "W2": None, "b2": None, "yhat": None, "y": None, "L": None,
    }  # fmt: skip


def test_a_scope_ends_when_its_block_raises() -> None:
    b = gb.Builder()
    x = b.input("x", (3,))
    with pytest.raises(GraphError), b.scope("s"):
        x + np.ones(4)
    assert "scope" not in b._draft.graph.nodes[(-x).name]


@pytest.mark.parametrize("scope", ["", "a\nb", 3, None])
def test_bad_scopes_are_errors(scope: Any) -> None:
    b = gb.Builder()
    match = r"b.scope\(.*\): a scope is a str of 1 to 1000"
    with pytest.raises(GraphError, match=match), b.scope(scope):
        pass


@pytest.mark.parametrize(
    ("scope", "fix"), [("/lead", "write 'lead'"), ("a//b/", "write 'a/b'"), ("/", "drop it")]
)
def test_scopes_with_an_empty_part_are_errors(scope: str, fix: str) -> None:
    # an empty part would be a group with no name in the outline drawing
    b = gb.Builder()
    with pytest.raises(GraphError, match=f"empty part; .*{fix}"), b.scope(scope):
        pass
    g = nx.DiGraph()
    g.add_node("p", op="param", shape=(2,))
    g.add_node("t", op="tanh", scope=scope)
    g.add_edge("p", "t")
    with pytest.raises(GraphError, match=f"node 't' has scope=.* with an empty part; .*{fix}"):
        gb.Network(g)
    with b.scope("a/b"):  # "/" inside a name nests
        assert (b.input("x", (2,)).name, b._draft.graph.nodes["x"]["scope"]) == ("x", "a/b")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_draws_a_cluster_per_scope() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 2))
    with b.scope("encoder"):
        h = b.dense(x, 3, "tanh")
    net = b.network(b.sse(b.dense(h, 2), x, name="L"))
    source = gb.render(net, wrt="W1").source
    assert source.count("subgraph cluster") == 1 and "encoder" in source
    assert "3 nodes" in gb.render(net, scopes="collapse").source


# ------------------------------------------------------------------ the network


def test_the_output_is_the_loss_prediction_or_given() -> None:
    b = gb.Builder()
    x, y = b.input("x", (None, 2)), b.input("y", (None, 2))
    z = b.dense(x, 2, name="z")
    assert b.network(b.mse(z, y)).graph.graph == {"loss": "mse1", "output": "z"}
    assert b.network(b.op("softmax_cross_entropy", z, y)).graph.graph["output"] == "z"
    assert "output" not in b.network(b.sse(x, y)).graph.graph  # an input is no prediction
    total = b.sse(z, y) + b.op("sum", b.param("p", (2,)) ** 2)
    assert "output" not in b.network(total).graph.graph
    assert b.network(total, output=z).graph.graph == {"loss": total.name, "output": "z"}
    extra = -x  # not needed by the loss: kept only because it is the output
    net = b.network(b.sse(z, y, name="L"), output=extra)
    assert net.graph.graph["output"] == extra.name and extra.name in net.graph
    assert "p" not in net.graph


def test_the_builder_goes_on_after_network() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 2))
    first = b.network(b.op("sum", x, name="L1"))
    second = b.network(b.op("sum", x * 2, name="L2"))
    assert list(first.graph) == ["x", "L1"]
    assert list(second.graph) == ["x", "const1", "mul1", "L2"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda b, o, x: b.network(x), r"loss node 'x' \(op 'input'\) has shape \(None, 2\)"),
        (lambda b, o, x: b.network(b.op("neg", x)), r"loss node 'neg1' .* has shape \(None, 2\)"),
        (lambda b, o, x: b.network("L"), r"the loss is 'L'; give a Value this builder made"),
        (lambda b, o, x: b.network(o), r"the loss, 'x', was made by another Builder"),
        (
            lambda b, o, x: b.op("add", x, o),
            r"operand 1 of 'add1' \(op 'add'\), 'x', was made by another Builder",
        ),
        (lambda b, o, x: o + x, r"operand 1 of 'add1' \(op 'add'\), 'x', was made by another"),
        (
            lambda b, o, x: b.network(b.sse(x, x), output=x),
            r"graph\['output'\] names 'x', an input",
        ),
        (
            lambda b, o, x: operator.add(x, [1, 2]),
            r"operand 1 of 'add1' \(op 'add'\) is \[1, 2\], a list; .*b.const\(LIST\)",
        ),
        (lambda b, o, x: x * "a", r"operand 1 of 'mul1' \(op 'mul'\) is 'a', a str"),
        (lambda b, o, x: x + True, r"operand 1 of 'add1' \(op 'add'\) is True; .*\(not a bool\)"),
        (lambda b, o, x: 1j * x, r"operand 0 of 'mul1' \(op 'mul'\) is 1j; .*\(not a complex\)"),
        (
            lambda b, o, x: b.op("nosuchop", x),
            r"unknown op 'nosuchop'.*`graphbp ops` lists every op",
        ),
        (lambda b, o, x: b.op("sigmod", x), r"did you mean 'sigmoid'.*`graphbp ops` lists"),
        (lambda b, o, x: b.op("param", x), r"b.op\('param'\): 'param' is a leaf kind.*b.param"),
        (lambda b, o, x: b.op(3, x), r"b.op\(3\): the first argument is an op's name"),
        (
            lambda b, o, x: b.op("add", x),
            r"b.op\('add', ...\) got 1 operand\(s\); op 'add' takes 2",
        ),
        (lambda b, o, x: b.op("neg", x, x), r"got 2 operand\(s\); op 'neg' takes 1"),
        (
            lambda b, o, x: b.op("neg", x, axis=0),
            r"'neg1' \(op 'neg'\) has attribute\(s\) \['axis'\]",
        ),
        (lambda b, o, x: b.op("neg", x, scope="s"), r"the scope is set by `with b.scope"),
        (lambda b, o, x: b.op("neg", x, op="s"), r"got an attribute op= or scope="),
        (lambda b, o, x: x @ x, r"shape mismatch at node 'matmul1' \(op 'matmul'\)"),
    ],
)
def test_errors_name_the_value_and_the_fix(call: Callable[..., Any], match: str) -> None:
    other = gb.Builder()
    o = other.input("x", (None, 2))
    b = gb.Builder()
    x = b.input("x", (None, 2))
    with pytest.raises(GraphError, match=match) as info:
        call(b, o, x)
    assert "\n" not in str(info.value)


def test_a_broken_plugin_shape_rule_is_a_plugin_error(register: Any) -> None:
    class Broken(gb.Op):
        name = "broken_builder_test"
        label = "?"
        local_grads = ("?",)

        def forward(self, xp: Any, x: Any) -> Any:
            return x

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> Any:
            return (g,)

        def shape(self, x: tuple[int, ...]) -> tuple[int, ...]:
            return ("three",)  # type: ignore[return-value]

    register(Broken)
    b = gb.Builder()
    x = b.input("x", (3,))
    with pytest.raises(PluginError, match=r"its shape rule returned \('three',\)"):
        b.op("broken_builder_test", x)
    assert list(b._draft.graph) == ["x"]


# ------------------------------------------------------------------ random expressions

_OPS: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("+", operator.add),
    ("-", operator.sub),
    ("*", operator.mul),
    ("/", operator.truediv),
]


@st.composite
def expressions(draw: st.DrawFn) -> list[tuple[str, int, int, Any]]:
    """A straight-line program over the values v0 = a, v1 = c: each step combines two earlier
    values (or one and a constant, on either side) with an operator, or negates or squares."""
    steps = []
    for i in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["binary", "left", "right", "neg", "square"]))
        first = draw(st.integers(0, i + 1))
        second = draw(st.integers(0, i + 1))
        const = draw(
            st.one_of(
                st.integers(1, 5),
                st.floats(0.5, 3.0),
                st.just(np.array([0.5, 1.5, 2.0])),
            )
        )
        steps.append((kind + draw(st.sampled_from("+-*/")), first, second, const))
    return steps


def _evaluate(steps: list[tuple[str, int, int, Any]], a: Any, c: Any) -> list[Any]:
    """Run the program on ``a`` and ``c``: Values of a builder or NumPy arrays alike."""
    values = [a, c]
    for code, first, second, const in steps:
        kind, symbol = code[:-1], code[-1]
        fn = dict(_OPS)[symbol]
        x, y = values[first], values[second]
        if kind == "binary":
            values.append(fn(x, y))
        elif kind == "left":
            values.append(fn(const, x))
        elif kind == "right":
            values.append(fn(x, const))
        elif kind == "neg":
            values.append(-x)
        else:
            values.append(x**2)
    return values


@settings(max_examples=60, deadline=None)
@given(expressions())
def test_random_expressions_equal_numpy(steps: list[tuple[str, int, int, Any]]) -> None:
    a_in = np.array([[1.25, -0.75, 2.0], [0.5, 1.5, -1.0]])
    c_in = np.array([[0.8, 1.1, -1.3], [2.0, -0.6, 0.9]])
    b = gb.Builder()
    built = _evaluate(steps, b.input("a", (None, 3)), b.input("c", (None, 3)))
    top = built[-1]
    net = b.network(b.op("sum", top, name="L"))
    names = [v.name for v in built[2:] if v.name in net.graph]
    assert top.name in names and top.shape == (None, 3)
    with np.errstate(all="ignore"):  # a - a may be divided by
        expected = dict(zip([v.name for v in built], _evaluate(steps, a_in, c_in), strict=True))
        got = net.compile("numpy").forward({}, {"a": a_in, "c": c_in}, names)
    for name in names:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, equal_nan=True)


# ------------------------------------------------------------------ review fixes


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("W1", r"dense layer 'W1': its weight would be named 'W1' too .*rename the layer"),
        ("b2", r"dense layer 'b2': its bias would be named 'b2' too .*rename the layer"),
    ],
)
def test_a_layer_named_like_its_own_parameter_is_an_error(name: str, match: str) -> None:
    b = gb.Builder()
    x, y = b.input("x", (None, 4)), b.input("y", (None, 3))
    with pytest.raises(GraphError, match=match):
        b.dense(x, 3, name=name)
    assert list(b._draft.graph) == ["x", "y"]  # left as it was
    net = b.network(b.sse(b.dense(x, 3, name="h1"), y, name="L"))
    assert sorted(map(str, net.params)) == ["W1", "b1"]


def test_an_unnamed_layer_skips_numbers_whose_names_are_taken() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 2))
    b.input("h1")
    b.param("W2", (2, 2))
    h = b.dense(x, 2)
    assert h.name == "h3" and {"W3", "b3"} <= set(b._draft.graph)


@pytest.mark.parametrize("init", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_a_non_finite_init_is_refused_built_by_hand_or_read(init: Any, tmp_path: Path) -> None:
    match = r"param node 'w' has init=.*; use a finite number or one of glorot"
    with pytest.raises(GraphError, match=match):
        gb.Builder().param("w", (3,), init=init)
    g = nx.DiGraph(loss="L")
    g.add_node("w", op="param", shape=(3,), init=init)
    g.add_node("L", op="sum")
    g.add_edge("w", "L", arg=0)
    with pytest.raises(GraphError, match=match):
        gb.Network(g)
    path = tmp_path / "net.json"
    path.write_text(
        json.dumps(_node_link(g), default=float)
    )  # JSON's NaN and Infinity, as Python writes them: refused as the file is read
    with pytest.raises(GraphFileError, match=r"net\.json:\d+:\d+: -?(NaN|Infinity) is not a"):
        gb.Network.from_json(path)


def _node_link(g: nx.DiGraph) -> dict[str, Any]:
    data = nx.node_link_data(g, edges="edges")
    for node in data["nodes"]:
        if isinstance(node.get("shape"), tuple):
            node["shape"] = list(node["shape"])
    return dict(data)


def test_values_are_read_only_and_forged_values_are_refused() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 3))
    loss = b.op("sum", x, name="L")
    other = b.op("sum", x)
    for attr, value in (("name", "L"), ("op", "mean"), ("shape", (3,))):
        with pytest.raises(AttributeError):
            setattr(other, attr, value)
    assert (other.name, other.op) == ("sum1", "sum")
    assert list(b.network(other).graph) == ["x", "sum1"]
    for forged in (gb.Value(b, "ghost", "input", (3,)), gb.Value(b, "L", "mean", ())):
        with pytest.raises(GraphError, match=r"is not a node of this builder; use the Values"):
            forged + 1
        with pytest.raises(GraphError, match=r"the loss, Value\(.*\), is not a node of this"):
            b.network(forged)
    assert b.network(loss).loss == "L"


def test_each_network_has_its_own_copy_of_every_value() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 2))
    k = b.const(np.ones(2))
    loss = b.op("sum", b.op("sum", x * k, axis=[0, 1]), name="L")
    first = b.network(loss)
    first.graph.nodes[k.name]["value"][0] = 99.0
    first.graph.nodes[loss.name]["op"] = "mean"
    first.graph.nodes["sum1"]["axis"].append(5)
    second = b.network(loss)
    assert second.graph.nodes[k.name]["value"].tolist() == [1.0, 1.0]
    assert second.graph.nodes[loss.name] == {"op": "sum"}
    assert second.graph.nodes["sum1"]["axis"] == [0, 1]
    g = nx.DiGraph(loss="L")  # built by hand: the network copies the array too
    array = np.ones(2)
    g.add_node("c", op="const", value=array)
    g.add_node("L", op="sum")
    g.add_edge("c", "L", arg=0)
    net = gb.Network(g)
    array[0] = 99.0
    assert net.graph.nodes["c"]["value"].tolist() == [1.0, 1.0]
    assert net.compile("numpy").loss({}, {}) == 2.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda x: x + np.array([True]),
            r"operand 1 of 'add1' \(op 'add'\) is array\(\[ True\]\);",
        ),
        (lambda x: np.array([True]) * x, r"operand 0 of 'mul1' \(op 'mul'\) is array\(\[ True\]\)"),
        (lambda x: x * np.ones(3, complex), r"operand 1 of 'mul1' .*\(not an array of dtype compl"),
        (lambda x: x - np.bool_(True), r"operand 1 of 'sub1' .*\(not a NumPy scalar of dtype bool"),
        (lambda x: x + None, r"operand 1 of 'add1' \(op 'add'\) is None, a NoneType; an operand"),
        (lambda x: x + object(), r"operand 1 of 'add1' .*, an object; an operand is a Value"),
    ],
)
def test_operator_errors_name_the_op_and_the_operand(call: Any, match: str) -> None:
    b = gb.Builder()
    x = b.input("x", (None, 3))
    with pytest.raises(GraphError, match=match) as info:
        call(x)
    assert "const" not in str(info.value).split(";")[0]  # not the const node rolled back
    assert list(b._draft.graph) == ["x"]


@pytest.mark.parametrize(
    ("call", "shown", "hint"),
    [
        (lambda x: x + np.ones((2, 3)), "shapes (None, 3) and (2, 3) do not broadcast", True),
        (lambda x: x + np.ones((5, 1)), "shapes (None, 3) and (5, 1) do not broadcast", True),
        (lambda x: np.ones((2, 7)) @ x, "matmul of shapes (2, 7) and (None, 3): the first", True),
        (lambda x: x + np.ones(4), "shapes (None, 3) and (4,) do not broadcast", False),
        (
            lambda x: x @ np.ones((4, 2)),
            "matmul of shapes (None, 3) and (4, 2): the first's last axis and the second's "
            "second-to-last axis differ in size",
            False,
        ),
    ],
)
def test_shape_errors_show_none_axes_as_none(call: Any, shown: str, hint: bool) -> None:
    """The word on None axes comes only where another size of them would fit."""
    b = gb.Builder()
    x = b.input("x", (None, 3))
    with pytest.raises(GraphError) as info:
        call(x)
    text = str(info.value)
    assert shown in text and ("None is an axis of any size" in text) is hint, text
    assert "(2, 3) and" not in text and "(3, 3)" not in text, text


def test_an_attribute_the_op_refuses_is_named_not_a_shape_mismatch() -> None:
    b = gb.Builder()
    x = b.input("x", (None, 3))
    with pytest.raises(GraphError) as info:
        b.op("sum", x * x, axis=np.array(1))
    text = str(info.value)
    assert text.startswith(
        "node 'sum1' (op 'sum') has attribute axis=array(1), which the op refuses (axis must "
        "be None, an int or a list of ints; got ndarray); fix the attribute"
    ), text
    assert "mismatch" not in text and "None is an axis" not in text, text
    with pytest.raises(GraphError, match=r"node 'sum1' \(op 'sum'\) has attribute keepdims="):
        b.op("sum", x, keepdims="yes")


def test_a_single_operand_that_does_not_fit_reads_in_the_singular() -> None:
    b = gb.Builder()
    with pytest.raises(GraphError, match=r"operand 'h' \(None, 4\) does not fit \(axis 5 is"):
        b.op("sum", b.input("h", (None, 4)), axis=5)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("int", "an int"),
        ("float", "a float"),
        ("input", "an input"),
        ("op", "an op"),
        ("param", "a param"),
        ("ndarray", "an ndarray"),
        ("ArrayImpl", "an ArrayImpl"),
        ("uint8", "a uint8"),
        ("object", "an object"),
    ],
)
def test_messages_use_a_or_an_as_spoken(word: str, expected: str) -> None:
    assert gb.errors.article(word) == expected


def test_no_message_writes_a_before_a_variable_word() -> None:
    pattern = re.compile(r"""f["'][^"']*\ba \{""")
    root = Path(gb.__file__).parent
    files = [*root.glob("*.py"), *(root.parent / "plugins").rglob("*.py")]
    found = [
        f"{path.name}:{i}"
        for path in files
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and "vowel" not in line  # but article() itself
    ]
    assert not found, found


def test_numpy_numbers_are_taken_in_attributes_and_shapes(tmp_path: Path) -> None:
    b = gb.Builder()
    h = b.input("h", (None, 4))
    s = b.op("sum", h, axis=np.int64(0), keepdims=np.bool_(True), shape=[1, np.int32(4)])
    assert s.shape == (1, 4)
    m = b.op("mean", s, axis=(np.int8(0), 1), shape=[])
    net = b.network(b.op("sum", m * np.float32(0.5), name="L"))
    nodes = net.graph.nodes
    assert nodes[s.name] == {"op": "sum", "axis": 0, "keepdims": True, "shape": (1, 4)}
    assert nodes[m.name] == {"op": "mean", "axis": [0, 1], "shape": ()}
    assert type(nodes[s.name]["axis"]) is int and type(nodes[s.name]["keepdims"]) is bool
    path = tmp_path / "net.json"
    net.to_json(path)
    assert nx.utils.graphs_equal(gb.Network.from_json(path).graph, net.graph)  # tuples too


def test_a_graph_built_by_hand_may_use_numpy_numbers() -> None:
    g = nx.DiGraph(loss="L")
    g.add_node("h", op="input", shape=[None, np.int64(4)])
    g.add_node("s", op="sum", axis=np.int64(1), keepdims=np.bool_(False))
    g.add_node("L", op="sum")
    g.add_edge("h", "s", arg=0)
    g.add_edge("s", "L", arg=0)
    net = gb.Network(g)
    assert net.shapes["s"] == (None,) and net.graph.nodes["h"]["shape"] == (None, 4)
    assert json.loads(json.dumps(net.to_dict()))["nodes"][1] == {
        "op": "sum",
        "axis": 1,
        "keepdims": False,
        "id": "s",
    }


@pytest.mark.parametrize("two", [np.array(2), np.array(2.0), np.int64(2), np.float32(2.0)])
def test_the_numpy_number_two_squares(two: Any) -> None:
    b = gb.Builder()
    assert (b.input("x", (None, 3)) ** two).op == "square"


def test_pow_with_a_modulus_is_a_graph_error() -> None:
    b = gb.Builder()
    with pytest.raises(GraphError, match=r"pow\('x', 2, 3\): no op computes a power modulo"):
        pow(b.input("x", (3,)), 2, 3)


@pytest.mark.parametrize(
    ("first", "second"),
    [("é", "e\u0301"), ("x", "\uff58"), ("W1", "W\u2081"), (5, "５")],
)
def test_names_that_read_alike_are_refused(first: Any, second: Any) -> None:
    b = gb.Builder()
    b.input(first)
    with pytest.raises(GraphError, match=r"is taken by an earlier node \(a name that reads alike"):
        b.input(second)
    g = nx.DiGraph(loss="L")
    g.add_node(first, op="input", shape=(3,))
    g.add_node(second, op="input", shape=(3,))
    g.add_node("L", op="sse")
    g.add_edge(first, "L", arg=0)
    g.add_edge(second, "L", arg=1)
    with pytest.raises(GraphError, match=r"have names that read alike \(equal as text after"):
        gb.Network(g)


def test_look_alike_letters_of_other_scripts_are_different_names() -> None:
    b = gb.Builder()
    assert b.input("x").name != b.input("\u0445").name  # Latin x, Cyrillic ha: left alone


def test_an_attribute_named_name_goes_in_attrs(register: Any) -> None:
    class Tagged(gb.Op):
        name = "tagged_builder_test"
        label = "tag"
        local_grads = ("1",)

        def forward(self, xp: Any, x: Any, name: str = "a") -> Any:
            return x

        def vjp(self, xp: Any, g: Any, out: Any, x: Any, name: str = "a") -> Any:
            return (g,)

    register(Tagged)
    b = gb.Builder()
    x = b.input("x", (None, 2))
    tagged = b.op("tagged_builder_test", x, name="t", attrs={"name": "k"})
    assert tagged.name == "t" and b._draft.graph.nodes["t"] == {"op": Tagged.name, "name": "k"}
    with pytest.raises(GraphError, match=r"got the attribute\(s\) \['axis'\] both in attrs="):
        b.op("sum", x, attrs={"axis": 0}, axis=1)
    with pytest.raises(GraphError, match=r"attrs is a dict of attributes"):
        b.op("tagged_builder_test", x, attrs=["name"])  # type: ignore[arg-type]


def test_jax_arrays_are_operands_and_consts() -> None:
    jnp = pytest.importorskip("jax.numpy")
    b = gb.Builder()
    x = b.input("x", (None, 3))
    y = jnp.arange(3.0) + x
    c = b.const(jnp.ones(3, dtype=jnp.float32))
    net = b.network(b.op("sum", y * c, name="L"))
    values = [d["value"] for _, d in net.graph.nodes(data=True) if d["op"] == "const"]
    assert all(type(v) is np.ndarray for v in values)
    assert net.compile("numpy").loss({}, {"x": np.zeros((2, 3))}) == 2 * 3.0


@pytest.mark.parametrize("use", [bool, lambda v: v and 1, lambda v: 1 if v else 0, lambda v: not v])
def test_a_value_has_no_truth_value(use: Callable[[Any], Any]) -> None:
    b = gb.Builder()
    x = b.input("x", (None, 3))
    with pytest.raises(GraphError, match=r"value 'x' \(op 'input'\) .* neither true nor false"):
        use(x)


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        (lambda x, z: x @ x, "matmul of shapes (None, 3) and (None, 3)"),
        (lambda x, z: x @ z, "matmul of shapes (None, 3) and (None, 4)"),
        (lambda x, z: np.ones(3) @ x, "matmul of shapes (3,) and (None, 3)"),
    ],
)
def test_matmul_mismatches_show_none_axes_and_no_made_up_size(
    make: Callable[[Any, Any], Any], shown: str
) -> None:
    b = gb.Builder()
    x, z = b.input("x", (None, 3)), b.input("z", (None, 4))
    with pytest.raises(GraphError) as info:
        make(x, z)
    message = str(info.value)
    assert shown in message and "differ in size" in message
    assert "(2, " not in message and "(3, 3)" not in message and " 2 " not in message
