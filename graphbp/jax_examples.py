"""Small, realistic JAX models to import with ``gb.from_jax``: MLPs, attention, a CNN.

Each family returns ``(loss_fn, args)``: a JAX function returning a scalar loss and its
arguments (NumPy arrays, deterministic from ``seed``), parameters first, so that
``gb.from_jax(loss_fn, *args)`` and ``jax.value_and_grad(loss_fn)(*args)`` see the same
model. Tests, ``graphbp bench`` and the README use them. JAX is imported only when a
loss function is built; float64 arguments need JAX's 64-bit mode where they are traced
(``with jax.enable_x64(True):``).

Example:
    >>> loss_fn, args = mlp("gelu", "mse")
    >>> net, params, inputs = gb.from_jax(loss_fn, *args)   # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from graphbp.errors import InputError

Example = tuple[Callable[..., Any], tuple[Any, ...]]
"""A loss function and the arguments to call it with (parameters first)."""

ACTIVATIONS = (
    "sigmoid",
    "tanh",
    "relu",
    "gelu",
    "gelu_exact",
    "silu",
    "softplus",
    "elu",
    "leaky_relu",
)
"""The ``jax.nn`` activations of :func:`mlp` (``gelu``: the tanh form; ``gelu_exact``: erf)."""

LOSSES = ("mse", "sse", "ce_onehot", "ce_labels", "nll")
"""The losses of :func:`mlp`: mean and summed squared error; softmax cross-entropy against
one-hot targets and against integer labels (``jax.nn.one_hot``); the negative log-likelihood
of integer labels picked from ``jax.nn.log_softmax`` (``jnp.take_along_axis``)."""

DTYPES = ("float64", "float32")


def _rng(seed: int, dtype: str, batch: int) -> np.random.Generator:
    """The seeded generator of a family's arguments, once ``dtype`` and ``batch`` are valid."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch={batch!r}: give a whole number of rows, at least 1")
    return np.random.default_rng(seed)


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{what} {value!r} is not supported; choose one of {', '.join(allowed)}")


def _weights(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, dtype: str) -> Any:
    """Normal weights scaled by 1/√fan_in (LeCun), as a NumPy array of ``dtype``."""
    return (rng.standard_normal(shape) / math.sqrt(fan_in)).astype(dtype)


def _biases(rng: np.random.Generator, size: int, dtype: str) -> Any:
    return (0.1 * rng.standard_normal(size)).astype(dtype)


def _targets(rng: np.random.Generator, loss: str, rows: int, classes: int, dtype: str) -> Any:
    """Regression targets, one-hot rows or integer labels, as ``loss`` needs."""
    if loss in ("mse", "sse"):
        return rng.standard_normal((rows, classes)).astype(dtype)
    labels = rng.integers(0, classes, rows).astype(np.int32)
    return np.eye(classes, dtype=dtype)[labels] if loss == "ce_onehot" else labels


def _loss(loss: str, out: Any, y: Any) -> Any:
    """The scalar ``loss`` of predictions (or logits) ``out`` against ``y`` (see LOSSES)."""
    import jax
    import jax.numpy as jnp

    if loss == "mse":
        return jnp.mean((out - y) ** 2)
    if loss == "sse":
        return jnp.sum((out - y) ** 2)
    logp = jax.nn.log_softmax(out, axis=-1)
    if loss == "nll":
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))
    onehot = y if loss == "ce_onehot" else jax.nn.one_hot(y, out.shape[-1], dtype=out.dtype)
    return -jnp.mean(jnp.sum(onehot * logp, axis=-1))


def _activation(name: str) -> Callable[[Any], Any]:
    import jax

    if name == "gelu":
        return lambda z: jax.nn.gelu(z, approximate=True)
    if name == "gelu_exact":
        return lambda z: jax.nn.gelu(z, approximate=False)
    fn: Callable[[Any], Any] = getattr(jax.nn, name)
    return fn


def mlp(
    activation: str = "gelu",
    loss: str = "mse",
    *,
    sizes: tuple[int, ...] = (8, 16, 3),
    batch: int = 6,
    seed: int = 0,
    dtype: str = "float64",
) -> Example:
    """A multilayer perceptron ``loss(params, x, y)`` with parameters ``W1, b1, W2, b2, ...``.

    Args:
        activation: one of :data:`ACTIVATIONS`, applied after every layer but the last.
        loss: one of :data:`LOSSES`; the last layer gives predictions or logits.
        sizes: the widths of the input, the hidden layers and the output (≥ 2 entries).
        batch: rows of ``x`` and ``y``.
        seed: seeds parameters and data.
        dtype: ``"float64"`` or ``"float32"`` (integer labels are int32).

    Returns:
        ``(loss_fn, (params, x, y))``.
    """
    _choice("activation", activation, ACTIVATIONS)
    _choice("loss", loss, LOSSES)
    if len(sizes) < 2 or min(sizes) < 1:
        raise InputError(f"sizes {sizes} needs an input and an output width, each ≥ 1")
    rng = _rng(seed, dtype, batch)
    params: dict[str, Any] = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1):
        params[f"W{i}"] = _weights(rng, (n_in, n_out), n_in, dtype)
        params[f"b{i}"] = _biases(rng, n_out, dtype)
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    y = _targets(rng, loss, batch, sizes[-1], dtype)
    layers = len(sizes) - 1

    def loss_fn(params: dict[str, Any], x: Any, y: Any) -> Any:
        act = _activation(activation)
        h = x
        for i in range(1, layers + 1):
            h = h @ params[f"W{i}"] + params[f"b{i}"]
            if i < layers:
                h = act(h)
        return _loss(loss, h, y)

    return loss_fn, (params, x, y)


def _layer_norm_params(d: int, dtype: str) -> dict[str, Any]:
    return {"scale": np.ones(d, dtype), "bias": np.zeros(d, dtype)}


def _layer_norm(p: dict[str, Any], h: Any) -> Any:
    import jax
    import jax.numpy as jnp

    mu = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.var(h, axis=-1, keepdims=True)
    return (h - mu) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]


def residual_attention(
    blocks: int = 2,
    *,
    heads: int = 2,
    vocab: int = 13,
    seq: int = 5,
    d_model: int = 8,
    d_hidden: int = 16,
    batch: int = 3,
    outputs: int = 3,
    loss: str = "mse",
    lookup: str = "index",
    causal: bool = True,
    jit: bool = True,
    seed: int = 0,
    dtype: str = "float64",
) -> Example:
    """A pre-norm transformer encoder ``loss(params, ids, y)`` on token ids, dropout-free.

    Token embeddings (``table[ids]`` or ``jnp.take``) plus learned positions, then ``blocks``
    residual blocks — layer norm (mean, var, rsqrt), ``heads``-head self-attention (einsum
    with batch dimensions, ``jax.nn.softmax``, a causal mask by ``jnp.where``), layer norm
    and a GELU MLP — each under ``jax.named_scope(f"block{i}")`` and, with ``jit``, inside
    a ``jax.jit`` function; a final layer norm, mean pooling over positions and a dense
    readout. ``blocks=12`` is ``graphbp bench``'s stack.

    Args:
        blocks: residual blocks (≥ 0).
        heads: attention heads; must divide ``d_model`` (1: single-head einsums).
        vocab, seq, d_model, d_hidden, batch: the sizes of the model and the data.
        outputs: regression targets (``loss="mse"``) or classes (``loss="ce_labels"``).
        loss: ``"mse"`` or ``"ce_labels"`` (integer class labels, ``jax.nn.one_hot``).
        lookup: ``"index"`` (``table[ids]``) or ``"take"`` (``jnp.take(table, ids, axis=0)``).
        causal: mask attention to earlier positions.
        jit: run each block as a ``jax.jit`` function.
        seed: seeds parameters and data.
        dtype: ``"float64"`` or ``"float32"`` (token ids and labels are int32).

    Returns:
        ``(loss_fn, (params, ids, y))``.
    """
    _choice("loss", loss, ("mse", "ce_labels"))
    _choice("lookup", lookup, ("index", "take"))
    if blocks < 0 or heads < 1 or d_model % heads:
        raise InputError(f"need blocks ≥ 0 and heads dividing d_model, got {blocks}, {heads}")
    rng = _rng(seed, dtype, batch)
    d, f = d_model, d_hidden
    params: dict[str, Any] = {
        "embed": _weights(rng, (vocab, d), 1, dtype),
        "pos": _weights(rng, (seq, d), 1, dtype) * np.asarray(0.1, dtype),
        "blocks": [
            {
                "ln1": _layer_norm_params(d, dtype),
                "attn": {k: _weights(rng, (d, d), d, dtype) for k in ("q", "k", "v", "o")},
                "ln2": _layer_norm_params(d, dtype),
                "mlp": {
                    "w1": _weights(rng, (d, f), d, dtype),
                    "b1": _biases(rng, f, dtype),
                    "w2": _weights(rng, (f, d), f, dtype),
                    "b2": _biases(rng, d, dtype),
                },
            }
            for _ in range(blocks)
        ],
        "ln_f": _layer_norm_params(d, dtype),
        "head": {"w": _weights(rng, (d, outputs), d, dtype), "b": _biases(rng, outputs, dtype)},
    }
    ids = rng.integers(0, vocab, (batch, seq)).astype(np.int32)
    y = _targets(rng, loss, batch, outputs, dtype)
    mask = np.tril(np.ones((seq, seq), dtype=bool))
    scale = 1 / math.sqrt(d // heads)

    def attention(p: dict[str, Any], h: Any) -> Any:
        import jax
        import jax.numpy as jnp

        q, k, v = h @ p["q"], h @ p["k"], h @ p["v"]
        if heads == 1:
            scores = jnp.einsum("bqd,bkd->bqk", q, k) * scale
            if causal:
                scores = jnp.where(mask, scores, -1e9)
            return jnp.einsum("bqk,bkd->bqd", jax.nn.softmax(scores, axis=-1), v) @ p["o"]
        b, s, _ = h.shape
        q, k, v = (t.reshape(b, s, heads, d // heads) for t in (q, k, v))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) * scale
        if causal:
            scores = jnp.where(mask, scores, -1e9)
        out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        return out.reshape(b, s, d) @ p["o"]

    def block(p: dict[str, Any], h: Any) -> Any:
        import jax

        h = h + attention(p["attn"], _layer_norm(p["ln1"], h))
        m = p["mlp"]
        hidden = jax.nn.gelu(_layer_norm(p["ln2"], h) @ m["w1"] + m["b1"])
        return h + hidden @ m["w2"] + m["b2"]

    def loss_fn(params: dict[str, Any], ids: Any, y: Any) -> Any:
        import jax
        import jax.numpy as jnp

        table = params["embed"]
        tokens = table[ids] if lookup == "index" else jnp.take(table, ids, axis=0)
        h = tokens + params["pos"]
        run = jax.jit(block) if jit else block
        for i, p in enumerate(params["blocks"]):
            with jax.named_scope(f"block{i}"):
                h = run(p, h)
        pooled = jnp.mean(_layer_norm(params["ln_f"], h), axis=1)
        return _loss(loss, pooled @ params["head"]["w"] + params["head"]["b"], y)

    return loss_fn, (params, ids, y)


@lru_cache(maxsize=1)
def _digits() -> tuple[Any, Any]:
    """The embedded digits' pixels (0..16, rows × 64) and integer labels, read once."""
    from graphbp.datasets import load_example

    data = load_example("digits")
    return data.x, data.y[:, 0].astype(np.int32)


def _conv_size(n: int, window: int, stride: int, padding: str) -> int:
    """The output length of a window sliding over ``n`` positions (XLA's SAME/VALID)."""
    return -(-n // stride) if padding == "SAME" else (n - window) // stride + 1


def cnn(
    layout: str = "NHWC",
    padding: str = "SAME",
    pool: str = "max",
    *,
    channels: tuple[int, int] = (4, 6),
    batch: int = 4,
    seed: int = 0,
    dtype: str = "float64",
) -> Example:
    """A small CNN ``loss(params, images, y)`` classifying real 8×8 digits (graphbp's data).

    conv 3×3 (stride 1) → ReLU → 3×3 pooling with stride 2 (``lax.reduce_window`` max, or
    sum ÷ 9 for average) → conv 2×2 with stride 2 → ReLU → flatten → dense → softmax
    cross-entropy against one-hot targets. Every window uses ``padding``.

    Args:
        layout: ``"NHWC"`` (kernels HWIO) or ``"NCHW"`` (kernels OIHW).
        padding: ``"SAME"`` or ``"VALID"``, for the convolutions and the pooling.
        pool: ``"max"`` or ``"avg"``.
        channels: the two convolutions' output channels.
        batch: images, drawn (seeded) from the embedded digits, pixels scaled to [0, 1].
        seed: seeds parameters and the choice of images.
        dtype: ``"float64"`` or ``"float32"``.

    Returns:
        ``(loss_fn, (params, images, y))`` with ``y`` one-hot (batch × 10).
    """
    _choice("layout", layout, ("NHWC", "NCHW"))
    _choice("padding", padding, ("SAME", "VALID"))
    _choice("pool", pool, ("max", "avg"))
    rng = _rng(seed, dtype, batch)
    pixels, labels = _digits()
    if batch > len(labels):
        raise InputError(f"batch={batch}: the digits have {len(labels)} images")
    rows = rng.choice(len(labels), batch, replace=False)
    images = (pixels[rows] / 16).reshape(batch, 8, 8, 1)
    c1, c2 = channels
    side = _conv_size(_conv_size(8, 3, 1, padding), 3, 2, padding)
    side = _conv_size(side, 2, 2, padding)
    if side < 1:
        raise InputError(f"padding {padding!r} leaves no pixels for the second convolution")
    nhwc = layout == "NHWC"
    params = {
        "conv1": {"w": _weights(rng, (3, 3, 1, c1), 9, dtype), "b": _biases(rng, c1, dtype)},
        "conv2": {"w": _weights(rng, (2, 2, c1, c2), 4 * c1, dtype), "b": _biases(rng, c2, dtype)},
        "dense": {
            "w": _weights(rng, (side * side * c2, 10), side * side * c2, dtype),
            "b": _biases(rng, 10, dtype),
        },
    }
    if not nhwc:  # kernels HWIO → OIHW, images NHWC → NCHW
        for name in ("conv1", "conv2"):
            params[name]["w"] = np.ascontiguousarray(params[name]["w"].transpose(3, 2, 0, 1))
        images = images.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(images, dtype=dtype)
    y = np.eye(10, dtype=dtype)[labels[rows]]
    numbers = ("NHWC", "HWIO", "NHWC") if nhwc else ("NCHW", "OIHW", "NCHW")
    window = (1, 3, 3, 1) if nhwc else (1, 1, 3, 3)
    strides = (1, 2, 2, 1) if nhwc else (1, 1, 2, 2)

    def conv(p: dict[str, Any], h: Any, stride: int) -> Any:
        import jax

        out = jax.lax.conv_general_dilated(
            h, p["w"], (stride, stride), padding, dimension_numbers=numbers
        )
        return jax.nn.relu(out + (p["b"] if nhwc else p["b"][:, None, None]))

    def loss_fn(params: dict[str, Any], x: Any, y: Any) -> Any:
        import jax
        import jax.numpy as jnp

        h = conv(params["conv1"], x, 1)
        if pool == "max":
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, window, strides, padding)
        else:
            h = jax.lax.reduce_window(h, 0.0, jax.lax.add, window, strides, padding) / 9
        h = conv(params["conv2"], h, 2)
        logits = h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"]
        return _loss("ce_onehot", logits, y)

    return loss_fn, (params, x, y)
