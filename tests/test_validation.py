"""Bad graphs, bad inputs and bad plugins: each a GraphbpError naming the node, op and fix."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
from graphs import chain

import graphbp as gb
from graphbp.errors import GraphError, InputError, NonFiniteError, PluginError


def _chain(*ops: str) -> nx.DiGraph:
    """x → n0 → n1 → ... → L = sum: an input of shape (None, 3) through ``ops``, one each."""
    names = [f"n{i}" for i in range(len(ops))]
    return chain(ops, kind="input", source="x", shape=(None, 3), names=names)


def test_cycle_is_reported_as_its_path() -> None:
    g = _chain("tanh", "exp")
    g.add_edge("n1", "n0")
    with pytest.raises(GraphError, match=r"cycle: 'n\d' → 'n\d' → 'n\d'.*DAG"):
        gb.Network(g)


def test_unknown_op_suggests_close_names() -> None:
    with pytest.raises(GraphError, match=r"node 'n0'.*unknown op 'sigmod'.*'sigmoid'"):
        gb.Network(_chain("sigmod"))


def test_missing_op_attribute_names_the_node() -> None:
    g = _chain("tanh")
    del g.nodes["n0"]["op"]
    with pytest.raises(GraphError, match="node 'n0' has no 'op' attribute"):
        gb.Network(g)


def test_wrong_operand_count_names_the_missing_position() -> None:
    g = _chain("tanh")
    g.add_node("m", op="mul")
    g.add_edge("n0", "m", arg=0)
    g.add_edge("m", "L")
    g.remove_edge("n0", "L")
    with pytest.raises(GraphError, match=r"node 'm' \(op 'mul'\) takes 2 operand.*\[1\].*arg=1"):
        gb.Network(g)


@pytest.mark.parametrize(
    ("arg_of_b", "message"),
    [
        (None, r"edge 'b' → 'L' \(op 'sse'\) has no 'arg'"),
        (0, r"'L' \(op 'sse'\): operand 0 is given twice, by 'a' and 'b'"),
    ],
)
def test_missing_or_duplicate_arg_with_several_operands(arg_of_b: Any, message: str) -> None:
    g = nx.DiGraph(loss="L")
    g.add_node("a", op="input", shape=(3,))
    g.add_node("b", op="input", shape=(3,))
    g.add_node("L", op="sse")
    g.add_edge("a", "L", arg=0)
    g.add_edge("b", "L", **({} if arg_of_b is None else {"arg": arg_of_b}))
    with pytest.raises(GraphError, match=message):
        gb.Network(g)


def test_arg_out_of_range() -> None:
    g = _chain("tanh")
    g.edges["x", "n0"]["arg"] = 1
    with pytest.raises(GraphError, match=r"arg=1; 'tanh' takes operands 0..0"):
        gb.Network(g)


def test_param_without_shape() -> None:
    g = gb.seed_network(3, 4)
    del g.nodes["W2"]["shape"]
    with pytest.raises(GraphError, match="param node 'W2' has no shape.*shape=\\("):
        gb.Network(g)


def test_bad_init_and_bad_shape_values() -> None:
    g = gb.seed_network(3, 4)
    g.nodes["W2"]["init"] = "xavierr"
    with pytest.raises(GraphError, match="param node 'W2' has init='xavierr'"):
        gb.Network(g)
    g = gb.seed_network(3, 4)
    g.nodes["W2"]["shape"] = (4, None)
    with pytest.raises(GraphError, match="node 'W2' .*shape=\\(4, None\\)"):
        gb.Network(g)


def test_unknown_attribute_lists_what_the_op_accepts() -> None:
    g = _chain("tanh")
    g.nodes["L"]["axes"] = 0
    with pytest.raises(
        GraphError, match=r"node 'L' \(op 'sum'\) has attribute\(s\) \['axes'\].*'axis'"
    ):
        gb.Network(g)


def test_missing_and_non_scalar_loss() -> None:
    with pytest.raises(GraphError, match="no loss node named"):
        gb.Network(nx.DiGraph(_chain("tanh").edges))
    with pytest.raises(GraphError, match="loss node 'nope' is not in the graph"):
        gb.Network(_chain("tanh"), loss="nope")
    with pytest.raises(
        GraphError, match=r"loss node 'n0' \(op 'tanh'\) has shape \(None, 3\).*scalar"
    ):
        gb.Network(_chain("tanh"), loss="n0")


def test_shape_mismatch_names_node_op_and_both_shapes() -> None:
    g = gb.seed_network(3, 4)
    g.nodes["W2"]["shape"] = (5, 4)
    with pytest.raises(
        GraphError, match=r"node 'h2' \(op 'dense'\).*'h1' \(None, 4\), 'W2' \(5, 4\)"
    ):
        gb.Network(g)


def test_declared_shape_of_an_op_node_is_checked() -> None:
    g = _chain("tanh")
    g.nodes["n0"]["shape"] = (None, 4)
    with pytest.raises(GraphError, match=r"node 'n0' \(op 'tanh'\) declares shape \(None, 4\)"):
        gb.Network(g)


def test_leaf_with_incoming_edge() -> None:
    g = _chain("tanh")
    g.add_node("p", op="param", shape=(3,))
    g.add_edge("n0", "p")
    g.add_edge("p", "L")
    with pytest.raises(GraphError, match="node 'p' \\(op 'param'\\) is a leaf"):
        gb.Network(g)


def test_not_a_digraph() -> None:
    with pytest.raises(GraphError, match="nx.DiGraph"):
        gb.Network(nx.Graph())  # type: ignore[arg-type]


# ------------------------------------------------------------------------- at run time


@pytest.fixture
def seed_prog() -> gb.Program:
    return gb.Network(gb.seed_network(3, 4, 1)).compile()


def test_missing_input(seed_prog: gb.Program) -> None:
    with pytest.raises(InputError, match=r"missing input 'y'.*\['x'\]"):
        seed_prog.value_and_grad(seed_prog.init(), {"x": np.ones((2, 3))})


def test_input_of_the_wrong_shape(seed_prog: gb.Program) -> None:
    with pytest.raises(InputError, match=r"input 'x' .*shape \(2, 4\).*declares \(None, 3\)"):
        seed_prog.loss(seed_prog.init(), {"x": np.ones((2, 4)), "y": np.ones((2, 1))})


def test_input_of_the_wrong_dtype(seed_prog: gb.Program) -> None:
    with pytest.raises(InputError, match="input 'x' .*dtype complex128"):
        seed_prog.loss(seed_prog.init(), {"x": np.ones((2, 3)) * 1j, "y": np.ones((2, 1))})
    with pytest.raises(InputError, match="input 'x' .*cannot be converted"):
        seed_prog.loss(seed_prog.init(), {"x": [["a", "b", "c"]], "y": np.ones((1, 1))})


def test_integer_inputs_are_converted(seed_prog: gb.Program) -> None:
    p = seed_prog.init()
    a = seed_prog.loss(p, {"x": np.ones((2, 3), dtype=int), "y": np.zeros((2, 1), dtype=int)})
    b = seed_prog.loss(p, {"x": np.ones((2, 3)), "y": np.zeros((2, 1))})
    assert a == b


def test_parameter_of_the_wrong_shape(seed_prog: gb.Program) -> None:
    p = seed_prog.init()
    p["b1"] = np.zeros((1, 4))
    with pytest.raises(InputError, match=r"param 'b1' .*shape \(1, 4\).*declares \(4,\)"):
        seed_prog.loss(p, {"x": np.ones((2, 3)), "y": np.ones((2, 1))})


def test_unsupported_dtype() -> None:
    with pytest.raises(InputError, match="dtype 'int8' is not supported"):
        gb.Network(gb.seed_network(2, 2)).compile(dtype="int8")


class _Bad(gb.Op):
    name = "bad"
    label = "bad"
    local_grads = ("?",)
    returns: Any = None

    def forward(self, xp, x):  # type: ignore[no-untyped-def]
        return 2 * x

    def vjp(self, xp, g, out, x):  # type: ignore[no-untyped-def]
        return type(self).returns(g)


def _bad_prog(register: Any, param_chain: Any, returns: Any) -> tuple[gb.Program, dict[str, Any]]:
    op = type("BadOp", (_Bad,), {"returns": staticmethod(returns)})
    register(op, replace=True)
    prog = gb.Network(param_chain(["bad"], shape=(2, 3), init=None, names=["q"])).compile()
    return prog, prog.init()


def test_vjp_returning_the_wrong_number_of_cotangents(register: Any, param_chain: Any) -> None:
    prog, p = _bad_prog(register, param_chain, lambda g: (g, g))
    with pytest.raises(
        PluginError, match=r"op 'bad' at node 'q': vjp returned 2 cotangent.*1 operand"
    ):
        prog.value_and_grad(p, {})
    prog, p = _bad_prog(register, param_chain, lambda g: g)  # a bare array, not a tuple
    with pytest.raises(PluginError, match="op 'bad' at node 'q': vjp returned ndarray"):
        prog.value_and_grad(p, {})


def test_vjp_returning_the_wrong_shape(register: Any, param_chain: Any) -> None:
    prog, p = _bad_prog(register, param_chain, lambda g: (g[:, :2],))
    with pytest.raises(PluginError, match=r"op 'bad' at node 'q'.*shape \(2, 2\).*\(2, 3\)"):
        prog.value_and_grad(p, {})
    prog, p = _bad_prog(register, param_chain, lambda g: (None,))
    with pytest.raises(PluginError, match="op 'bad' at node 'q': vjp returned NoneType"):
        prog.value_and_grad(p, {})


def test_plugin_contract_is_checked_at_registration() -> None:
    class NoName(gb.Op):
        def forward(self, xp, x):  # type: ignore[no-untyped-def]
            return x

    with pytest.raises(PluginError, match="needs a `name`"):
        gb.register_op(NoName)

    class Mismatch(gb.Op):
        name = "mismatch"
        local_grads = ("1",)

        def forward(self, xp, a, b):  # type: ignore[no-untyped-def]
            return a

    with pytest.raises(PluginError, match="local_grads has 1 entries but forward takes 2"):
        gb.register_op(Mismatch)

    class Star(gb.Op):
        name = "star"

        def forward(self, xp, *xs):  # type: ignore[no-untyped-def]
            return xs[0]

    with pytest.raises(PluginError, match=r"forward takes \*xs"):
        gb.register_op(Star)

    with pytest.raises(PluginError, match="is not a graphbp.Op"):
        gb.register_op(object)  # type: ignore[arg-type]


def test_name_clash_needs_replace(register: Any) -> None:
    class MyTanh(gb.Op):
        name = "tanh"
        local_grads = ("1",)

        def forward(self, xp, x):  # type: ignore[no-untyped-def]
            return x

    with pytest.raises(PluginError, match="'tanh' is already registered.*replace=True"):
        gb.register_op(MyTanh)


def test_finite_check_names_the_first_bad_node(param_chain: Any) -> None:
    net = gb.Network(param_chain(["log"], init=-1.0, names=["lg"]))
    prog = net.compile(check_finite=True)
    with (
        np.errstate(invalid="ignore"),
        pytest.raises(NonFiniteError, match=r"value at node 'lg' \(op 'log'\) is not finite"),
    ):
        prog.value_and_grad(prog.init(), {})
    with np.errstate(invalid="ignore"):  # unchecked, the NaN just flows through
        loss, _ = net.compile().value_and_grad(prog.init(), {})
    assert np.isnan(loss)


def test_finite_check_catches_gradients_too(register: Any, param_chain: Any) -> None:
    prog, p = _bad_prog(
        register, param_chain, lambda g: (g / 0.0,)
    )  # finite values, infinite gradient
    with np.errstate(divide="ignore"):
        prog.value_and_grad(p, {})  # unchecked: no error
    checked = prog.network.compile(check_finite=True)
    with (
        np.errstate(divide="ignore"),
        pytest.raises(NonFiniteError, match=r"gradient at node 'q' \(op 'bad'\) is not finite"),
    ):
        checked.value_and_grad(p, {})


def test_const_with_a_value_that_is_not_numbers() -> None:
    g = _chain("tanh")
    g.add_node("c", op="const", value="abc")
    g.add_node("m", op="mul")
    g.add_edge("n0", "m", arg=0)
    g.add_edge("c", "m", arg=1)
    g.remove_edge("n0", "L")
    g.add_edge("m", "L")
    with pytest.raises(GraphError, match="const node 'c' has value='abc'; give it numbers"):
        gb.Network(g)


def test_a_forward_that_crashes_is_named_when_the_network_is_built(register: Any) -> None:
    class Crashing(gb.Op):
        name = "crashing"
        local_grads = ("1",)

        def forward(self, xp, x):  # type: ignore[no-untyped-def]
            return x.no_such_method()

    register(Crashing)
    with pytest.raises(PluginError, match=r"op 'crashing' at node 'n0': forward raised Attr"):
        gb.Network(_chain("crashing"))


def test_a_loss_of_unknown_shape_must_still_be_scalar_at_run_time() -> None:
    g = nx.DiGraph(loss="L")
    g.add_node("x", op="input")  # no declared shape: nothing to infer from
    g.add_node("p", op="param", shape=(), init=2.0)
    g.add_node("L", op="mul")
    g.add_edge("x", "L", arg=0)
    g.add_edge("p", "L", arg=1)
    prog = gb.Network(g).compile()
    loss, grads = prog.value_and_grad(prog.init(), {"x": np.float64(3.0)})
    assert loss == 6.0 and grads["p"] == 3.0
    with pytest.raises(InputError, match=r"loss node 'L' has shape \(2,\) for these inputs"):
        prog.value_and_grad(prog.init(), {"x": np.ones(2)})
