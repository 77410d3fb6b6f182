"""Every registered op × every installed backend against float64 central differences,
plus whole networks: the seed, fan-out, reuse and broadcasting."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from graphs import reuse_graph

import graphbp as gb
from graphbp.errors import GradientCheckError
from graphbp.op import defines_vjp, runs_on
from graphbp.testing import (
    check_network,
    check_op,
    check_op_autodiff,
    handwritten_grads,
    installed_backends,
    random_inputs,
)

BACKENDS = installed_backends()


OPS = gb.ops()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", OPS)
def test_op_vjp_matches_central_differences(name: str, backend: str) -> None:
    if not runs_on(gb.get_op(name), backend):
        pytest.skip(f"op {name!r} runs only on {gb.get_op(name).backends}")
    report = check_op(name, backend)
    assert report.compared > 0
    assert report.max_rel_error < 1e-6


@pytest.mark.parametrize("name", OPS)
def test_op_vjp_matches_jax_autodiff_of_its_forward(name: str) -> None:
    """The second oracle: JAX differentiates the plugin's own forward (float64)."""
    pytest.importorskip("jax")
    if not defines_vjp(gb.get_op(name)):
        pytest.skip(f"op {name!r} has no vjp of its own: jax.vjp is its rule")
    report = check_op_autodiff(name)
    assert report.compared > 0
    assert report.max_rel_error < 1e-9


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_network_gradients_match_to_1e_6(backend: str) -> None:
    net = gb.Network(gb.seed_network(10, 16, 1))
    report = check_network(net, backend, directions=5)
    assert set(report.worst) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    assert report.compared >= 10 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    assert report.max_rel_error < 1e-6


def test_seed_gradient_matches_the_textbook_formulas(rng: np.random.Generator) -> None:
    """The traversal equals backprop written out by hand for h1=σ(xW1+b1), ... L=Σ‖y−ŷ‖²
    (graphbp.testing.handwritten_grads, also the benchmark's baseline)."""
    prog = gb.Network(gb.seed_network(3, 5, 2)).compile()
    p = prog.init(seed=3)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    loss, grads = prog.value_and_grad(p, {"x": x, "y": y})
    expected_loss, expected = handwritten_grads(p, x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert sorted(grads) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fan_out_and_shared_parameters_sum_their_contributions(backend: str) -> None:
    report = check_network(gb.Network(reuse_graph()), backend)
    assert report.max_rel_error < 1e-6


@pytest.mark.parametrize("graph_type", [nx.DiGraph, nx.MultiDiGraph])
def test_value_used_twice_by_one_op_gets_both_contributions(graph_type: type) -> None:
    """d(h·h)/dh = 2h: dropping either position's contribution would halve it. A DiGraph
    says arg=(0, 1) on one edge; a MultiDiGraph has one edge per position."""
    g = graph_type(loss="L")
    g.add_node("h", op="param", shape=(4,), init="normal")
    g.add_node("sq", op="mul")
    if g.is_multigraph():
        g.add_edge("h", "sq", arg=0)
        g.add_edge("h", "sq", arg=1)
    else:
        g.add_edge("h", "sq", arg=(0, 1))
    g.add_node("L", op="sum")
    g.add_edge("sq", "L")
    prog = gb.Network(g).compile()
    p = prog.init(seed=1)
    _, grads = prog.value_and_grad(p, {})
    np.testing.assert_allclose(grads["h"], 2 * p["h"], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_broadcast_parameters_get_gradients_of_their_own_shape(backend: str) -> None:
    g = nx.DiGraph(loss="L")
    g.add_node("x", op="input", shape=(None, 2, 3))
    g.add_node("row", op="param", shape=(3,), init="normal")
    g.add_node("col", op="param", shape=(2, 1), init="normal")
    g.add_node("s", op="param", shape=(), init=0.5)
    for node, a, b in [("a", "x", "row"), ("m", "a", "col"), ("d", "m", "s")]:
        g.add_node(node, op={"a": "add", "m": "mul", "d": "div"}[node])
        g.add_edge(a, node, arg=0)
        g.add_edge(b, node, arg=1)
    g.add_node("L", op="mean")
    g.add_edge("d", "L")
    net = gb.Network(g)
    prog = net.compile(backend)
    p = prog.init(0)
    _, grads = prog.value_and_grad(p, random_inputs(net, np.random.default_rng(0)))
    assert {k: tuple(v.shape) for k, v in grads.items()} == {"row": (3,), "col": (2, 1), "s": ()}
    assert check_network(net, backend).max_rel_error < 1e-6


class _WrongSigmoid(gb.Op):
    """σ with the derivative of tanh: a plausible bug the checker must catch."""

    name = "wrong_sigmoid"
    label = "σ?"
    local_grads = ("1−σ²",)

    def forward(self, xp, z):  # type: ignore[no-untyped-def]
        return 1 / (1 + xp.exp(-z))

    def vjp(self, xp, g, out, z):  # type: ignore[no-untyped-def]
        return (g * (1 - out * out),)


def test_checker_reports_the_failing_operand_element_and_both_values() -> None:
    with pytest.raises(GradientCheckError) as info:
        check_op(_WrongSigmoid())
    message = str(info.value)
    assert "op 'wrong_sigmoid'" in message
    assert "operand 0[0, 0]" in message
    assert "analytic" in message and "numeric" in message


def test_network_checker_names_the_parameter_whose_gradient_is_wrong(register) -> None:  # type: ignore[no-untyped-def]
    register(_WrongSigmoid)
    g = gb.seed_network(3, 4, 1)
    g.nodes["h2"]["activation"] = "wrong_sigmoid"
    with pytest.raises(GradientCheckError, match="parameter 'W1'"):
        check_network(gb.Network(g))


def test_tiny_gradients_are_judged_against_round_off_not_their_size(register) -> None:  # type: ignore[no-untyped-def]
    """Near saturation ∂L/∂p is ~3e-6: the check must pass it (hypothesis once found a
    direction short enough to fail a correct gradient), and still catch a factor 2."""
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(), init=0.1)
    g.add_node("c", op="const", value=6.0)
    for node, op in [("e", "exp"), ("a", "add"), ("L", "tanh")]:
        g.add_node(node, op=op)
    g.add_edge("p", "e")
    g.add_edge("e", "a", arg=0)
    g.add_edge("c", "a", arg=1)
    g.add_edge("a", "L")
    net = gb.Network(g)
    _, grads = net.compile().value_and_grad(net.compile().init(), {})
    assert 1e-7 < grads["p"] < 1e-5
    for seed in (7, 12):  # directions of length < 1
        assert check_network(net, seed=seed).max_rel_error < 1e-6

    class DoubledExp(gb.Op):
        name = "doubled_exp"
        local_grads = ("2exp(x)",)

        def forward(self, xp, x):  # type: ignore[no-untyped-def]
            return xp.exp(x)

        def vjp(self, xp, g, out, x):  # type: ignore[no-untyped-def]
            return (2 * g * out,)

    register(DoubledExp)
    nx.set_node_attributes(g, {"e": "doubled_exp"}, "op")
    with pytest.raises(GradientCheckError, match="parameter 'p'.*more than the"):
        check_network(gb.Network(g))
