"""Hypothesis builds random DAGs of built-in ops (fan-out, shared parameters, broadcasting)
and every parameter gradient must match float64 central differences."""

from __future__ import annotations

import networkx as nx
import numpy as np
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


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is never flaky
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(net=random_networks(), seed=st.integers(0, 2**16))
def test_random_dags_match_central_differences(net: gb.Network, seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = {p: 0.5 * rng.standard_normal(net.shapes[p]) for p in net.params}
    inputs = {"x": 0.5 * rng.standard_normal((2, 3))}
    prog = net.compile()
    with np.errstate(all="ignore"):  # exp of exp of ... may overflow: not a useful example
        values = prog.forward(params, inputs, [n for n in net.order if not net.ops[n].leaf])
    assume(all(np.all(np.abs(v) < 1e3) for v in values.values()))
    report = check_network(net, params=params, inputs=inputs, seed=seed, rtol=1e-6)
    assert report.compared > 0
