"""The benchmark compares like with like: its hand-written step is the same computation
(its gradients are checked against graphbp's in test_gradients.py)."""

from __future__ import annotations

import numpy as np
import pytest

import graphbp as gb
from graphbp.bench import bench_chain, chain_graph, seed_data
from graphbp.optim import SGD
from graphbp.testing import handwritten_step


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


def test_handwritten_jax_loss_is_the_seed_network_and_the_jax_bench_reports() -> None:
    jax = pytest.importorskip("jax")
    from graphbp.bench import _bench_seed_jax_size, seed_loss_jax

    prog = gb.Network(gb.seed_network(6, 5, 2)).compile("jax")
    data = seed_data(9, 6, 2)
    params = prog.init(0)
    loss, grads = prog.value_and_grad(params, data)
    with jax.enable_x64(True):
        hand_loss, hand_grads = jax.value_and_grad(seed_loss_jax)(params, data["x"], data["y"])
    assert float(hand_loss) == pytest.approx(float(loss), rel=1e-13)
    for k in params:
        np.testing.assert_allclose(hand_grads[k], grads[k], rtol=1e-11, atol=1e-14)
    row = _bench_seed_jax_size((4, 3, 5, 2), repeats=1)
    assert row["ratio"] > 0 and row["graphbp_numpy_us"] > 0 and row["first_call_s"] > 0


def test_the_jax_users_own_step_around_prog_loss_is_timed_against_the_hand_written_one() -> None:
    pytest.importorskip("jax")
    from graphbp.bench import bench_jax_composition

    (row,) = bench_jax_composition(repeats=1, sizes=[(4, 3, 5, 2)])
    assert row["size"] == (4, 3, 5, 2) and row["jax_us"] > 0 and row["users_us"] > 0
    assert row["ratio"] == pytest.approx(row["users_us"] / row["jax_us"])


def test_first_gradient_times_each_stage_of_a_chain() -> None:
    from graphbp.bench import first_gradient

    row = first_gradient(50)
    assert row["length"] == 50
    stages = row["network_s"] + row["compile_s"] + row["first_run_s"]
    assert min(row["network_s"], row["compile_s"], row["first_run_s"]) > 0
    assert row["total_s"] == pytest.approx(stages)
