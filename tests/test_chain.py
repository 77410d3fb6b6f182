"""The chain rule on the graph: paths, factors, reuse and cost, each checked against an
independent networkx computation; path contributions against backprop's own gradient."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
from graphs import NETWORKS, example_inputs

import graphbp as gb
from graphbp.chain import Edge, Flow


def test_the_seed_formula_has_the_four_textbook_factors_and_no_weight_to_weight() -> None:
    net = gb.Network(gb.seed_network(10, 16, 1))
    rule = gb.chain_rule(net, "W1")
    assert rule.text == "∂L/∂W1 = ∂L/∂ŷ · ∂ŷ/∂h2 · ∂h2/∂h1 · ∂h1/∂W1"
    (path,) = rule.paths
    assert [f.text for f in path.factors] == ["∂L/∂ŷ", "∂ŷ/∂h2", "∂h2/∂h1", "∂h1/∂W1"]
    assert path.nodes == ("L", "yhat", "h2", "h1", "W1")
    assert rule.latex.startswith(r"\frac{\partial L}{\partial W_{1}} = ")
    assert rule.latex.count(r"\frac") == 5
    for param in net.params:
        for p in gb.chain_rule(net, param).paths:
            for e in p.edges:  # paths run through values, never from weight to weight
                assert not (net.kind[e.source] == net.kind[e.target] == "param")
            assert [n for n in p.nodes if net.kind[n] == "param"] == [param]


@pytest.mark.parametrize("name", NETWORKS)
def test_highlighted_edges_and_path_counts_equal_networkx_paths(name: str, nx_paths: Any) -> None:
    net = gb.Network(NETWORKS[name]())
    for param in net.params:
        paths = nx_paths(net, param)
        rule = gb.chain_rule(net, param, max_paths=10_000)
        assert rule.path_count == len(paths) and rule.complete
        assert rule.edges == {Edge(a, b, k) for path in paths for a, b, k in path}
        listed = sorted(tuple(reversed(p.edges)) for p in rule.paths)
        assert listed == sorted(tuple(Edge(a, b, k) for a, b, k in path) for path in paths)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("name", NETWORKS)
def test_path_contributions_sum_to_the_gradient(name: str, backend: str) -> None:
    if backend == "jax":
        pytest.importorskip("jax")
    net = gb.Network(NETWORKS[name]())
    prog = net.compile(backend)
    rng = np.random.default_rng(3)
    inputs = example_inputs(net, rng)
    params = prog.init(1)
    values = prog.forward(params, inputs, net.order)
    _, grads = prog.value_and_grad(params, inputs)
    for param in net.params:
        rule = gb.chain_rule(net, param, values=values)
        assert len(rule.paths) == rule.path_count
        for path in rule.paths:
            assert path.contribution.shape == np.shape(grads[param])
        np.testing.assert_allclose(rule.gradient, grads[param], rtol=1e-9, atol=1e-12)
    if name == "reuse":  # several paths, each a real share: no single path is the gradient
        rule = gb.chain_rule(net, "W", values=values)
        assert rule.path_count == 4  # via h·h's two positions, via h·s, via x·W
        for path in rule.paths:
            assert not np.allclose(path.contribution, grads["W"])


def test_reuse_counts_equal_the_parameters_below_each_value() -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    assert Flow(net).reuse() == {"yhat": 6, "h2": 4, "h1": 2}
    for name in NETWORKS:
        net = gb.Network(NETWORKS[name]())
        g = net.graph
        independent = {
            n: sum(nx.has_path(g, p, n) for p in net.params)
            for n in net.order
            if n in net.ops and n != net.loss and nx.has_path(g, n, net.loss)
        }
        assert Flow(net).reuse() == {n: k for n, k in independent.items() if k > 1}


@pytest.mark.parametrize("name", NETWORKS)
def test_explain_counts_what_the_engine_evaluates_and_what_paths_would(
    name: str, nx_paths: Any
) -> None:
    net = gb.Network(NETWORKS[name]())
    cost = gb.explain(net)
    plan = net.compile().plan(with_grad=True)
    assert cost.backprop == sum(len(step.targets) for step in plan.backward)
    paths = {p: nx_paths(net, p) for p in net.params}
    assert cost.paths == sum(len(v) for v in paths.values())
    assert cost.path_by_path == sum(len(path) for v in paths.values() for path in v)
    assert str(cost).count("\n") >= 4


def test_diamond_paths_grow_as_two_to_the_k_while_backprop_stays_linear() -> None:
    for k in (1, 2, 5, 10, 40):
        cost = gb.explain(gb.Network(gb.diamond_chain(k)))
        assert cost.paths == 2**k
        assert cost.backprop == 4 * k + 1
        assert cost.path_by_path == (2 * k + 1) * 2**k


def test_the_formula_is_capped_but_highlighting_and_counts_stay_exact() -> None:
    net = gb.Network(gb.diamond_chain(30))
    rule = gb.chain_rule(net, "w", max_paths=8)
    assert len(rule.paths) == 8 and rule.path_count == 2**30 and not rule.complete
    assert "(1,073,741,816 more paths)" in rule.text
    relevant = {Edge(s, t, i) for t in net.order for i, s in enumerate(net.operands[t])}
    assert rule.edges == relevant  # every edge of the chain lies on some path
    assert rule.gradient is None


def test_wrt_must_be_a_parameter_with_a_path_to_the_loss() -> None:
    g = gb.seed_network(3, 4, 1)
    g.add_node("V", op="param", shape=(4,))
    g.add_node("unused", op="add")
    g.add_edge("h1", "unused", arg=0)
    g.add_edge("V", "unused", arg=1)
    net = gb.Network(g)
    with pytest.raises(gb.GraphError, match=r"wrt='x' is not a parameter \(op 'input'\).*'W1'"):
        gb.chain_rule(net, "x")
    with pytest.raises(gb.GraphError, match=r"'nope' is not a parameter \(not in the graph\)"):
        gb.chain_rule(net, "nope")
    with pytest.raises(gb.GraphError, match=r"parameter 'V' .*no path to the loss 'L'.*'b3'"):
        gb.chain_rule(net, "V")


def test_contributions_need_every_value_on_the_path() -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    prog = net.compile()
    values = prog.forward(prog.init(), {"x": np.ones((2, 3)), "y": np.ones((2, 1))}, ["L"])
    with pytest.raises(gb.InputError, match=r"no value for node 'yhat' \(op 'affine'\)"):
        gb.chain_rule(net, "W1", values=values)


def test_symbols_write_indices_as_subscripts_and_hats_as_hats() -> None:
    from graphbp.chain import symbol

    assert symbol("W1") == ("W1", "W<SUB>1</SUB>", "W_{1}")
    assert symbol("yhat") == ("ŷ", "ŷ", r"\hat{y}")
    assert symbol("<b>&") == ("<b>&", "&lt;b&gt;&amp;", r"\mathrm{{<}b{>}\&}")
    assert symbol(7).text == "7"
