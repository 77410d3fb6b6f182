"""The math ops against the jax.lax primitives they stand for, in float64 on both backends:
forward equal to the primitive to 1e-12, cotangents equal to jax.vjp of the primitive to 1e-10,
with attributes given as a JSON graph file gives them (lists where JAX has tuples)."""

from __future__ import annotations

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
    """The op's forward and its cotangents (summed to each operand's shape) on ``backend``."""
    op = get_op(name)
    with jax.enable_x64(True):
        xp = np if backend == "numpy" else jnp
        xs = [xp.asarray(x) for x in operands]
        out = op.forward(xp, *xs, **attrs)
        cts = op.vjp(xp, xp.asarray(g), out, *xs, **attrs)
        assert out.dtype == np.float64
        grads = [np.asarray(sum_to(xp, ct, x.shape)) for ct, x in zip(cts, xs, strict=True)]
        assert op.shape(*(tuple(x.shape) for x in xs), **attrs) == tuple(out.shape)
        return np.asarray(out), grads


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
        scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
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
]


@pytest.mark.parametrize(("op", "shapes", "attrs"), HOSTILE)
def test_hostile_attributes_are_a_graph_error_naming_the_node(
    op: str, shapes: list[tuple[int, ...]], attrs: dict[str, Any]
) -> None:
    with pytest.raises(GraphError, match=r"'node'"):
        gb.Network(_tiny(op, shapes, attrs), loss="L")
