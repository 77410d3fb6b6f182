"""Operands that get no gradient (local derivative "0": a comparison's, select_n's predicate)
are on no chain-rule path: counts, listed paths, drawings and the page skip them, the engine
evaluates no derivative there, and check_op holds a vjp to the declaration."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from graphs import gradient_paths, leaky_where_graph

import graphbp as gb
from graphbp.chain import Edge, Flow
from graphbp.errors import GradientCheckError
from graphbp.render import HIGHLIGHT, edge_id
from graphbp.testing import check_op

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz dot")


def _imported() -> tuple[gb.Network, dict[str, Any], dict[str, Any]]:
    """A JAX MLP with leaky_relu, elu and a where on a threshold parameter."""
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")

    def loss(p: dict[str, Any], x: Any) -> Any:
        h = jax.nn.leaky_relu(x @ p["W"] + p["b"])
        h = jax.nn.elu(h @ p["V"])
        return jnp.sum(jnp.where(h > p["t"], h, 0.0) ** 2)

    rng = np.random.default_rng(0)
    params = {
        "W": rng.standard_normal((3, 4)),
        "b": np.zeros(4),
        "V": rng.standard_normal((4, 2)),
        "t": np.array(0.1),
    }
    return gb.from_jax(loss, params, rng.standard_normal((5, 3)))


def _networks() -> list[gb.Network]:
    return [gb.Network(leaky_where_graph()), _imported()[0]]


def test_the_hand_built_leaky_where_counts_only_the_paths_gradient_flows_along() -> None:
    net = gb.Network(leaky_where_graph())
    rule = gb.chain_rule(net, "w")
    assert rule.path_count == 2  # through on_true, and through the leak; not the predicate
    assert (
        len(gradient_paths(net, "w", every_edge=True)) == 3
    )  # what counting every edge would give
    assert Edge("above", "h", 0) not in rule.edges
    assert Edge("z", "above", 0) not in rule.edges
    assert "above" not in Flow(net).relevant
    with pytest.raises(gb.GraphError, match=r"'t'.*only through operands that get no gradient"):
        gb.chain_rule(net, "t")


@pytest.mark.parametrize("k", [0, 1])
def test_counts_listed_paths_and_explain_equal_networkx_on_gradient_edges(k: int) -> None:
    net = _networks()[k]
    flow = Flow(net)
    fewer = False
    for param in net.params:
        paths = gradient_paths(net, param)
        fewer |= len(paths) < len(gradient_paths(net, param, every_edge=True))
        if not paths:
            assert param not in flow.params
            continue
        rule = gb.chain_rule(net, param, max_paths=10_000, flow=flow)
        assert rule.path_count == len(paths) and rule.complete
        assert rule.edges == {Edge(a, b, key) for path in paths for a, b, key in path}
    assert fewer  # the network has paths through gradient-free operands, now left out
    cost = gb.explain(net, flow)
    assert cost.paths == sum(len(gradient_paths(net, p)) for p in net.params)
    plan = net.compile().plan(with_grad=True)
    assert cost.backprop == sum(len(step.targets) for step in plan.backward)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_contributions_still_sum_to_the_gradient_and_a_cut_off_parameter_gets_zero(
    backend: str,
) -> None:
    if backend == "jax":
        pytest.importorskip("jax")
    net, params, inputs = _imported()
    prog = net.compile(backend, "float64")
    values = prog.forward(params, inputs, net.order)
    _, grads = prog.value_and_grad(params, inputs)
    for param in ("W", "b", "V"):
        rule = gb.chain_rule(net, param, values=values, max_paths=10_000)
        assert rule.complete
        np.testing.assert_allclose(rule.gradient, grads[param], rtol=1e-12, atol=1e-12)
    assert np.all(np.asarray(grads["t"]) == 0) and np.shape(grads["t"]) == ()


@needs_dot
def test_the_drawing_highlights_the_gradient_paths_and_dashes_the_predicate() -> None:
    net = gb.Network(leaky_where_graph())
    svg = gb.render(net, wrt="w").pipe(format="svg")
    root = ET.fromstring(svg)
    edges = {g.get("id", ""): g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"}

    def path_of(group: ET.Element) -> ET.Element:
        return next(e for e in group.iter() if e.tag == f"{SVG}path")

    hot = {eid for eid, group in edges.items() if path_of(group).get("stroke") == HIGHLIGHT}
    assert hot == {edge_id(net, Edge(a, b, k)) for p in gradient_paths(net, "w") for a, b, k in p}
    for edge in (Edge("above", "h", 0), Edge("z", "above", 0), Edge("t", "above", 1)):
        drawn = path_of(edges[edge_id(net, edge)])
        assert drawn.get("stroke") != HIGHLIGHT and drawn.get("stroke-dasharray")


class _LeakyDeclaredZero(gb.Op):
    """Declares its second operand gradient-free, yet passes it gradient: a broken plugin."""

    name = "leaky_declared_zero"
    local_grads = ("1", "0")

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return a + 0 * b

    def vjp(self, xp: Any, g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
        return g, 1e-3 * g


def test_check_op_holds_a_vjp_to_its_declared_zero() -> None:
    with pytest.raises(
        GradientCheckError, match=r'operand 1: its local derivative is declared "0"'
    ):
        check_op(_LeakyDeclaredZero(), "numpy")


@pytest.mark.parametrize("op", ["gt", "select_n", "gather", "convert_element_type", "sign"])
def test_the_builtin_ops_declaring_zero_pass_the_check(op: str) -> None:
    assert check_op(op, "numpy").compared > 0
