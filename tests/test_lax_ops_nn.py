"""The NN ops against the JAX primitives they stand for (float64): gather, conv and the
window reductions, on the forms jnp indexing, lax.conv_general_dilated and
lax.reduce_window produce — forward to 1e-12, vjp to jax.vjp of the primitive to 1e-10, on
both backends — and their hostile attributes refused by Network() naming the node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphbp as gb

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
lax = jax.lax
jex = pytest.importorskip("jax.extend.core")


def _eqn(fn: Callable[..., Any], *args: Any, primitive: str) -> Any:
    """The first equation of ``primitive`` in fn's jaxpr (inside jit calls too)."""

    def find(jaxpr: Any) -> Any:
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == primitive:
                return eqn
            for sub in jex.jaxprs_in_params(eqn.params):
                found = find(sub)
                if found is not None:
                    return found
        return None

    eqn = find(jax.make_jaxpr(fn)(*args).jaxpr)
    assert eqn is not None, f"no {primitive} in the jaxpr"
    return eqn


def _plain(value: Any) -> Any:
    """Tuples as lists, all the way down (what JSON gives the op)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def gather_attrs(params: dict[str, Any]) -> dict[str, Any]:
    """A gather equation's params as the importer writes them (contract12)."""
    dn = params["dimension_numbers"]
    fill = params["fill_value"]
    return {
        "dimension_numbers": {
            key: list(getattr(dn, key))
            for key in (
                "offset_dims",
                "collapsed_slice_dims",
                "start_index_map",
                "operand_batching_dims",
                "start_indices_batching_dims",
            )
        },
        "slice_sizes": list(params["slice_sizes"]),
        "mode": {"CLIP": "clip", "FILL_OR_DROP": "fill", "PROMISE_IN_BOUNDS": "promise_in_bounds"}[
            params["mode"].name
        ],
        "fill_value": None if fill is None or np.isnan(fill) else float(fill),
    }


def conv_attrs(params: dict[str, Any]) -> dict[str, Any]:
    dn = params["dimension_numbers"]
    return {
        "window_strides": list(params["window_strides"]),
        "padding": _plain(params["padding"]),
        "lhs_dilation": list(params["lhs_dilation"]),
        "rhs_dilation": list(params["rhs_dilation"]),
        "dimension_numbers": {
            "lhs_spec": list(dn.lhs_spec),
            "rhs_spec": list(dn.rhs_spec),
            "out_spec": list(dn.out_spec),
        },
        "feature_group_count": params["feature_group_count"],
        "batch_group_count": params["batch_group_count"],
    }


def window_attrs(params: dict[str, Any]) -> dict[str, Any]:
    return {
        key: _plain(params[key])
        for key in (
            "window_dimensions",
            "window_strides",
            "padding",
            "base_dilation",
            "window_dilation",
        )
    }


BACKENDS = {"numpy": np, "jax": jnp}


def compare(
    name: str,
    reference: Callable[..., Any],
    operands: list[Any],
    attrs: dict[str, Any],
    wrt: tuple[int, ...],
    rng: np.random.Generator,
    vjp: bool = True,
) -> None:
    """Forward equal to ``reference(*operands)`` to 1e-12 and each cotangent of ``wrt`` equal
    to jax.vjp's to 1e-10, on both backends; zero cotangents for the others (indices).
    Where JAX has no vjp (``vjp=False``) only the forward is compared."""
    op = gb.get_op(name)
    with jax.enable_x64(True):
        args = [jnp.asarray(x) for x in operands]
        expected, pullback = jax.vjp(lambda *d: reference(*_put(args, wrt, d)), *args_of(args, wrt))
        g = rng.standard_normal(expected.shape)
        expected_cts = pullback(jnp.asarray(g)) if vjp else None
        assert tuple(op.shape(*[np.shape(x) for x in operands], **attrs)) == expected.shape
        for backend, xp in BACKENDS.items():
            xs = [xp.asarray(np.asarray(x, dtype=np.float64)) for x in operands]
            forward, vjp = _rules(op, xp, attrs)
            out = forward(*xs)
            assert out.dtype == np.float64 and out.shape == expected.shape, backend
            np.testing.assert_allclose(
                np.asarray(out), np.asarray(expected), rtol=1e-12, atol=1e-12, err_msg=backend
            )
            if expected_cts is None:
                continue
            cts = vjp(xp.asarray(g), out, *xs)
            for i, ct in enumerate(cts):
                want = expected_cts[wrt.index(i)] if i in wrt else np.zeros(np.shape(operands[i]))
                np.testing.assert_allclose(
                    np.asarray(ct),
                    np.asarray(want),
                    rtol=1e-10,
                    atol=1e-12,
                    err_msg=f"{backend}, cotangent {i}",
                )


def _rules(op: gb.Op, xp: Any, attrs: dict[str, Any]) -> tuple[Any, Any]:
    """The op's forward and vjp on ``xp``, jitted on JAX (one compile, not one per call)."""

    def forward(*xs: Any) -> Any:
        return op.forward(xp, *xs, **attrs)

    def vjp(g: Any, out: Any, *xs: Any) -> Any:
        return op.vjp(xp, g, out, *xs, **attrs)

    return (forward, vjp) if xp is np else (jax.jit(forward), jax.jit(vjp))


def args_of(args: list[Any], wrt: tuple[int, ...]) -> list[Any]:
    return [args[i] for i in wrt]


def _put(args: list[Any], wrt: tuple[int, ...], diff: tuple[Any, ...]) -> list[Any]:
    out = list(args)
    for i, d in zip(wrt, diff, strict=True):
        out[i] = d
    return out


# ---------------------------------------------------------------- gather

IDS = np.array([1, 3, 0, 3])
IDS2 = np.array([[1, 2], [4, 4], [0, 1]])
GATHER_FORMS: dict[str, tuple[tuple[int, ...], Callable[[Any], Any]]] = {
    "table[ids]": ((5, 4), lambda x: x[IDS]),
    "table[ids2] (2-D ids)": ((5, 4), lambda x: x[IDS2]),
    "jnp.take axis=0": ((5, 4), lambda x: jnp.take(x, IDS, axis=0)),
    "jnp.take axis=1": ((5, 4), lambda x: jnp.take(x, IDS, axis=1)),
    "jnp.take axis=-1 of 3-D": ((2, 3, 5), lambda x: jnp.take(x, IDS2, axis=-1)),
    "x[:, ids]": ((3, 5, 2), lambda x: x[:, IDS]),
    "x[ids, ids]": ((5, 5), lambda x: x[IDS, IDS]),
    "x[ids, 1]": ((5, 4), lambda x: x[IDS, 1]),
    "x[ids2, :, ids2]": ((5, 2, 6), lambda x: x[IDS2, :, IDS2]),
    "negative ids": ((5, 4), lambda x: x[np.array([-1, -5, 2])]),
    "take_along_axis": (
        (4, 3),
        lambda x: jnp.take_along_axis(x, np.array([[0], [2], [1], [2]]), axis=1),
    ),
    "take_along_axis 3-D": (
        (2, 3, 4),
        lambda x: jnp.take_along_axis(x, np.array([[[0, 3]], [[2, 2]]]), axis=2),
    ),
    "take clip, out of range": (
        (5, 4),
        lambda x: jnp.take(x, np.array([7, -3, 2]), 0, mode="clip"),
    ),
    "take fill, out of range": (
        (5, 4),
        lambda x: jnp.take(x, np.array([7, -3, 2]), 0, mode="fill", fill_value=-2.5),
    ),
    "take fill NaN, out of range": ((5, 4), lambda x: jnp.take(x, np.array([5, 1]), axis=0)),
    "empty ids": (
        (5, 4),
        lambda x: lax.gather(
            x,
            np.zeros((0, 1), dtype=np.int32),
            lax.GatherDimensionNumbers((1,), (0,), (0,)),
            (1, 4),
            mode="fill",
        ),
    ),
    "size-1 axis": ((1, 3), lambda x: jnp.take(x, np.array([0, 0]), axis=0)),
}


@pytest.mark.parametrize("form", GATHER_FORMS)
def test_gather_equals_lax_gather_in_the_forms_jnp_indexing_produces(form: str) -> None:
    shape, fn = GATHER_FORMS[form]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    with jax.enable_x64(True):
        eqn = _eqn(fn, jnp.asarray(x), primitive="gather")
        params = dict(eqn.params)
        indices = np.asarray(_eval_indices(fn, x, eqn))
    compare(
        "gather",
        lambda op, idx: lax.gather_p.bind(op, idx.astype(np.int32), **params),
        [x, indices.astype(np.float64)],
        gather_attrs(params),
        (0,),
        rng,
    )


def _eval_indices(fn: Callable[[Any], Any], x: Any, eqn: Any) -> Any:
    """The value of the gather's indices in fn's jaxpr (its second input)."""
    closed = jax.make_jaxpr(fn)(jnp.asarray(x))
    target = eqn.invars[1]
    if isinstance(target, jex.Literal):
        return target.val
    values: dict[Any, Any] = {}

    def run(jaxpr: Any, consts: list[Any], args: list[Any]) -> Any:
        env = dict(zip(jaxpr.constvars, consts, strict=True))
        env.update(zip(jaxpr.invars, args, strict=True))
        for e in jaxpr.eqns:
            ins = [v.val if isinstance(v, jex.Literal) else env[v] for v in e.invars]
            if e is eqn:
                values["indices"] = ins[1]
            if e.primitive.name in ("pjit", "jit"):
                inner = e.params["jaxpr"]
                outs = run(inner.jaxpr, inner.consts, ins)
            else:
                outs = e.primitive.bind(*ins, **e.params)
                outs = outs if e.primitive.multiple_results else [outs]
            env.update(zip(e.outvars, outs, strict=True))
        return [env[v] if not isinstance(v, jex.Literal) else v.val for v in jaxpr.outvars]

    run(closed.jaxpr, closed.consts, [jnp.asarray(x)])
    return values["indices"]


def test_gather_promise_in_bounds_clamps_forward_and_drops_out_of_range_cotangents() -> None:
    """As XLA on CPU: a window past the end is read clamped, but jax.vjp's scatter drops it
    (a window only partly out of range too)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3))
    dn = lax.GatherDimensionNumbers(
        offset_dims=(1, 2), collapsed_slice_dims=(), start_index_map=(0,)
    )
    params = {
        "dimension_numbers": dn,
        "slice_sizes": (2, 3),
        "mode": lax.GatherScatterMode.PROMISE_IN_BOUNDS,
        "fill_value": None,
        "indices_are_sorted": False,
        "unique_indices": False,
    }
    indices = np.array([[5], [-1], [2], [9], [4]])
    compare(
        "gather",
        lambda op, idx: lax.gather_p.bind(op, idx.astype(np.int32), **params),
        [x, indices.astype(np.float64)],
        gather_attrs(params),
        (0,),
        rng,
    )


def test_gather_rounds_nudged_indices() -> None:
    """Indices are integer-valued floats: a finite-difference nudge never moves them."""
    op = gb.get_op("gather")
    table = np.arange(10.0).reshape(5, 2)
    attrs = {
        "dimension_numbers": {
            "offset_dims": [1],
            "collapsed_slice_dims": [0],
            "start_index_map": [0],
        },
        "slice_sizes": [1, 2],
        "mode": "promise_in_bounds",
    }
    out = op.forward(np, table, np.array([[2 + 1e-6], [4 - 1e-6], [np.nan]]), **attrs)
    np.testing.assert_array_equal(out, [[4.0, 5.0], [8.0, 9.0], [0.0, 1.0]])


# ---------------------------------------------------------------- conv

NHWC = ("NHWC", "HWIO", "NHWC")
NCHW = ("NCHW", "OIHW", "NCHW")
CONV_CASES: dict[str, tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = {
    "NHWC SAME stride 1": (
        (2, 8, 8, 1),
        (3, 3, 1, 4),
        {"window_strides": (1, 1), "padding": "SAME", "dimension_numbers": NHWC},
    ),
    "NHWC SAME stride 2 (odd size)": (
        (2, 7, 7, 3),
        (3, 3, 3, 2),
        {"window_strides": (2, 2), "padding": "SAME", "dimension_numbers": NHWC},
    ),
    "NHWC VALID stride 2": (
        (2, 8, 8, 2),
        (3, 3, 2, 3),
        {"window_strides": (2, 2), "padding": "VALID", "dimension_numbers": NHWC},
    ),
    "NCHW VALID": (
        (2, 1, 8, 8),
        (4, 1, 3, 3),
        {"window_strides": (1, 1), "padding": "VALID", "dimension_numbers": NCHW},
    ),
    "NCHW SAME stride (2, 1)": (
        (1, 2, 6, 5),
        (3, 2, 2, 3),
        {"window_strides": (2, 1), "padding": "SAME", "dimension_numbers": NCHW},
    ),
    "default layout, no dimension_numbers": (
        (1, 2, 5, 5),
        (3, 2, 2, 2),
        {"window_strides": (1, 1), "padding": "VALID"},
    ),
    "mixed layout NCHW / HWIO -> NHWC": (
        (2, 2, 5, 4),
        (2, 2, 2, 3),
        {
            "window_strides": (1, 1),
            "padding": "SAME",
            "dimension_numbers": ("NCHW", "HWIO", "NHWC"),
        },
    ),
    "1-D NWC": (
        (2, 9, 2),
        (3, 2, 4),
        {"window_strides": (2,), "padding": "SAME", "dimension_numbers": ("NWC", "WIO", "NWC")},
    ),
    "3-D NDHWC": (
        (1, 4, 4, 3, 1),
        (2, 2, 2, 1, 2),
        {
            "window_strides": (1, 2, 1),
            "padding": "VALID",
            "dimension_numbers": ("NDHWC", "DHWIO", "NDHWC"),
        },
    ),
    "rhs dilation (atrous)": (
        (1, 7, 7, 1),
        (3, 3, 1, 2),
        {
            "window_strides": (1, 1),
            "padding": "SAME",
            "rhs_dilation": (2, 2),
            "dimension_numbers": NHWC,
        },
    ),
    "lhs dilation (transposed conv)": (
        (1, 4, 4, 2),
        (3, 3, 2, 1),
        {
            "window_strides": (1, 1),
            "padding": ((2, 2), (1, 2)),
            "lhs_dilation": (2, 2),
            "dimension_numbers": NHWC,
        },
    ),
    "negative and asymmetric padding": (
        (1, 6, 6, 1),
        (2, 2, 1, 2),
        {"window_strides": (1, 2), "padding": ((-1, 2), (0, -1)), "dimension_numbers": NHWC},
    ),
    "feature groups (depthwise)": (
        (2, 5, 5, 3),
        (3, 3, 1, 6),
        {
            "window_strides": (1, 1),
            "padding": "SAME",
            "feature_group_count": 3,
            "dimension_numbers": NHWC,
        },
    ),
    "batch groups": (
        (4, 3, 5, 5),
        (6, 3, 2, 2),
        {"window_strides": (1, 1), "padding": "VALID", "batch_group_count": 2},
    ),
    "1×1 kernel": (
        (3, 4, 4, 2),
        (1, 1, 2, 5),
        {"window_strides": (1, 1), "padding": "VALID", "dimension_numbers": NHWC},
    ),
    "size-1 spatial and batch": (
        (1, 1, 1, 2),
        (1, 1, 2, 2),
        {"window_strides": (1, 1), "padding": "SAME", "dimension_numbers": NHWC},
    ),
    # windows of more than SMALL (16) elements: one gather and one scatter on JAX
    "5×5 padded, stride 2, rhs and lhs dilation, feature groups": (
        (2, 9, 8, 4),
        (5, 5, 2, 4),
        {
            "window_strides": (2, 1),
            "padding": ((3, 2), (2, 1)),
            "lhs_dilation": (1, 2),
            "rhs_dilation": (2, 1),
            "dimension_numbers": NHWC,
            "feature_group_count": 2,
        },
    ),
    "3×6 VALID, batch groups": (
        (4, 2, 7, 8),
        (4, 2, 3, 6),
        {"window_strides": (1, 2), "padding": "VALID", "batch_group_count": 2},
    ),
    "kernel larger than the input (empty output)": (
        (1, 2, 2, 1),
        (3, 3, 1, 1),
        {"window_strides": (1, 1), "padding": "VALID", "dimension_numbers": NHWC},
    ),
}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_equals_lax_conv_general_dilated(case: str) -> None:
    lhs_shape, rhs_shape, kwargs = CONV_CASES[case]
    rng = np.random.default_rng(2)
    lhs, rhs = rng.standard_normal(lhs_shape), rng.standard_normal(rhs_shape)

    def fn(a: Any, b: Any) -> Any:
        return lax.conv_general_dilated(a, b, **kwargs)

    with jax.enable_x64(True):
        params = _eqn(
            fn, jnp.asarray(lhs), jnp.asarray(rhs), primitive="conv_general_dilated"
        ).params
    compare("conv", fn, [lhs, rhs], conv_attrs(dict(params)), (0, 1), rng)


# ---------------------------------------------------------------- reduce_window


def _max_pool(dims: Any, strides: Any, padding: Any, **kw: Any) -> Callable[[Any], Any]:
    return lambda x: lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, padding, **kw)


def _sum_pool(dims: Any, strides: Any, padding: Any, **kw: Any) -> Callable[[Any], Any]:
    return lambda x: lax.reduce_window(x, 0.0, lax.add, dims, strides, padding, **kw)


POOLS: dict[str, tuple[tuple[int, ...], Any, Any, Any, dict[str, Any]]] = {
    "2×2/2 NHWC": ((2, 8, 8, 3), (1, 2, 2, 1), (1, 2, 2, 1), "VALID", {}),
    "3×3/2 SAME NCHW": ((2, 2, 7, 7), (1, 1, 3, 3), (1, 1, 2, 2), "SAME", {}),
    "3×3/1 SAME odd": ((1, 5, 6, 1), (1, 3, 3, 1), (1, 1, 1, 1), "SAME", {}),
    "explicit and negative padding": (
        (1, 6, 5, 2),
        (1, 2, 3, 1),
        (1, 2, 1, 1),
        ((0, 0), (1, 0), (-1, 2), (0, 0)),
        {},
    ),
    "base and window dilation": (
        (2, 5, 4),
        (1, 2, 3),
        (1, 1, 2),
        ((0, 0), (1, 1), (0, 1)),
        {"base_dilation": (1, 2, 1), "window_dilation": (1, 1, 2)},
    ),
    "1-D": ((7,), (3,), (2,), "VALID", {}),
    "window over the batch axis too": ((3, 4), (2, 2), (1, 2), "VALID", {}),
    # windows of more than SMALL (16) elements: one gather and one scatter on JAX
    "5×5/2 SAME NHWC": ((2, 9, 8, 3), (1, 5, 5, 1), (1, 2, 2, 1), "SAME", {}),
    "4×5 with padding and base dilation": (
        (1, 5, 6, 2),
        (1, 4, 5, 1),
        (1, 1, 2, 1),
        ((0, 0), (2, 1), (1, 3), (0, 0)),
        {"base_dilation": (1, 2, 1, 1)},
    ),
}


@pytest.mark.parametrize("kind", ["max", "sum"])
@pytest.mark.parametrize("case", POOLS)
def test_reduce_window_equals_lax_reduce_window(kind: str, case: str) -> None:
    shape, dims, strides, padding, kw = POOLS[case]
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    fn = (_max_pool if kind == "max" else _sum_pool)(dims, strides, padding, **kw)
    name = f"reduce_window_{kind}"
    with jax.enable_x64(True):
        params = _eqn(fn, jnp.asarray(x), primitive=name).params
    attrs = window_attrs(dict(params))
    # JAX's max-pool vjp refuses window dilation and negative padding; central differences
    # check ours there (the op's examples)
    jax_vjp = kind == "sum" or not (
        any(d != 1 for d in attrs["window_dilation"]) or any(min(p) < 0 for p in attrs["padding"])
    )
    compare(name, fn, [x], attrs, (0,), rng, vjp=jax_vjp)


def test_average_pooling_as_jax_users_write_it() -> None:
    """flax/stax average pooling: a window sum divided by the window's size."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 2))
    fn = _sum_pool((1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    with jax.enable_x64(True):
        params = _eqn(lambda x: fn(x) / 4.0, jnp.asarray(x), primitive="reduce_window_sum").params
    compare("reduce_window_sum", fn, [x], window_attrs(dict(params)), (0,), rng)


TIES = {
    "ties inside windows": (
        np.array([[1.0, 3.0, 3.0, 0.0], [3.0, 3.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0]]),
        (2, 2),
        (1, 1),
        "VALID",
    ),
    "overlapping windows sharing one max": (
        np.array([[0.0, 5.0, 0.0], [1.0, 1.0, 1.0], [5.0, 5.0, 5.0]]),
        (2, 2),
        (1, 1),
        "SAME",
    ),
    "-inf against the padding": (
        np.array([[-np.inf, 1.0], [2.0, -np.inf]]),
        (2, 2),
        (1, 1),
        ((1, 1), (1, 1)),
    ),
    "constant input, strided": (np.full((4, 5), 7.0), (3, 2), (2, 2), "SAME"),
    # XLA's scan keeps its choice while it is >= the next element: a NaN is always taken
    # and always given up for the next element (the padding included)
    "NaN inside and at the edges of windows": (
        np.array([[1.0, np.nan, 3.0, 2.0], [np.nan, 1.0, 3.0, np.nan], [0.0, np.nan, np.nan, 4.0]]),
        (2, 2),
        (1, 1),
        "SAME",
    ),
    "NaN, -inf and ties in 5×4 windows": (
        np.array(
            [
                [1.0, np.nan, 3.0, 2.0, 3.0, -np.inf],
                [np.nan, 1.0, 3.0, np.nan, 0.0, 3.0],
                [0.0, np.nan, np.nan, 4.0, 4.0, 1.0],
                [-np.inf, 2.0, 4.0, 1.0, np.nan, 0.0],
                [2.0, 2.0, 0.0, 4.0, 1.0, 1.0],
            ]
        ),
        (5, 4),
        (1, 2),
        "SAME",
    ),
    "NaN against the padding, 1-D": (
        np.array([np.nan, 1.0, 3.0, np.nan, 2.0, np.nan]),
        (2,),
        (1,),
        ((1, 1),),
    ),
}


@pytest.mark.parametrize("case", TIES)
def test_reduce_window_max_cotangent_on_ties_goes_where_jax_puts_it(case: str) -> None:
    x, dims, strides, padding = TIES[case]
    fn = _max_pool(dims, strides, padding)
    with jax.enable_x64(True):
        params = _eqn(fn, jnp.asarray(x), primitive="reduce_window_max").params
    compare(
        "reduce_window_max", fn, [x], window_attrs(dict(params)), (0,), np.random.default_rng(5)
    )


def _equations(fn: Callable[..., Any], *args: Any) -> int:
    """The number of equations in fn's jaxpr, those of nested jaxprs included."""

    def size(jaxpr: Any) -> int:
        return sum(
            1 + sum(size(sub) for sub in jex.jaxprs_in_params(eqn.params)) for eqn in jaxpr.eqns
        )

    return size(jax.make_jaxpr(fn)(*args).jaxpr)


@pytest.mark.parametrize("name", ["reduce_window_max", "reduce_window_sum", "conv"])
def test_the_jax_program_of_a_window_op_does_not_grow_with_the_window(name: str) -> None:
    """One gather and one scatter for any window of more than SMALL (16) elements, not one
    op per window element: an n×n max pool's vjp was n² strided reads and full-size pads,
    which XLA took 100 s and 3 GB to compile at n = 16."""
    op = gb.get_op(name)
    rng = np.random.default_rng(6)

    def size(n: int) -> tuple[int, int]:
        x = rng.standard_normal((1, 9, 9, 2))
        if name == "conv":
            k = rng.standard_normal((n, n, 2, 3))
            attrs = {**CONV_OK, "padding": [[n // 2, (n - 1) // 2]] * 2}
            out = op.forward(np, x, k, **attrs)
            return (
                _equations(lambda a, b: op.forward(jnp, a, b, **attrs), x, k),
                _equations(lambda g, a, b: op.vjp(jnp, g, None, a, b, **attrs), out, x, k),
            )
        attrs = {
            "window_dimensions": [1, n, n, 1],
            "window_strides": [1, 1, 1, 1],
            "padding": [[0, 0], [n // 2, (n - 1) // 2], [n // 2, (n - 1) // 2], [0, 0]],
        }
        out = op.forward(np, x, **attrs)
        return (
            _equations(lambda a: op.forward(jnp, a, **attrs), x),
            _equations(lambda g, a: op.vjp(jnp, g, out, a, **attrs), out, x),
        )

    assert size(5) == size(8) == size(12)  # windows of more than SMALL elements


# ---------------------------------------------------------------- hostile attributes


def _net(op: str, shapes: list[tuple[int | None, ...]], attrs: dict[str, Any]) -> gb.Network:
    g = nx.DiGraph(loss="L")
    for i, shape in enumerate(shapes):
        g.add_node(f"v{i}", op="param", shape=shape, init="normal")
        g.add_edge(f"v{i}", "node", arg=i)
    g.add_node("node", op=op, **attrs)
    g.add_node("L", op="sum")
    g.add_edge("node", "L")
    return gb.Network(g)


GATHER_OK = {
    "dimension_numbers": {"offset_dims": [1], "collapsed_slice_dims": [0], "start_index_map": [0]},
    "slice_sizes": [1, 4],
}
CONV_OK = {
    "window_strides": [1, 1],
    "padding": [[1, 1], [1, 1]],
    "dimension_numbers": {
        "lhs_spec": [0, 3, 1, 2],
        "rhs_spec": [3, 2, 0, 1],
        "out_spec": [0, 3, 1, 2],
    },
}
POOL_OK = {"window_dimensions": [1, 2, 2, 1], "window_strides": [1, 2, 2, 1]}
HOSTILE = [
    ("gather", GATHER_OK, {"mode": "wrap"}, "mode"),
    ("gather", GATHER_OK, {"mode": "one_hot"}, "mode"),
    ("gather", GATHER_OK, {"fill_value": "0"}, "fill_value"),
    ("gather", GATHER_OK, {"fill_value": float("inf")}, "fill_value"),
    ("gather", GATHER_OK, {"fill_value": True}, "fill_value"),
    ("gather", GATHER_OK, {"fill_value": 10**400}, "fill_value must be a finite float"),
    ("gather", GATHER_OK, {"slice_sizes": [10**400, 4]}, "slice_sizes"),
    ("gather", GATHER_OK, {"slice_sizes": [1, 5]}, "slice_sizes"),
    ("gather", GATHER_OK, {"slice_sizes": [1, -4]}, "slice_sizes"),
    ("gather", GATHER_OK, {"slice_sizes": [1, True]}, "slice_sizes"),
    ("gather", GATHER_OK, {"slice_sizes": [2, 4]}, "slice_sizes"),
    ("gather", GATHER_OK, {"slice_sizes": "14"}, "slice_sizes"),
    ("gather", GATHER_OK, {"dimension_numbers": [[1], [0], [0]]}, "dimension_numbers"),
    (
        "gather",
        GATHER_OK,
        {"dimension_numbers": {**GATHER_OK["dimension_numbers"], "index_vector_dim": 1}},
        "index_vector_dim",
    ),
    (
        "gather",
        GATHER_OK,
        {"dimension_numbers": {"offset_dims": [1], "collapsed_slice_dims": [0]}},
        "start_index_map",
    ),
    (
        "gather",
        GATHER_OK,
        {"dimension_numbers": {**GATHER_OK["dimension_numbers"], "offset_dims": [5]}},
        "offset_dims",
    ),
    (
        "gather",
        GATHER_OK,
        {"dimension_numbers": {**GATHER_OK["dimension_numbers"], "start_index_map": [0, 1]}},
        "start_index_map",
    ),
    (
        "gather",
        GATHER_OK,
        {"dimension_numbers": {**GATHER_OK["dimension_numbers"], "collapsed_slice_dims": [1, 0]}},
        "collapsed_slice_dims",
    ),
    ("conv", CONV_OK, {"window_strides": [0, 1]}, "window_strides"),
    ("conv", CONV_OK, {"window_strides": [1.0, 1]}, "window_strides"),
    ("conv", CONV_OK, {"window_strides": [1]}, "window_strides"),
    ("conv", CONV_OK, {"padding": [[1, 1]]}, "padding"),
    ("conv", CONV_OK, {"padding": "SAME"}, "padding"),
    ("conv", CONV_OK, {"padding": [[-9, 0], [0, 0]]}, "padding"),
    ("conv", CONV_OK, {"rhs_dilation": [0, 1]}, "rhs_dilation"),
    ("conv", CONV_OK, {"lhs_dilation": [1, -2]}, "lhs_dilation"),
    ("conv", CONV_OK, {"feature_group_count": 0}, "feature_group_count"),
    ("conv", CONV_OK, {"feature_group_count": 2}, "feature_group_count"),
    ("conv", CONV_OK, {"batch_group_count": True}, "batch_group_count"),
    ("conv", CONV_OK, {"batch_group_count": 10**400}, "batch_group_count"),
    *(
        (
            "gather",
            GATHER_OK,
            {"dimension_numbers": {**GATHER_OK["dimension_numbers"], "offset_dims": bad}},
            "offset_dims must be a list of ints",
        )
        for bad in (True, 1.5, None)
    ),
    ("conv", CONV_OK, {"dimension_numbers": {"lhs_spec": [0, 3, 1, 2]}}, "dimension_numbers"),
    (
        "conv",
        CONV_OK,
        {"dimension_numbers": {**CONV_OK["dimension_numbers"], "out_spec": [0, 3, 1, 1]}},
        "out_spec",
    ),
    ("conv", CONV_OK, {"dimension_numbers": ("NHWC", "HWIO", "NHWC")}, "dimension_numbers"),
    ("reduce_window_max", POOL_OK, {"window_dimensions": [2, 2]}, "window_dimensions"),
    ("reduce_window_max", POOL_OK, {"window_dimensions": [1, -2, 2, 1]}, "window_dimensions"),
    ("reduce_window_sum", POOL_OK, {"window_strides": [1, 0, 1, 1]}, "window_strides"),
    ("reduce_window_sum", POOL_OK, {"padding": [[0, 0]] * 3}, "padding"),
    ("reduce_window_sum", POOL_OK, {"padding": [[0, 0], [0, -9], [0, 0], [0, 0]]}, "padding"),
    ("reduce_window_max", POOL_OK, {"base_dilation": [1, 1, 1, 0]}, "base_dilation"),
    ("reduce_window_max", POOL_OK, {"window_dilation": "2"}, "window_dilation"),
    # sizes that would allocate or loop without bound, though the output is small
    (
        "reduce_window_sum",
        POOL_OK,
        {
            "window_dimensions": [1, 2**11, 2**10, 1],
            "padding": [[0, 0], [0, 2**11], [0, 2**10], [0, 0]],
        },
        "window_dimensions",
    ),
    (
        "reduce_window_max",
        POOL_OK,
        {"padding": [[0, 0], [0, 2**40], [0, 0], [0, 0]], "window_strides": [1, 2**40, 2, 1]},
        "padding",
    ),
    (
        "conv",
        CONV_OK,
        {"lhs_dilation": [2**30, 2**30], "window_strides": [2**30, 2**30]},
        "padding",
    ),
]
SHAPES = {
    "gather": [(5, 4), (3, 1)],
    "conv": [(2, 6, 6, 1), (3, 3, 1, 4)],
    "reduce_window_max": [(2, 6, 6, 3)],
    "reduce_window_sum": [(2, 6, 6, 3)],
}


@pytest.mark.parametrize(("op", "good", "bad", "named"), HOSTILE)
def test_hostile_attributes_are_a_graph_error_naming_node_and_attribute(
    op: str, good: dict[str, Any], bad: dict[str, Any], named: str
) -> None:
    _net(op, SHAPES[op], good)  # the good attributes build
    with pytest.raises(gb.GraphError) as info:
        _net(op, SHAPES[op], {**good, **bad})
    message = str(info.value)
    assert "'node'" in message and named in message, message
    assert "\n" not in message and len(message) < 500, message  # a huge int is cut


# ---------------------------------------------------------------- in a network


def _cnn() -> nx.DiGraph:
    """conv 3×3 SAME → max pool 2×2 → conv 2×2/2 VALID → average pool → an embedding's
    rows (gather, clip) times the pooled features, summed: every op of this module."""
    g = nx.DiGraph(loss="L")
    g.add_node("x", op="input", shape=(None, 8, 8, 1))
    g.add_node("ids", op="input", shape=(None, 1, 1, 1))
    g.add_node("k1", op="param", shape=(3, 3, 1, 2), init="normal")
    g.add_node("k2", op="param", shape=(2, 2, 2, 3), init="normal")
    g.add_node("E", op="param", shape=(4, 3), init="normal")
    nhwc = CONV_OK["dimension_numbers"]
    g.add_node("c1", op="conv", padding=[[1, 1], [1, 1]], dimension_numbers=nhwc)
    g.add_node("p1", op="reduce_window_max", **POOL_OK)
    g.add_node("c2", op="conv", window_strides=[2, 2], dimension_numbers=nhwc)
    g.add_node(
        "p2", op="reduce_window_sum", window_dimensions=[1, 2, 2, 1], window_strides=[1, 2, 2, 1]
    )
    dn = {"offset_dims": [3], "collapsed_slice_dims": [0], "start_index_map": [0]}
    g.add_node("e", op="gather", mode="clip", dimension_numbers=dn, slice_sizes=[1, 3])
    g.add_node("m", op="mul")
    g.add_node("L", op="sum")
    g.add_edges_from([("x", "c1", {"arg": 0}), ("k1", "c1", {"arg": 1}), ("c1", "p1")])
    g.add_edges_from([("p1", "c2", {"arg": 0}), ("k2", "c2", {"arg": 1}), ("c2", "p2")])
    g.add_edges_from([("E", "e", {"arg": 0}), ("ids", "e", {"arg": 1})])
    g.add_edges_from([("p2", "m", {"arg": 0}), ("e", "m", {"arg": 1}), ("m", "L")])
    return g


def _cnn_in_jax(p: dict[str, Any], x: Any, ids: Any) -> Any:
    nhwc = ("NHWC", "HWIO", "NHWC")
    h = lax.conv_general_dilated(x, p["k1"], (1, 1), "SAME", dimension_numbers=nhwc)
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = lax.conv_general_dilated(h, p["k2"], (2, 2), "VALID", dimension_numbers=nhwc)
    h = lax.reduce_window(h, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return jnp.sum(h * jnp.take(p["E"], ids[:, 0, 0, 0], axis=0, mode="clip")[:, None, None, :])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_a_small_cnn_of_these_ops_equals_jax_value_and_grad(backend: str, dtype: str) -> None:
    """Values and gradients against jax.value_and_grad of the same model written in JAX
    (1e-10 in float64, 1e-5 in float32), a None batch axis, ids out of range clipped."""
    net = gb.Network(_cnn())
    assert net.shapes["p2"] == (None, 1, 1, 3)
    prog = net.compile(backend, dtype=dtype)
    params = prog.init(seed=1)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 8, 8, 1))
    ids = np.array([0, 3, 5, -1, 2]).reshape(5, 1, 1, 1)
    loss, grads = prog.value_and_grad(params, {"x": x, "ids": ids})
    with jax.enable_x64(dtype == "float64"):
        cast = {k: jnp.asarray(v, dtype=dtype) for k, v in params.items()}
        want, want_grads = jax.value_and_grad(_cnn_in_jax)(cast, jnp.asarray(x, dtype), ids)
    rtol = 1e-10 if dtype == "float64" else 1e-5
    assert float(loss) == pytest.approx(float(want), rel=rtol)
    for name, value in want_grads.items():
        got = np.asarray(grads[name], dtype=np.float64)
        scale = np.max(np.abs(np.asarray(value, dtype=np.float64)))
        np.testing.assert_allclose(got, np.asarray(value, np.float64), rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_a_small_cnn_checks_against_central_differences(backend: str) -> None:
    net = gb.Network(_cnn())
    rng = np.random.default_rng(7)
    inputs = {
        "x": rng.standard_normal((3, 8, 8, 1)),
        "ids": np.array([1.0, 3.0, 0.0]).reshape(3, 1, 1, 1),
    }
    assert gb.testing.check_network(net, backend, inputs=inputs).max_rel_error < 1e-6


def _every_form(p: dict[str, Any], x: Any, ids: Any) -> Any:
    """jnp.take (fill, NaN), table[ids] (promise_in_bounds), take_along_axis (batching
    dims), conv NCHW SAME stride 2, max and average pooling, a reshape and a dense head."""
    e = jnp.take(p["E"], ids, axis=0) + p["E"][ids]
    pick = jnp.take_along_axis(e, jnp.minimum(ids, 2)[:, None], axis=1)
    h = lax.conv_general_dilated(x, p["k"], (2, 2), "SAME", dimension_numbers=NCHW)
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = lax.reduce_window(h, 0.0, lax.add, (1, 1, 2, 2), (1, 1, 1, 1), "SAME") / 4.0
    z = h.reshape(h.shape[0], -1) @ p["W"]
    return jnp.mean((z * e - pick) ** 2)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_an_imported_model_of_every_form_runs_without_opaque_nodes(dtype: str) -> None:
    rng = np.random.default_rng(8)
    params = {
        "E": rng.standard_normal((10, 3)),
        "k": rng.standard_normal((4, 1, 3, 3)),
        "W": rng.standard_normal((16, 3)),
    }
    x, ids = rng.standard_normal((5, 1, 8, 8)), np.array([1, 4, 9, 0, 4])
    with jax.enable_x64(True):
        net, p, inputs = gb.from_jax(_every_form, params, x, ids)
        want, want_grads = jax.value_and_grad(_every_form)(params, x, ids)
    ops = {d["op"] for _, d in net.graph.nodes(data=True)}
    assert {"gather", "conv", "reduce_window_max", "reduce_window_sum"} <= ops
    assert "opaque" not in ops
    rtol = 1e-10 if dtype == "float64" else 1e-5
    for backend in ("numpy", "jax"):
        loss, grads = net.compile(backend, dtype=dtype).value_and_grad(p, inputs)
        assert float(loss) == pytest.approx(float(want), rel=rtol)
        for name, value in want_grads.items():
            scale = np.max(np.abs(value))
            got = np.asarray(grads[name], dtype=np.float64)
            np.testing.assert_allclose(got, value, rtol=0, atol=rtol * scale, err_msg=name)
