"""The engine: plan pruning, one vjp call per node, freeing, determinism, depth, dtypes."""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pytest
from graphs import hand_built_seed

import graphbp as gb
from graphbp.testing import check_op


def test_builder_returns_the_hand_built_graph() -> None:
    built, by_hand = gb.seed_network(4, 6, 2), hand_built_seed(4, 6, 2)
    for _, data in built.nodes(data=True):  # gb.mlp's layer scopes are drawing only
        data.pop("scope", None)
    assert nx.utils.graphs_equal(
        nx.DiGraph(built.edges(data=True)), nx.DiGraph(by_hand.edges(data=True))
    )
    assert dict(built.nodes(data=True)) == dict(by_hand.nodes(data=True))
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((5, 4)), "y": rng.standard_normal((5, 2))}
    a = gb.Network(built).compile()
    b = gb.Network(by_hand, loss="L").compile()
    la, ga = a.value_and_grad(a.init(1), data)
    lb, gbr = b.value_and_grad(b.init(1), data)
    assert la == lb and all(np.array_equal(ga[k], gbr[k]) for k in ga)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "softplus"])
def test_a_dense_layer_equals_affine_then_its_activation(activation: str) -> None:
    fused, split = hand_built_seed(4, 6, 2), hand_built_seed(4, 6, 2, fused=False)
    for k in (1, 2):
        fused.nodes[f"h{k}"]["activation"] = activation
        split.nodes[f"h{k}"]["op"] = activation
    a = gb.Network(fused, loss="L").compile()
    b = gb.Network(split, loss="L").compile()
    rng = np.random.default_rng(1)
    data = {"x": rng.standard_normal((7, 4)), "y": rng.standard_normal((7, 2))}
    params = a.init(2)
    la, ga = a.value_and_grad(params, data)
    lb, gbr = b.value_and_grad(params, data)
    np.testing.assert_allclose(la, lb, rtol=1e-13)
    for name in params:
        np.testing.assert_allclose(ga[name], gbr[name], rtol=1e-12, atol=1e-14)


def test_same_result_twice_and_arguments_untouched(seed_net: gb.Network) -> None:
    prog = seed_net.compile()
    p = prog.init(0)
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((8, 5)), "y": rng.standard_normal((8, 2))}
    before = {k: v.copy() for k, v in {**p, **data}.items()}
    first = prog.value_and_grad(p, data)
    second = prog.value_and_grad(p, data)
    assert first[0] == second[0]
    assert all(np.array_equal(first[1][k], second[1][k]) for k in p)
    assert all(np.array_equal(before[k], v) for k, v in {**p, **data}.items())


def test_plan_is_pruned_to_the_loss_and_backward_to_parameter_paths() -> None:
    g = gb.seed_network(3, 4, 1)
    g.add_node("unused", op="tanh")  # a branch the loss does not need
    g.add_edge("h1", "unused")
    g.add_node("xs", op="square")  # needed by the loss, but depends on no parameter
    g.add_edge("x", "xs")
    g.add_node("xsum", op="sum")
    g.add_edge("xs", "xsum")
    g.add_node("L2", op="add")
    g.add_edge("L", "L2", arg=0)
    g.add_edge("xsum", "L2", arg=1)
    prog = gb.Network(g, loss="L2").compile()
    plan = prog.plan(with_grad=True)
    forward = [s.node for s in plan.forward]
    backward = [s.node for s in plan.backward]
    assert "unused" not in forward
    assert {"xs", "xsum"} <= set(forward)
    assert not {"xs", "xsum"} & set(backward)
    assert backward == ["L2", "L", "yhat", "h2", "h1"]
    h1 = plan.backward[-1]
    assert h1.needs == (False, True, True)  # ∂L/∂x is never computed
    assert [position for position, _ in h1.targets] == [1, 2]


class _Counting(gb.Op):
    """σ that counts its vjp calls per node."""

    name = "counting_sigmoid"
    label = "σ"
    local_grads = ("σ(1−σ)",)
    calls: ClassVar[dict[int, int]] = {}

    def forward(self, xp: Any, z: Any) -> Any:
        return 1 / (1 + xp.exp(-z))

    def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> tuple[Any]:
        key = z.shape[-1]
        self.calls[key] = self.calls.get(key, 0) + 1
        return (g * out * (1 - out),)


def test_each_upstream_gradient_is_computed_once_and_reused(register: Any) -> None:
    """∂L/∂h1 serves W1 and b1, ∂L/∂h2 serves four parameters: each rule runs once."""
    register(_Counting)
    g = gb.mlp((3, 5, 6, 1), activation="counting_sigmoid")
    prog = gb.Network(g).compile()
    _Counting.calls.clear()
    _, grads = prog.value_and_grad(prog.init(), {"x": np.ones((4, 3)), "y": np.ones((4, 1))})
    assert len(grads) == 6
    assert _Counting.calls == {5: 1, 6: 1}


class _Tracked(gb.Op):
    """Identity (a copy) that remembers weak references to its outputs."""

    name = "tracked"
    label = "id"
    local_grads = ("1",)
    outputs: ClassVar[list[Any]] = []
    alive_at_vjp: ClassVar[list[int]] = []

    def forward(self, xp: Any, x: Any) -> Any:
        out = x * 1.0
        self.outputs.append(weakref.ref(out))
        return out

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        self.alive_at_vjp.append(sum(r() is not None for r in self.outputs))
        return (g,)


def test_forward_values_are_freed_once_no_rule_needs_them(register: Any, param_chain: Any) -> None:
    register(_Tracked)
    prog = gb.Network(param_chain(["tracked"] * 6)).compile()
    params = prog.init()
    _Tracked.outputs.clear()
    _Tracked.alive_at_vjp.clear()
    prog.value_and_grad(params, {})
    # The k-th rule from the end needs only its own output and operand: the outputs of the
    # nodes after it were freed as the traversal passed them.
    assert _Tracked.alive_at_vjp == [6, 5, 4, 3, 2, 1]
    assert all(r() is None for r in _Tracked.outputs)


def test_values_a_rule_does_not_read_are_freed_after_the_forward_pass() -> None:
    """σ's rule reads only its output, so z1 goes as soon as h1 = σ(z1) is computed."""
    prog = gb.Network(hand_built_seed(3, 4, 1, fused=False), loss="L").compile()
    plan = prog.plan(with_grad=True)
    h1 = next(s for s in plan.forward if s.node == "h1")
    assert plan.slots["z1"] in h1.free
    needed_later = {plan.slots[n] for n in ("h1", "h2", "yhat")}
    assert not needed_later & {s for step in plan.forward for s in step.free}


def test_checker_holds_an_op_to_its_vjp_reads_declaration() -> None:
    class Liar(gb.Op):
        name = "liar"
        label = "x²"
        local_grads = ("2x",)
        vjp_reads = ("out",)  # but the rule reads x

        def forward(self, xp: Any, x: Any) -> Any:
            return x * x

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
            return (2 * g * x,)

    with pytest.raises(gb.GradientCheckError, match="list it in vjp_reads"):
        check_op(Liar())
    with pytest.raises(gb.PluginError, match="vjp_reads=\\('y',\\)"):
        gb.register_op(type("Bad", (Liar,), {"vjp_reads": ("y",)}))


def test_deep_chain_has_no_recursion_limit(param_chain: Any) -> None:
    prog = gb.Network(param_chain(["neg"] * 5000, shape=(2,), init=0.3)).compile()
    loss, grads = prog.value_and_grad(prog.init(), {})
    assert loss == pytest.approx(0.6)  # an even number of negations
    np.testing.assert_array_equal(grads["p"], [1.0, 1.0])


def test_parameters_off_the_loss_path_get_zero_gradients() -> None:
    g = gb.seed_network(3, 4)
    g.add_node("spare", op="param", shape=(2, 2))
    prog = gb.Network(g).compile()
    p = prog.init()
    _, grads = prog.value_and_grad(p, {"x": np.ones((2, 3)), "y": np.ones((2, 1))})
    np.testing.assert_array_equal(grads["spare"], np.zeros((2, 2)))


def test_forward_of_the_prediction_needs_no_target(seed_net: gb.Network) -> None:
    prog = seed_net.compile()
    p = prog.init()
    out = prog.forward(p, {"x": np.ones((3, 5))}, ["yhat", "h1"])
    assert out["yhat"].shape == (3, 2) and out["h1"].shape == (3, 4)
    with pytest.raises(gb.InputError, match="no node 'nope'"):
        prog.forward(p, {"x": np.ones((3, 5))}, ["nope"])


def test_float32_runs_in_float32_and_agrees_with_float64(seed_net: gb.Network) -> None:
    p64, p32 = seed_net.compile(dtype="float64"), seed_net.compile(dtype="float32")
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((8, 5)), "y": rng.standard_normal((8, 2))}
    l64, g64 = p64.value_and_grad(p64.init(0), data)
    l32, g32 = p32.value_and_grad(p32.init(0), data)
    assert all(v.dtype == np.float32 for v in g32.values())
    assert float(l32) == pytest.approx(float(l64), rel=1e-5)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-4, atol=1e-5)


def test_init_is_seeded_per_parameter_name() -> None:
    a = gb.Network(gb.seed_network(3, 4)).compile().init(seed=7)
    g = gb.seed_network(3, 4)
    g.add_node("extra", op="param", shape=(5,), init="normal")
    b = gb.Network(g).compile().init(seed=7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], gb.Network(gb.seed_network(3, 4)).compile().init(8)["W1"])
    limit = np.sqrt(6 / (3 + 4))
    assert np.all(np.abs(a["W1"]) <= limit) and np.all(a["b1"] == 0)


def test_const_nodes_feed_values_from_the_graph() -> None:
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(3,), init=2.0)
    g.add_node("c", op="const", value=[1.0, 2.0, 3.0])
    g.add_node("m", op="mul")
    g.add_edge("p", "m", arg=0)
    g.add_edge("c", "m", arg=1)
    g.add_node("L", op="sum")
    g.add_edge("m", "L")
    prog = gb.Network(g).compile()
    loss, grads = prog.value_and_grad(prog.init(), {})
    assert loss == 12.0
    np.testing.assert_array_equal(grads["p"], [1.0, 2.0, 3.0])


def test_source_spells_out_the_chain_rule_for_the_users_graph() -> None:
    source = gb.Network(gb.seed_network(3, 4)).compile().source()
    assert source.count("c = B") == 4  # one vjp per interior node, each once
    assert "# vjp of h1 = dense(x, W1, b1)" in source
    for param in ("W1", "b1", "W2", "b2", "W3", "b3"):
        assert source.count(f"# ∂L/∂{param}\n") == 1
    assert "x" not in [line.split("# ∂L/∂")[-1] for line in source.splitlines()]  # no ∂L/∂x


def test_node_names_never_become_code() -> None:
    """Names reach the generated source only as one-line comments, so any name is safe (a
    name with a newline breaks the node-name rule and never gets this far)."""
    evil = "h'); raise SystemExit('injected')  # \\ \"\"\" {x}"
    g = nx.DiGraph(loss=1)
    g.add_node(evil, op="param", shape=(2,), init=1.5)
    g.add_node(0, op="square")
    g.add_edge(evil, 0)
    g.add_node(1, op="sum")
    g.add_edge(0, 1)
    prog = gb.Network(g).compile()
    loss, grads = prog.value_and_grad(prog.init(), {})
    assert loss == 4.5
    np.testing.assert_array_equal(grads[evil], [3.0, 3.0])
    assert "raise SystemExit" not in "".join(
        line.split("#")[0] for line in prog.source().splitlines()
    )


def test_shared_constants_are_read_only(register: Any) -> None:
    """Consts and the seed ∂L/∂L are shared by every run: a rule that writes into them fails
    loudly instead of corrupting the next run."""

    class Scribbler(gb.Op):
        name = "scribbler"
        local_grads = ("1", "1")

        def forward(self, xp: Any, a: Any, b: Any) -> Any:
            return a + b

        def vjp(self, xp: Any, g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
            b *= 2  # writes into the const operand
            return g, g

    register(Scribbler)
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(), init=1.0)
    g.add_node("c", op="const", value=3.0)
    g.add_node("L", op="scribbler")
    g.add_edge("p", "L", arg=0)
    g.add_edge("c", "L", arg=1)
    prog = gb.Network(g).compile()
    with pytest.raises(gb.PluginError, match="at node 'L': vjp raised ValueError.*read-only"):
        prog.value_and_grad(prog.init(), {})
    assert prog.loss(prog.init(), {}) == 4.0
