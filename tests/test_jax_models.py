"""Real JAX models imported with gb.from_jax run on graphbp's own ops, on NumPy and JAX, and
give jax.value_and_grad's loss and gradients: MLPs with every jax.nn activation and the usual
losses, residual attention blocks with an embedding lookup, a CNN on the digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphbp as gb
from graphbp import jax_examples as ex

jax = pytest.importorskip("jax")
from jax_reference import check_import, x64  # noqa: E402  (imports jax)

MLPS = [(act, ex.LOSSES[i % len(ex.LOSSES)], "float64") for i, act in enumerate(ex.ACTIVATIONS)]
"""Every activation once, and every loss at least once (each pair with a different loss) in
float64; in float32 the activations made of several primitives, with every loss."""
MLPS += [
    ("gelu", "mse", "float32"),
    ("gelu_exact", "sse", "float32"),
    ("elu", "ce_onehot", "float32"),
    ("softplus", "ce_labels", "float32"),
    ("silu", "nll", "float32"),
]


@pytest.mark.parametrize(("activation", "loss", "dtype"), MLPS)
def test_mlp(activation: str, loss: str, dtype: str) -> None:
    fn, args = ex.mlp(activation, loss, dtype=dtype)
    net = check_import(fn, args, dtype)
    assert set(net.params) == {"W1", "b1", "W2", "b2"}
    assert set(net.inputs) == {"x", "y"}


@pytest.mark.parametrize("loss", ["ce_onehot", "ce_labels", "nll"])
def test_classifier_losses_on_a_deeper_relu_network(loss: str) -> None:
    fn, args = ex.mlp("relu", loss, sizes=(5, 7, 6, 4), batch=5, seed=3)
    check_import(fn, args, "float64")


ATTENTION = {
    "two heads, table[ids], causal, jit blocks, MSE": {},
    "one head, jnp.take, CE on labels, no jit": dict(
        blocks=1, heads=1, lookup="take", loss="ce_labels", causal=False, jit=False
    ),
}


@pytest.mark.parametrize(
    ("case", "dtype"),
    [(case, "float64") for case in ATTENTION] + [(next(iter(ATTENTION)), "float32")],
)
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


CNNS = [  # every pair of layout, padding and pooling in float64; each pooling in float32
    ("NHWC", "SAME", "max", "float64"),
    ("NHWC", "VALID", "avg", "float64"),
    ("NCHW", "SAME", "avg", "float64"),
    ("NCHW", "VALID", "max", "float64"),
    ("NHWC", "SAME", "max", "float32"),
    ("NCHW", "SAME", "avg", "float32"),
]


@pytest.mark.parametrize(("layout", "padding", "pool", "dtype"), CNNS)
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
    with pytest.raises(gb.InputError, match="batch=0"):
        ex.residual_attention(batch=0)
    assert ex.mlp(dtype=np.float32)[1][1].dtype == np.float32  # a NumPy dtype works too


def _regression(rng: np.random.Generator, rows: int) -> dict[str, Any]:
    x = rng.uniform(-2, 2, (rows, 3))
    return {"x": x, "y": np.sin(x[:, :1]) * x[:, 1:2] + 0.5 * x[:, 2:]}


def _classification(rng: np.random.Generator, rows: int) -> dict[str, Any]:
    x = rng.uniform(-2, 2, (rows, 3))
    return {"x": x, "y": (x[:, 0] * x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1)}


TASKS = {"mse": _regression, "ce_labels": _classification}


@pytest.mark.parametrize("loss", TASKS)
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_train_lowers_the_loss_of_an_imported_mlp(backend: str, loss: str) -> None:
    """gb.train on an imported network fed with the user's own data (under the argument
    names only): batches of the traced batch size, a real target."""
    batch, rows = 8, 64
    fn, args = ex.mlp("tanh", loss, sizes=(3, 12, 3 if loss == "ce_labels" else 1), batch=batch)
    with x64("float64"):
        net, params, _ = gb.from_jax(fn, *args)
    data = TASKS[loss](np.random.default_rng(5), rows)
    prog = net.compile(backend)

    def mean_loss(p: dict[str, Any]) -> float:
        parts = [{k: v[i : i + batch] for k, v in data.items()} for i in range(0, rows, batch)]
        return float(np.mean([float(prog.loss(p, part)) for part in parts]))

    before = mean_loss(params)
    trained, history = gb.train(
        prog, params, data, lr=0.05, epochs=40, batch_size=batch, optimizer="adam", progress=False
    )
    after = mean_loss(trained)
    assert len(history) == 40 and history[-1] < history[0]
    assert after < 0.5 * before, (before, after)


FAMILIES = {
    "cnn": (lambda: ex.cnn("NCHW", "SAME", "max", batch=2), "conv1.w"),
    "attention": (lambda: ex.residual_attention(1, batch=2), "blocks.0.attn.q"),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_an_imported_model_round_trips_json_and_explains_its_gradient(
    family: str, tmp_path: Path
) -> None:
    """What works on a hand-built network works on an imported model: node-link JSON gives
    the same network back, the chain rule's paths sum to the gradient, the drawing shows the
    scopes, explain counts every node."""
    make, wrt = FAMILIES[family]
    fn, args = make()
    with x64("float64"):
        net, params, inputs = gb.from_jax(fn, *args)
    prog = net.compile("numpy")
    loss, grads = prog.value_and_grad(params, inputs)

    net.to_json(tmp_path / "net.json")
    back = gb.Network.from_json(tmp_path / "net.json")
    assert back.order == net.order
    loss2, grads2 = back.compile("numpy").value_and_grad(params, inputs)
    assert float(loss2) == float(loss)
    for name in grads:
        np.testing.assert_array_equal(grads2[name], grads[name])

    values = prog.forward(params, inputs, net.order)
    count = gb.chain_rule(net, wrt).path_count
    assert 1 < count <= 1000
    rule = gb.chain_rule(net, wrt, values=values, max_paths=count)
    assert rule.complete
    total = sum(np.asarray(p.contribution) for p in rule.paths)
    np.testing.assert_allclose(total, grads[wrt], rtol=1e-10, atol=1e-12)
    assert gb.explain(net).nodes == len(net.order)
    source = gb.render(net, wrt=wrt).source
    if family == "attention":
        assert "block0" in source
