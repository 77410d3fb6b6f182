"""The math ops against the jax.lax primitives they stand for, in float64 on both backends:
forward equal to the primitive to 1e-12, cotangents equal to jax.vjp of the primitive to 1e-10,
with attributes given as a JSON graph file gives them (lists where JAX has tuples)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphbp as gb
from graphbp.errors import GraphError
from graphbp.op import sum_to
from graphbp.registry import get_op

jax = pytest.importorskip("jax")
jnp = jax.numpy
lax = jax.lax

BACKENDS = ["numpy", "jax"]


def _tuples(value: Any) -> Any:
    """JSON's lists as the tuples lax takes."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def run_op(
    name: str, operands: list[np.ndarray], attrs: dict[str, Any], g: np.ndarray, backend: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The op's forward and its cotangents (summed to each operand's shape) on ``backend``
    (jitted on JAX, as graphbp runs it there)."""
    op = get_op(name)

    def both(xp: Any, g: Any, *xs: Any) -> tuple[Any, list[Any]]:
        out = op.forward(xp, *xs, **attrs)
        cts = op.vjp(xp, g, out, *xs, **attrs)
        return out, [sum_to(xp, ct, x.shape) for ct, x in zip(cts, xs, strict=True)]

    with jax.enable_x64(True):
        if backend == "numpy":
            out, grads = both(np, g, *operands)
        else:
            out, grads = jax.jit(lambda *args: both(jnp, *args))(g, *operands)
    assert out.dtype == np.float64
    assert op.shape(*(tuple(x.shape) for x in operands), **attrs) == tuple(out.shape)
    return np.asarray(out), [np.asarray(ct) for ct in grads]


def compare(
    name: str,
    operands: list[np.ndarray],
    attrs: dict[str, Any],
    prim: Callable[..., Any],
    backend: str,
    rng: np.random.Generator,
) -> None:
    """Forward to 1e-12 and cotangents to 1e-10 against ``prim`` and jax.vjp of it."""
    with jax.enable_x64(True):
        expected, pullback = jax.vjp(prim, *(jnp.asarray(x) for x in operands))
        g = rng.standard_normal(expected.shape)
        expected_cts = pullback(jnp.asarray(g))
    out, cts = run_op(name, operands, attrs, g, backend)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, np.asarray(expected), rtol=1e-12, atol=1e-300)
    for ct, want in zip(cts, expected_cts, strict=True):
        want = np.asarray(want)
        scale = max(float(np.max(np.abs(want), initial=0.0, where=~np.isnan(want))), 1e-300)
        np.testing.assert_allclose(ct, want, rtol=1e-10, atol=1e-10 * scale)


# ---------------------------------------------------------------- dot_general

DOT_CASES = [
    ((3, 4), (4, 5), [[[1], [0]], [[], []]]),
    ((2, 3, 4), (4, 5), [[[2], [0]], [[], []]]),
    ((4, 3), (5, 4), [[[0], [1]], [[], []]]),
    ((4,), (4,), [[[0], [0]], [[], []]]),
    ((4,), (4, 6), [[[0], [0]], [[], []]]),
    ((3,), (4,), [[[], []], [[], []]]),
    ((2, 3), (4, 5), [[[], []], [[], []]]),
    ((2, 3, 4), (2, 4, 5), [[[2], [1]], [[0], [0]]]),
    ((2, 5, 3, 4), (2, 5, 4, 3), [[[3], [2]], [[0, 1], [0, 1]]]),  # attention scores
    ((2, 4, 3, 5), (2, 6, 3, 5), [[[3], [3]], [[0, 2], [0, 2]]]),  # q·k in BTHD form
    ((3, 2, 4, 5), (5, 4, 2), [[[3, 2], [0, 1]], [[1], [2]]]),  # batch axes not leading
    ((2, 3), (3, 2), [[[0, 1], [1, 0]], [[], []]]),  # a full contraction, axes crossed
    ((1, 3, 1), (1, 3), [[[1], [1]], [[0], [0]]]),  # size-1 axes
    ((0, 3), (3, 2), [[[1], [0]], [[], []]]),  # an empty batch of rows
    ((3, 0), (0, 2), [[[1], [0]], [[], []]]),  # an empty contraction: zeros
    ((2, 3), (2, 3), [[[], []], [[0, 1], [0, 1]]]),  # batch only: a product
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("a", "b", "dn"), DOT_CASES)
def test_dot_general_matches_lax(
    a: tuple[int, ...], b: tuple[int, ...], dn: Any, backend: str, rng: np.random.Generator
) -> None:
    operands = [rng.standard_normal(a), rng.standard_normal(b)]
    attrs = {"dimension_numbers": dn}

    def prim(x: Any, y: Any) -> Any:
        return lax.dot_general(x, y, _tuples(dn), precision=lax.Precision.HIGHEST)

    compare("dot_general", operands, attrs, prim, backend, rng)


def test_dot_general_takes_tuples_as_lax_does(rng: np.random.Generator) -> None:
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 5))
    dn = (((2,), (1,)), ((0,), (0,)))
    out, _ = run_op("dot_general", [a, b], {"dimension_numbers": dn}, np.ones((2, 3, 5)), "numpy")
    np.testing.assert_allclose(out, a @ b, rtol=1e-14)


@pytest.mark.parametrize(
    ("dn", "label"),
    [
        ([[[1], [0]], [[], []]], "·"),
        ([[[2], [0]], [[], []]], "·[a2·b0]"),
        ([[[3], [3]], [[0, 2], [0, 2]]], "·[a3·b3, batch a0,2=b0,2]"),
        ([[[], []], [[], []]], "·[a∅·b∅]"),
    ],
)
def test_dot_general_is_labelled_with_its_contraction(dn: Any, label: str) -> None:
    assert get_op("dot_general").describe({"dimension_numbers": dn})[0] == label


def _math_network() -> gb.Network:
    g = nx.DiGraph()
    g.add_node("q", op="param", shape=(2, 3, 4), init="normal")
    g.add_node("k", op="param", shape=(2, 5, 4), init="normal")
    g.add_node("s", op="dot_general", dimension_numbers=[[[2], [2]], [[0], [0]]])
    g.add_edges_from([("q", "s", {"arg": 0}), ("k", "s", {"arg": 1})])
    g.add_node("p", op="integer_pow", y=3)
    g.add_node("m", op="reduce_max", axes=[2])
    g.add_node("e", op="erfc")
    g.add_node("r", op="round", rounding_method=1)
    g.add_node("t", op="mul")
    g.add_node("L", op="sum")
    g.add_edges_from([("s", "p"), ("p", "m"), ("m", "e"), ("m", "r")])
    g.add_edges_from([("e", "t", {"arg": 0}), ("r", "t", {"arg": 1}), ("t", "L")])
    return gb.Network(g, loss="L")


def test_a_network_of_math_ops_round_trips_through_json(tmp_path: Any) -> None:
    """Every attribute form (nested lists, ints) survives to_json/from_json unchanged."""
    net = _math_network()
    net.to_json(tmp_path / "net.json")
    back = gb.Network.from_json(tmp_path / "net.json")
    for node in ("s", "p", "m", "r"):
        assert back.graph.nodes[node] == net.graph.nodes[node]
    params = net.compile("numpy").init(seed=1)
    want = net.compile("numpy").value_and_grad(params, {})
    got = back.compile("numpy").value_and_grad(params, {})
    assert got[0] == want[0]
    assert any(np.any(g != 0) for g in want[1].values())
    for name in params:
        np.testing.assert_array_equal(got[1][name], want[1][name])


def test_a_network_of_math_ops_runs_renders_and_agrees_across_backends_and_dtypes() -> None:
    """Attention scores, a cube and a max: float32 and float64 on both backends agree with
    jax.value_and_grad, and the drawing shows the contraction and the reduced axis."""
    g = nx.DiGraph()
    g.add_node("q", op="param", shape=(2, 3, 4), init="normal")
    g.add_node("k", op="param", shape=(2, 5, 4), init="normal")
    g.add_node("s", op="dot_general", dimension_numbers=[[[2], [2]], [[0], [0]]])
    g.add_edges_from([("q", "s", {"arg": 0}), ("k", "s", {"arg": 1})])
    g.add_node("p", op="integer_pow", y=3)
    g.add_node("m", op="reduce_max", axes=[2])
    g.add_node("L", op="sum")
    g.add_edges_from([("s", "p"), ("p", "m"), ("m", "L")])
    net = gb.Network(g, loss="L")
    source = gb.render(net, wrt="q").source
    assert "·[a2·b2, batch a0=b0]" in source and "max over axis 2" in source
    reference = net.compile("numpy").init(seed=0)
    with jax.enable_x64(True):
        q, k = jnp.asarray(reference["q"]), jnp.asarray(reference["k"])

        def loss(q: Any, k: Any) -> Any:
            s = lax.dot_general(q, k, (((2,), (2,)), ((0,), (0,))), precision="highest")
            return lax.reduce_max(lax.integer_pow(s, 3), (2,)).sum()

        want, want_grads = jax.value_and_grad(loss, argnums=(0, 1))(q, k)
    for backend in BACKENDS:
        for dtype, rtol in (("float64", 1e-12), ("float32", 1e-5)):
            prog = net.compile(backend, dtype=dtype)
            params = {name: value.astype(dtype) for name, value in reference.items()}
            value, grads = prog.value_and_grad(params, {})
            assert np.asarray(grads["q"]).dtype == dtype
            np.testing.assert_allclose(float(value), float(want), rtol=rtol)
            for name, expected in zip(("q", "k"), want_grads, strict=True):
                np.testing.assert_allclose(grads[name], np.asarray(expected), rtol=rtol * 10)


# ---------------------------------------------------------------- integer_pow


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("y", [0, 1, 2, 3, 4, 7, -1, -2, -3, 16])
def test_integer_pow_matches_lax(y: int, backend: str, rng: np.random.Generator) -> None:
    x = (0.5 + rng.random((3, 4))) * rng.choice([-1.0, 1.0], (3, 4))
    compare("integer_pow", [x], {"y": y}, lambda v: lax.integer_pow(v, y), backend, rng)


def test_integer_pow_at_zero_is_what_jax_gives(rng: np.random.Generator) -> None:
    """0**0 = 1 with zero cotangent; 0**-1 = inf; 0**2's slope is 0."""
    x = np.array([0.0, -0.0, 2.0])
    for y in (0, 2, 3, -1):
        with jax.enable_x64(True):
            want, pullback = jax.vjp(lambda v, y=y: lax.integer_pow(v, y), jnp.asarray(x))
            (want_ct,) = pullback(jnp.ones(3))
        with np.errstate(divide="ignore"):  # 1/0 is inf, as in JAX
            out, (ct,) = run_op("integer_pow", [x], {"y": y}, np.ones(3), "numpy")
        np.testing.assert_array_equal(out, np.asarray(want))
        np.testing.assert_array_equal(ct, np.asarray(want_ct))


@pytest.mark.parametrize(
    ("y", "label", "grad"),
    [(2, "x²", "2x"), (3, "x³", "3x²"), (-1, "x⁻¹", "−x⁻²"), (-2, "x⁻²", "−2x⁻³"), (0, "x⁰", "0")],
)
def test_integer_pow_is_labelled_with_its_exponent(y: int, label: str, grad: str) -> None:
    assert get_op("integer_pow").describe({"y": y}) == (label, (grad,))


# ---------------------------------------------------------------- elementwise ops


def _positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return 0.1 + rng.random(shape) * 4


def _signed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) * 2


UNARY = [
    ("sqrt", lax.sqrt, _positive),
    ("rsqrt", lax.rsqrt, _positive),
    ("abs", lax.abs, _signed),
    ("sign", lax.sign, _signed),
    ("erf", lax.erf, _signed),
    ("erfc", lax.erfc, _signed),
    ("log1p", lax.log1p, lambda rng, shape: rng.random(shape) * 3 - 0.9),
    ("expm1", lax.expm1, _signed),
    ("sin", lax.sin, _signed),
    ("cos", lax.cos, _signed),
    ("tan", lax.tan, lambda rng, shape: rng.uniform(-1.5, 1.5, shape)),
    ("atan", lax.atan, _signed),
    ("exp2", lax.exp2, _signed),
    ("floor", lax.floor, _signed),
    ("ceil", lax.ceil, _signed),
    ("is_finite", lambda v: lax.is_finite(v).astype(v.dtype), _signed),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(3, 4), (), (1, 5, 1), (0, 2)])
@pytest.mark.parametrize(("name", "prim", "draw"), UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops_match_lax(
    name: str, prim: Any, draw: Any, shape: tuple[int, ...], backend: str, rng: np.random.Generator
) -> None:
    compare(name, [draw(rng, shape)], {}, prim, backend, rng)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", [0, 1])
def test_round_matches_lax_at_halves(method: int, backend: str, rng: np.random.Generator) -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, 3.7, -0.0, 2**52 + 1.0])
    compare("round", [x], {"rounding_method": method}, lambda v: lax.round(v, method), backend, rng)


@pytest.mark.parametrize("backend", BACKENDS)
def test_is_finite_and_the_steps_on_infinities_and_nan(
    backend: str, rng: np.random.Generator
) -> None:
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -2.5, 1e308])
    for name, prim in (
        ("is_finite", lambda v: lax.is_finite(v).astype(v.dtype)),
        ("floor", lax.floor),
        ("ceil", lax.ceil),
        ("round", lax.round),
    ):
        with jax.enable_x64(True):
            want = np.asarray(prim(jnp.asarray(x)))
        out, (ct,) = run_op(name, [x], {}, np.ones(6), backend)
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(ct, np.zeros(6))


@pytest.mark.parametrize("backend", BACKENDS)
def test_abs_and_sign_at_zero_are_what_jax_gives(backend: str) -> None:
    """|x|'s slope at ±0 is 1 (JAX's select(x >= 0, g, −g)); sign's cotangent is 0."""
    x = np.array([0.0, -0.0, 1.5, -1.5])
    for name, prim in (("abs", lax.abs), ("sign", lax.sign)):
        with jax.enable_x64(True):
            want, pullback = jax.vjp(prim, jnp.asarray(x))
            (want_ct,) = pullback(jnp.ones(4))
        out, (ct,) = run_op(name, [x], {}, np.ones(4), backend)
        np.testing.assert_array_equal(out, np.asarray(want))
        np.testing.assert_array_equal(ct, np.asarray(want_ct))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("a", "b"), [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,))]
)
@pytest.mark.parametrize(
    ("name", "prim"), [("pow", lax.pow), ("max", lax.max), ("min", lax.min)], ids=str
)
def test_binary_ops_match_lax_with_broadcasting(
    name: str,
    prim: Any,
    a: tuple[int, ...],
    b: tuple[int, ...],
    backend: str,
    rng: np.random.Generator,
) -> None:
    """lax wants equal shapes: the reference broadcasts first, as jnp does before lax.*."""
    x = _positive(rng, a) if name == "pow" else _signed(rng, a)
    y = _signed(rng, b)
    shape = np.broadcast_shapes(a, b)

    def ref(u: Any, v: Any) -> Any:
        return prim(jnp.broadcast_to(u, shape), jnp.broadcast_to(v, shape))

    compare(name, [x, y], {}, ref, backend, rng)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "prim"), [("max", lax.max), ("min", lax.min)])
def test_max_and_min_split_g_at_ties_as_jax_does(
    name: str, prim: Any, backend: str, rng: np.random.Generator
) -> None:
    a = np.array([1.0, 2.0, 3.0, -0.0, 5.0])
    b = np.array([1.0, 1.0, 4.0, 0.0, 5.0])
    compare(name, [a, b], {}, prim, backend, rng)
    _, (ga, gb) = run_op(name, [a, b], {}, np.ones(5), backend)
    assert ga[0] == gb[0] == ga[3] == gb[3] == 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_at_zero_base_is_what_jax_gives(backend: str, rng: np.random.Generator) -> None:
    """log(a) counts as 0 where a == 0, so b's cotangent is 0 there, not NaN."""
    a = np.array([0.0, 0.0, 2.0, 0.5])
    b = np.array([2.0, 3.5, 0.0, -1.5])
    compare("pow", [a, b], {}, lax.pow, backend, rng)


# ---------------------------------------------------------------- reduce_max / reduce_min

REDUCTIONS = [
    ((3, 4), [1]),
    ((3, 4), [0]),
    ((2, 3, 4), [0, 2]),
    ((2, 3, 4), [2, 0]),
    ((2, 3, 4), [0, 1, 2]),
    ((2, 3, 4), []),
    ((3, 1, 4), [1]),
    ((5,), [0]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("shape", "axes"), REDUCTIONS)
@pytest.mark.parametrize(
    ("name", "prim"), [("reduce_max", lax.reduce_max), ("reduce_min", lax.reduce_min)]
)
def test_reductions_match_lax(
    name: str,
    prim: Any,
    shape: tuple[int, ...],
    axes: list[int],
    backend: str,
    rng: np.random.Generator,
) -> None:
    x = rng.standard_normal(shape)
    compare(name, [x], {"axes": axes}, lambda v: prim(v, tuple(axes)), backend, rng)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "prim"), [("reduce_max", lax.reduce_max), ("reduce_min", lax.reduce_min)]
)
def test_reductions_share_g_among_ties_as_jax_does(
    name: str, prim: Any, backend: str, rng: np.random.Generator
) -> None:
    """Three entries tie for the max (min) of a row: each gets g/3."""
    x = np.array([[2.0, 1.0, 2.0, 2.0], [-1.0, -1.0, 3.0, 0.0], [4.0, 4.0, 4.0, 4.0]])
    x = x if name == "reduce_max" else -x
    for axes in ([1], [0], [0, 1]):
        compare(name, [x], {"axes": axes}, lambda v, axes=axes: prim(v, tuple(axes)), backend, rng)
    _, (ct,) = run_op(name, [x], {"axes": [1]}, np.ones(3), backend)
    np.testing.assert_allclose(ct[0], [1 / 3, 0, 1 / 3, 1 / 3], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "prim"), [("reduce_max", lax.reduce_max), ("reduce_min", lax.reduce_min)]
)
def test_reductions_give_nan_cotangents_to_a_slice_holding_nan_as_jax_does(
    name: str, prim: Any, backend: str, rng: np.random.Generator
) -> None:
    """No entry equals a NaN result, so JAX's g·[x=out]/#ties is 0/0 across that slice."""
    x = np.array([[np.nan, 2.0, 1.0], [3.0, np.nan, np.nan], [1.0, 5.0, 5.0]])
    for axes in ([1], [0], [0, 1], []):
        compare(name, [x], {"axes": axes}, lambda v, axes=axes: prim(v, tuple(axes)), backend, rng)
    _, (ct,) = run_op(name, [x], {"axes": [1]}, np.ones(3), backend)
    assert np.isnan(ct[:2]).all() and not np.isnan(ct[2]).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_reduction_over_an_empty_axis_is_its_identity(backend: str) -> None:
    x = np.zeros((0, 3))
    for name, prim, identity in (
        ("reduce_max", lax.reduce_max, -np.inf),
        ("reduce_min", lax.reduce_min, np.inf),
    ):
        with jax.enable_x64(True):
            want = np.asarray(prim(jnp.asarray(x), (0,)))
        out, (ct,) = run_op(name, [x], {"axes": [0]}, np.ones(3), backend)
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(out, np.full(3, identity))
        assert ct.shape == (0, 3)


@pytest.mark.parametrize("name", ["reduce_max", "reduce_min"])
def test_reductions_are_labelled_with_their_axes(name: str) -> None:
    word = "max" if name == "reduce_max" else "min"
    assert get_op(name).describe({"axes": [1]})[0] == f"{word} over axis 1"
    assert get_op(name).describe({"axes": [0, 2]})[0] == f"{word} over axes 0,2"


# ---------------------------------------------------------------- erf and erfc to full accuracy


def _grid() -> np.ndarray:
    """Points across every branch of the approximation and both tails, with their edges."""
    dense = np.linspace(-30, 30, 120_001)
    edges = np.array([0.46875, 4.0, 26.543, 26.55, 27.3, 5.9, 6.0, 10.0, 0.5, 1.0, 2.0])
    edges = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf)])
    tiny = np.array([5e-324, 1e-310, 2.2250738585072014e-308, 1e-200, 1e-20, 1e-9, 1e-5])
    huge = np.array([1e3, 1e10, 1e100, 1e300, np.finfo(np.float64).max])
    positive = np.concatenate([dense[dense > 0], edges, tiny, huge])
    return np.concatenate([positive, -positive, [0.0, -0.0]])


TINY = np.finfo(np.float64).tiny
"""The smallest normal float64: below it (subnormal numbers) relative error loses meaning."""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "exact"), [("erf", math.erf), ("erfc", math.erfc)])
def test_erf_and_erfc_are_accurate_to_1e_14_on_a_dense_grid(
    name: str, exact: Any, backend: str
) -> None:
    """Relative error <= 1e-14 against the C library wherever the result is a normal number
    (erfc's tail included, down to 2.2e-308 at x = 26.5); below that, within two of the
    smallest subnormal steps on NumPy (XLA on CPU flushes subnormal numbers to zero)."""
    x = _grid()
    want = np.array([exact(v) for v in x])
    if backend == "jax":
        keep = (np.abs(x) >= TINY) | (x == 0)
        x, want = x[keep], want[keep]
    op = get_op(name)
    with jax.enable_x64(True):
        xp = np if backend == "numpy" else jnp
        got = np.asarray(op.forward(xp, xp.asarray(x)))
    normal = np.abs(want) >= TINY
    rel = np.abs(got[normal] - want[normal]) / np.abs(want[normal])
    assert float(np.max(rel)) <= 1e-14
    assert np.array_equal(np.signbit(got[x == 0]), np.signbit(want[x == 0]))  # erf(−0) = −0
    if backend == "numpy":
        assert np.max(np.abs(got[~normal] - want[~normal]), initial=0.0) <= 1e-323


@pytest.mark.parametrize("backend", BACKENDS)
def test_erf_and_erfc_at_infinities_and_nan(backend: str) -> None:
    x = np.array([np.inf, -np.inf, np.nan])
    with jax.enable_x64(True):
        xp = np if backend == "numpy" else jnp
        erf = np.asarray(get_op("erf").forward(xp, xp.asarray(x)))
        erfc = np.asarray(get_op("erfc").forward(xp, xp.asarray(x)))
    np.testing.assert_array_equal(erf, [1.0, -1.0, np.nan])
    np.testing.assert_array_equal(erfc, [0.0, 2.0, np.nan])


@pytest.mark.parametrize(
    ("name", "prim", "exact"), [("erf", lax.erf, math.erf), ("erfc", lax.erfc, math.erfc)]
)
def test_erf_and_erfc_in_float32(name: str, prim: Any, exact: Any) -> None:
    """float32 in, float32 out, within 1e-6 of the exact value and 1e-5 of JAX's."""
    x = np.linspace(-9, 9, 4001, dtype=np.float32)
    want = np.array([exact(float(v)) for v in x])
    jax_value = np.asarray(prim(jnp.asarray(x)))
    normal = np.abs(want) >= np.finfo(np.float32).tiny
    for xp in (np, jnp):
        got = np.asarray(get_op(name).forward(xp, xp.asarray(x)))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got[normal], want[normal], rtol=1e-6)
        np.testing.assert_allclose(got[normal], jax_value[normal], rtol=1e-5)


# ---------------------------------------------------------------- hostile attributes


def _tiny(op: str, shapes: list[tuple[int, ...]], attrs: dict[str, Any]) -> nx.DiGraph:
    g = nx.DiGraph()
    for k, shape in enumerate(shapes):
        g.add_node(f"x{k}", op="input", shape=shape)
        g.add_edge(f"x{k}", "node", arg=k)
    g.nodes["node"].update(op=op, **attrs)
    g.add_node("L", op="sum")
    g.add_edge("node", "L")
    return g


HOSTILE = [
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": "1,0"}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[1], [0]]]}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[1], [0]], [[], [], []]]}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[1.0], [0]], [[], []]]}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[True], [0]], [[], []]]}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[2], [0]], [[], []]]}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[-1], [0]], [[], []]]}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[0], [0]], [[], []]]}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[1, 1], [0, 0]], [[], []]]}),
    ("dot_general", [(3, 4), (4, 5)], {"dimension_numbers": [[[1], []], [[], []]]}),
    ("dot_general", [(2, 4), (2, 4)], {"dimension_numbers": [[[1], [1]], [[1], [0]]]}),
    ("dot_general", [(3, 4), (4, 5)], {}),
    ("integer_pow", [(3,)], {"y": 2.0}),
    ("integer_pow", [(3,)], {"y": True}),
    ("integer_pow", [(3,)], {"y": "2"}),
    ("integer_pow", [(3,)], {"y": 2**70}),
    ("integer_pow", [(3,)], {}),
    ("reduce_max", [(3, 4)], {"axes": 1}),
    ("reduce_max", [(3, 4)], {"axes": [2]}),
    ("reduce_max", [(3, 4)], {"axes": [0, 0]}),
    ("reduce_max", [(3, 4)], {"axes": [0.0]}),
    ("reduce_min", [(3, 4)], {"axes": None}),
    ("reduce_min", [(3, 4)], {}),
    ("max", [(3, 4), (5,)], {}),
    ("pow", [(3, 4), (2, 4)], {}),
    ("round", [(3,)], {"rounding_method": 2}),
    ("round", [(3,)], {"rounding_method": "TO_NEAREST_EVEN"}),
    ("round", [(3,)], {"rounding_method": True}),
]


@pytest.mark.parametrize(("op", "shapes", "attrs"), HOSTILE)
def test_hostile_attributes_are_a_graph_error_naming_the_node(
    op: str, shapes: list[tuple[int, ...]], attrs: dict[str, Any]
) -> None:
    with pytest.raises(GraphError, match=r"'node'"):
        gb.Network(_tiny(op, shapes, attrs), loss="L")


@pytest.mark.parametrize(
    ("op", "attrs", "says"),
    [
        ("integer_pow", {"y": 10**400}, "y=1000"),
        ("reduce_max", {"axes": [2]}, "axes=[2]"),
        ("reduce_min", {"axes": [-3]}, "axes=[-3]"),
        ("reduce_max", {"axes": [10**400]}, "axes=[1000"),
    ],
)
def test_hostile_attribute_messages_name_the_attribute_and_cut_huge_ints(
    op: str, attrs: dict[str, Any], says: str
) -> None:
    with pytest.raises(GraphError) as info:
        gb.Network(_tiny(op, [(3, 4)], attrs), loss="L")
    message = str(info.value)
    assert says in message and len(message) < 500, message
