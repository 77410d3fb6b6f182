"""Real JAX models imported with gb.from_jax run on graphbp's own ops, on NumPy and JAX, and
give jax.value_and_grad's loss and gradients: MLPs with every jax.nn activation and the usual
losses, residual attention blocks with an embedding lookup, a CNN on the digits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import graphbp as gb
from graphbp import jax_examples as ex

jax = pytest.importorskip("jax")
from jax_reference import check_import, x64  # noqa: E402  (imports jax)

DTYPES = ["float64", "float32"]

MLPS = [(act, ex.LOSSES[i % len(ex.LOSSES)]) for i, act in enumerate(ex.ACTIVATIONS)]
"""Every activation once, and every loss at least once (each pair with a different loss)."""


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("activation", "loss"), MLPS)
def test_mlp(activation: str, loss: str, dtype: str) -> None:
    fn, args = ex.mlp(activation, loss, dtype=dtype)
    net = check_import(fn, args, dtype)
    assert set(net.params) == {"W1", "b1", "W2", "b2"}
    assert set(net.inputs) == {"x", "y"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["mse", "sse", "ce_onehot", "ce_labels", "nll"])
def test_mlp_losses_with_a_deeper_relu_network(loss: str, dtype: str) -> None:
    fn, args = ex.mlp("relu", loss, sizes=(5, 7, 6, 4), batch=5, seed=3, dtype=dtype)
    check_import(fn, args, dtype)


ATTENTION = {
    "two heads, table[ids], causal, jit blocks, MSE": {},
    "one head, jnp.take, CE on labels, no jit": dict(
        blocks=1, heads=1, lookup="take", loss="ce_labels", causal=False, jit=False
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ATTENTION)
def test_residual_attention(case: str, dtype: str) -> None:
    fn, args = ex.residual_attention(dtype=dtype, **ATTENTION[case])  # type: ignore[arg-type]
    net = check_import(fn, args, dtype)
    blocks = len(args[0]["blocks"])
    assert "blocks.0.attn.q" in net.params and "ids" in net.inputs
    scopes = {str(net.graph.nodes[n].get("scope", "")) for n in net.graph}
    for i in range(blocks):
        assert any(f"block{i}" in s.split("/") for s in scopes), (i, sorted(scopes))
    sources = {net.graph.nodes[n].get("source") for n in net.graph}
    assert any(str(s).startswith("jax_examples.py:") for s in sources), sorted(map(str, sources))


CNNS = [  # every pair of layout, padding and pooling
    ("NHWC", "SAME", "max"),
    ("NHWC", "VALID", "avg"),
    ("NCHW", "SAME", "avg"),
    ("NCHW", "VALID", "max"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("layout", "padding", "pool"), CNNS)
def test_cnn_on_digits(layout: str, padding: str, pool: str, dtype: str) -> None:
    fn, args = ex.cnn(layout, padding, pool, dtype=dtype)
    net = check_import(fn, args, dtype)
    ops = {net.op_name(n) for n in net.graph}
    assert {"conv", f"reduce_window_{'max' if pool == 'max' else 'sum'}"} <= ops, sorted(ops)


def test_the_families_are_deterministic_and_typed() -> None:
    for make in (lambda d: ex.mlp(dtype=d), lambda d: ex.residual_attention(dtype=d)):
        (p1, *rest1), (p2, *rest2) = make("float32")[1], make("float32")[1]
        for a, b in zip(
            jax.tree_util.tree_leaves((p1, rest1)),
            jax.tree_util.tree_leaves((p2, rest2)),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
        assert {a.dtype for a in jax.tree_util.tree_leaves(p1)} == {np.dtype("float32")}
    images = ex.cnn("NCHW", dtype="float64")[1][1]
    assert images.shape == (4, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    assert not np.array_equal(ex.mlp(seed=1)[1][1], ex.mlp(seed=2)[1][1])
    with pytest.raises(gb.InputError, match="activation 'swish' is not supported"):
        ex.mlp("swish")
    with pytest.raises(gb.InputError, match="dtype 'float16'"):
        ex.cnn(dtype="float16")


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_train_lowers_the_loss_of_an_imported_mlp(backend: str) -> None:
    """gb.train on an imported network: batches of the traced batch size, a real target."""
    batch = 8
    fn, args = ex.mlp("tanh", "mse", sizes=(3, 12, 1), batch=batch, seed=4)
    with x64("float64"):
        net, params, _ = gb.from_jax(fn, *args)
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (8 * batch, 3))
    data = {"x": x, "y": np.sin(x[:, :1]) * x[:, 1:2] + 0.5 * x[:, 2:]}
    prog = net.compile(backend)

    def mean_loss(p: dict[str, Any]) -> float:
        parts = [{k: v[i : i + batch] for k, v in data.items()} for i in range(0, 8 * batch, batch)]
        return float(np.mean([float(prog.loss(p, part)) for part in parts]))

    before = mean_loss(params)
    trained, history = gb.train(
        prog, params, data, lr=0.05, epochs=40, batch_size=batch, optimizer="adam", progress=False
    )
    after = mean_loss(trained)
    assert len(history) == 40 and history[-1] < history[0]
    assert after < 0.5 * before, (before, after)
