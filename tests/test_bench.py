"""The benchmark compares like with like: its hand-written step is the same computation
(its gradients are checked against graphbp's in test_gradients.py)."""

from __future__ import annotations

from typing import Any

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


def test_importing_a_jax_model_is_timed_and_counted() -> None:
    pytest.importorskip("jax")
    from graphbp import jax_examples
    from graphbp.bench import bench_import, imported_models

    assert sorted(imported_models()) == ["cnn", "stack"]
    row = bench_import(lambda dtype: jax_examples.residual_attention(2, dtype=dtype), repeats=2)
    net, params, _ = gb.from_jax(*_called(jax_examples.residual_attention(2)))
    assert row["nodes"] == len(net.graph) and row["params"] == len(params) == len(net.params)
    assert row["op_nodes"] == len(net.ops) < row["nodes"]
    assert row["best_s"] > 0 and row["first_s"] > 0


def _called(example: Any) -> tuple[Any, ...]:
    fn, args = example
    return (fn, *args)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_imported_models_training_step_is_timed_on_both_backends(dtype: str) -> None:
    pytest.importorskip("jax")
    from graphbp import jax_examples
    from graphbp.bench import bench_imported_step

    row = bench_imported_step(lambda d: jax_examples.cnn(batch=4, dtype=d), dtype, repeats=1)
    assert row["dtype"] == dtype and row["jax_us"] > 0 and row["graphbp_us"] > 0
    assert row["ratio"] == pytest.approx(row["graphbp_us"] / row["jax_us"])
    assert row["graphbp_numpy_us"] > 0 and row["first_call_s"] > 0 and row["hand_first_call_s"] > 0


def test_the_imported_tables_have_a_row_per_model_and_dtype(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("jax")
    from graphbp import jax_examples
    from graphbp.bench import run_imported

    models = {
        "mlp": lambda d: jax_examples.mlp("gelu", "ce_labels", dtype=d),
        "attn": lambda d: jax_examples.residual_attention(1, dtype=d),
    }
    run_imported(models, ("float32", "float64"), repeats=1)
    lines = capsys.readouterr().out.splitlines()
    imports = [line.split() for line in lines if line.startswith(("mlp ", "attn "))]
    assert [r[0] for r in imports] == ["mlp", "attn", "mlp", "mlp", "attn", "attn"]
    assert [r[1] for r in imports[2:]] == ["float32", "float64"] * 2
    for row in imports[2:]:
        hand, ours, ratio = (float(v.rstrip("µs×")) for v in row[2:5])
        # times are printed to the µs, the ratio to 0.01: it lies within their rounding
        low, high = (ours - 0.5) / (hand + 0.5), (ours + 0.5) / (hand - 0.5)
        assert low - 0.005 <= ratio <= high + 0.005, (hand, ours, ratio)
