"""Hypothesis builds random DAGs of built-in ops (fan-out, shared parameters, broadcasting)
and every parameter gradient must match float64 central differences, and jax.grad of the same
forward written directly in jax.numpy (an oracle graphbp did not write)."""

from __future__ import annotations

import importlib.util
from collections.abc import Hashable
from typing import Any

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import graphbp as gb
from graphbp.testing import check_network

UNARY = ["tanh", "sigmoid", "softplus", "square", "neg", "exp"]
BINARY = ["add", "sub", "mul"]
SHAPES = [(3,), (2, 3), (1, 3), ()]


@st.composite
def random_networks(draw: st.DrawFn) -> gb.Network:
    g = nx.DiGraph(loss="L")
    n_params = draw(st.integers(1, 3))
    for i in range(n_params):
        g.add_node(f"p{i}", op="param", shape=draw(st.sampled_from(SHAPES)), init="normal")
    g.add_node("x", op="input", shape=(2, 3))
    values = ["x", *(f"p{i}" for i in range(n_params))]
    for k in range(draw(st.integers(1, 7))):
        node = f"n{k}"
        if draw(st.booleans()):
            op = draw(st.sampled_from(UNARY))
            g.add_node(node, op=op)
            g.add_edge(draw(st.sampled_from(values)), node)
        else:
            op = draw(st.sampled_from(BINARY))
            a, b = draw(st.sampled_from(values)), draw(st.sampled_from(values))
            g.add_node(node, op=op)
            if a == b:  # the same value in both positions
                g.add_edge(a, node, arg=(0, 1))
            else:
                g.add_edge(a, node, arg=0)
                g.add_edge(b, node, arg=1)
        values.append(node)
    # Sum every sink (and fan out the last value once more) so that all branches count.
    sinks = [v for v in values if g.out_degree(v) == 0 and v != "x"] or [values[-1]]
    terms = []
    for i, s in enumerate(sinks):
        g.add_node(f"t{i}", op="mean" if i % 2 else "sum")
        g.add_edge(s, f"t{i}")
        terms.append(f"t{i}")
    total = terms[0]
    for i, t in enumerate(terms[1:]):
        g.add_node(f"s{i}", op="add")
        g.add_edge(total, f"s{i}", arg=0)
        g.add_edge(t, f"s{i}", arg=1)
        total = f"s{i}"
    g.add_node("L", op="tanh")  # keep the loss O(1), so round-off stays small
    g.add_edge(total, "L")
    return gb.Network(g)


SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is never flaky
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def moderate_example(net: gb.Network, seed: int) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Seeded parameters and input; examples whose values blow up are skipped."""
    rng = np.random.default_rng(seed)
    params = {p: 0.5 * rng.standard_normal(net.shapes[p]) for p in net.params}
    inputs = {"x": 0.5 * rng.standard_normal((2, 3))}
    with np.errstate(all="ignore"):  # exp of exp of ... may overflow: not a useful example
        values = net.compile().forward(params, inputs, list(net.ops))
    assume(all(np.all(np.abs(v) < 1e3) for v in values.values()))
    return params, inputs


@SETTINGS
@given(net=random_networks(), seed=st.integers(0, 2**16))
def test_random_dags_match_central_differences(net: gb.Network, seed: int) -> None:
    params, inputs = moderate_example(net, seed)
    report = check_network(net, params=params, inputs=inputs, seed=seed, rtol=1e-6)
    assert report.compared > 0


def jnp_forward(graph: nx.DiGraph, values: dict[Hashable, Any]) -> Any:
    """Evaluate the graph's loss with jax.numpy's own functions, not graphbp's plugins."""
    import jax
    import jax.numpy as jnp

    functions = {
        "tanh": jnp.tanh,
        "sigmoid": jax.nn.sigmoid,
        "softplus": jax.nn.softplus,
        "square": jnp.square,
        "neg": jnp.negative,
        "exp": jnp.exp,
        "add": jnp.add,
        "sub": jnp.subtract,
        "mul": jnp.multiply,
        "sum": jnp.sum,
        "mean": jnp.mean,
    }
    values = dict(values)
    for node in nx.topological_sort(graph):
        op = graph.nodes[node]["op"]
        if op in ("input", "param"):
            continue
        operands: dict[int, Any] = {}
        for source, _, data in graph.in_edges(node, data=True):
            arg = data.get("arg", 0)
            for position in arg if isinstance(arg, tuple) else (arg,):
                operands[position] = values[source]
        values[node] = functions[op](*(operands[i] for i in sorted(operands)))
    return values[graph.graph["loss"]]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
@SETTINGS
@given(net=random_networks(), seed=st.integers(0, 2**16))
def test_random_dags_match_jax_grad_of_the_same_forward_in_jax_numpy(
    net: gb.Network, seed: int
) -> None:
    import jax

    params, inputs = moderate_example(net, seed)
    _, grads = net.compile("numpy").value_and_grad(params, inputs)
    with jax.enable_x64(True):
        oracle = jax.grad(lambda p: jnp_forward(net.graph, {**p, **inputs}))(params)
    for name in net.params:
        # Round-off only: relative 1e-9, plus 1e-12 absolute for gradients that are small
        # because terms cancel (values stay below 1e3 and the loss is a tanh).
        np.testing.assert_allclose(grads[name], oracle[name], rtol=1e-9, atol=1e-12)
        assert grads[name].shape == oracle[name].shape


@SETTINGS
@given(net=random_networks(), seed=st.integers(0, 2**16))
def test_random_dags_chain_rule_paths_match_networkx_and_sum_to_the_gradient(
    net: gb.Network, seed: int, nx_paths: Any
) -> None:
    from graphbp.chain import Edge

    params, inputs = moderate_example(net, seed)
    prog = net.compile()
    values = prog.forward(params, inputs, net.order)
    _, grads = prog.value_and_grad(params, inputs)
    for param in net.params:
        paths = nx_paths(net, param)
        if not paths:  # a parameter the loss does not depend on: named as such
            with pytest.raises(gb.GraphError, match="no path to the loss"):
                gb.chain_rule(net, param)
            continue
        rule = gb.chain_rule(net, param, values=values, max_paths=len(paths))
        assert rule.edges == {Edge(a, b, k) for path in paths for a, b, k in path}
        assert rule.path_count == len(paths) and rule.complete
        np.testing.assert_allclose(rule.gradient, grads[param], rtol=1e-9, atol=1e-12)
