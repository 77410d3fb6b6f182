"""The benchmark compares like with like: its hand-written step is the same computation
(its gradients are checked against graphbp's in test_gradients.py)."""

from __future__ import annotations

import numpy as np

import graphbp as gb
from graphbp.bench import bench_chain, chain_graph, handwritten_step, seed_data
from graphbp.optim import SGD


def test_handwritten_step_equals_the_graphbp_step() -> None:
    prog = gb.Network(gb.seed_network(6, 5, 2)).compile()
    data = seed_data(9, 6, 2)
    params = prog.init(0)
    hand = {k: v.copy() for k, v in params.items()}
    loss_hand = handwritten_step(hand, data["x"], data["y"], 0.01)
    loss, grads = prog.value_and_grad(params, data)
    stepped, _ = SGD(0.01).update(params, grads, ())
    assert loss_hand == np.float64(loss)
    for k in params:
        np.testing.assert_allclose(hand[k], stepped[k], rtol=1e-12, atol=1e-15)


def test_chain_benchmark_graph_and_report() -> None:
    net = gb.Network(chain_graph(10))
    assert [net.ops[n].name for n in net.order[1:3]] == ["tanh", "sigmoid"]
    row = bench_chain(10, repeats=1)
    assert row["length"] == 10 and row["graphbp_us_per_op"] > 0 and row["numpy_us_per_op"] > 0
    assert row["first_call_s"] > 0
