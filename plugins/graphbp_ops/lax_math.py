"""The math ops a JAX function's jaxpr is made of, one per ``jax.lax`` primitive, with JAX's
own derivative rules: general contraction (``dot_general``), powers, roots, ``abs``/``sign``,
``erf``/``erfc``, ``log1p``/``expm1``, ``sin``/``cos`` and the maxima and minima.

Attributes arrive as a JSON graph file gives them (lists where JAX has tuples) and are
checked by each shape rule before anything is computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from graphbp import Op
from graphbp.op import Example
from graphbp_ops._examples import BROADCAST_SHAPES, away_from_zero
from graphbp_ops._shapes import broadcast

Shape = tuple[int, ...]
Axes = tuple[int, ...]
_ALL = (True, True)


def _ints(value: Any, what: str) -> Axes:
    """``value`` as a tuple of ints (a list or tuple of them); TypeError otherwise."""
    if not isinstance(value, list | tuple):
        raise TypeError(f"{what} must be a list of ints; got {type(value).__name__}")
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{what} must be a list of ints; it holds {type(v).__name__}")
    return tuple(value)


# ---------------------------------------------------------------- dot_general


class DimensionNumbers(NamedTuple):
    """``((lhs_contracting, rhs_contracting), (lhs_batch, rhs_batch))`` as tuples."""

    a_contract: Axes
    b_contract: Axes
    a_batch: Axes
    b_batch: Axes


def _dimension_numbers(dn: Any) -> DimensionNumbers:
    """The attribute as a hashable DimensionNumbers; TypeError/ValueError for another form."""
    form = "[[lhs_contracting, rhs_contracting], [lhs_batch, rhs_batch]] (lists of ints)"
    if not isinstance(dn, list | tuple) or len(dn) != 2:
        raise TypeError(f"dimension_numbers must be {form}; got {type(dn).__name__}")
    for pair in dn:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise TypeError(f"dimension_numbers must be {form}")
    (ac, bc), (ab, bb) = dn
    return DimensionNumbers(
        _ints(ac, "lhs_contracting"),
        _ints(bc, "rhs_contracting"),
        _ints(ab, "lhs_batch"),
        _ints(bb, "rhs_batch"),
    )


def _free(ndim: int, *used: Axes) -> Axes:
    taken = {d for axes in used for d in axes}
    return tuple(d for d in range(ndim) if d not in taken)


def _prod(sizes: Sequence[int]) -> int:
    n = 1
    for s in sizes:
        n *= s
    return n


class Contraction(NamedTuple):
    """How one dot_general runs as transpose + reshape + matmul."""

    a_perm: Axes | None
    """a's axes as (batch, free, contracting); None when that is its order already."""
    a_mat: Shape
    """a reshaped to (B, M, K), or (M, K) without batch axes."""
    b_perm: Axes | None
    b_mat: Shape
    """b reshaped to (B, K, N), or (K, N)."""
    out: Shape
    """The result: batch sizes, a's free sizes, b's free sizes."""


@lru_cache(maxsize=1024)
def _contraction(dn: DimensionNumbers, a: Shape, b: Shape) -> Contraction:
    """Check ``dn`` against the operand shapes as lax.dot_general does and plan the product.

    Raises:
        ValueError: an axis out of range or named twice, or paired axes of different sizes.
    """
    for axes, shape, what in (
        (dn.a_contract, a, "lhs_contracting"),
        (dn.b_contract, b, "rhs_contracting"),
        (dn.a_batch, a, "lhs_batch"),
        (dn.b_batch, b, "rhs_batch"),
    ):
        for d in axes:
            if not 0 <= d < len(shape):
                raise ValueError(
                    f"dot_general: {what} axis {d} is out of range for an operand of "
                    f"{len(shape)} axes (axes count from 0, no negative axes)"
                )
    for side, contract, batch in (
        ("lhs", dn.a_contract, dn.a_batch),
        ("rhs", dn.b_contract, dn.b_batch),
    ):
        both = contract + batch
        if len(set(both)) != len(both):
            raise ValueError(
                f"dot_general: the {side} contracting and batch axes {list(contract)} and "
                f"{list(batch)} name an axis twice"
            )
    for what, x, y in (
        ("contracting", dn.a_contract, dn.b_contract),
        ("batch", dn.a_batch, dn.b_batch),
    ):
        if len(x) != len(y):
            raise ValueError(
                f"dot_general: lhs and rhs need as many {what} axes; got {list(x)} and {list(y)}"
            )
        for i, j in zip(x, y, strict=True):
            if a[i] != b[j]:
                raise ValueError(
                    f"dot_general: {what} axes lhs {i} (size {a[i]}) and rhs {j} "
                    f"(size {b[j]}) differ in size"
                )
    a_free = _free(len(a), dn.a_contract, dn.a_batch)
    b_free = _free(len(b), dn.b_contract, dn.b_batch)
    a_perm = (*dn.a_batch, *a_free, *dn.a_contract)
    b_perm = (*dn.b_batch, *dn.b_contract, *b_free)
    batch = tuple(a[d] for d in dn.a_batch)
    m, k, n = (
        _prod([a[d] for d in a_free]),
        _prod([a[d] for d in dn.a_contract]),
        _prod([b[d] for d in b_free]),
    )
    lead = (_prod(batch),) if batch else ()
    return Contraction(
        None if a_perm == tuple(range(len(a))) else a_perm,
        (*lead, m, k),
        None if b_perm == tuple(range(len(b))) else b_perm,
        (*lead, k, n),
        (*batch, *(a[d] for d in a_free), *(b[d] for d in b_free)),
    )


def _dot(xp: Any, a: Any, b: Any, plan: Contraction) -> Any:
    a2 = a if plan.a_perm is None else xp.transpose(a, plan.a_perm)
    b2 = b if plan.b_perm is None else xp.transpose(b, plan.b_perm)
    if a2.shape != plan.a_mat:
        a2 = xp.reshape(a2, plan.a_mat)
    if b2.shape != plan.b_mat:
        b2 = xp.reshape(b2, plan.b_mat)
    out = a2 @ b2
    return out if out.shape == plan.out else xp.reshape(out, plan.out)


class Transposed(NamedTuple):
    """One operand's cotangent: g contracted with the other operand, then transposed."""

    dn: DimensionNumbers
    perm: Axes | None


@lru_cache(maxsize=1024)
def _transposed(dn: DimensionNumbers, x_ndim: int, y_ndim: int, swap: bool) -> Transposed:
    """JAX's ``_dot_general_transpose_lhs``: the cotangent of x in dot_general(x, y, dn)
    (or in dot_general(y, x, ·) with ``swap``) is dot_general(g, y, ·) transposed."""
    x_contract, y_contract, x_batch, y_batch = dn
    x_kept = _free(x_ndim, x_contract, x_batch)
    y_kept = _free(y_ndim, y_contract, y_batch)
    nb = len(x_batch)
    if swap:  # g's axes: batch, y's free (lhs), x's free (rhs)
        ans_y = tuple(range(nb, nb + len(y_kept)))
    else:
        ans_y = tuple(range(nb + len(x_kept), nb + len(x_kept) + len(y_kept)))
    dims = DimensionNumbers(ans_y, y_kept, tuple(range(nb)), y_batch)
    order = sorted(range(len(y_contract)), key=lambda i: y_contract[i])
    unsorted = (*x_batch, *x_kept, *(x_contract[i] for i in order))
    perm = tuple(sorted(range(x_ndim), key=lambda i: unsorted[i]))
    return Transposed(dims, None if perm == tuple(range(x_ndim)) else perm)


def _cotangent(xp: Any, g: Any, y: Any, t: Transposed) -> Any:
    ct = _dot(xp, g, y, _contraction(t.dn, g.shape, y.shape))
    return ct if t.perm is None else xp.transpose(ct, t.perm)


class DotGeneral(Op):
    """``lax.dot_general``: a product contracting pairs of axes, with shared batch axes.

    The result's axes are the batch axes, then a's free axes, then b's, each in order.
    """

    name = "dot_general"
    label = "·"
    local_grads = ("·Bᵀ", "Aᵀ·")
    vjp_reads = (0, 1)

    def forward(self, xp: Any, a: Any, b: Any, *, dimension_numbers: Any) -> Any:
        dn = _dimension_numbers(dimension_numbers)
        return _dot(xp, a, b, _contraction(dn, a.shape, b.shape))

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        a: Any,
        b: Any,
        *,
        dimension_numbers: Any,
        needs: tuple[bool, ...] = _ALL,
    ) -> tuple[Any, Any]:
        dn = _dimension_numbers(dimension_numbers)
        ga = gb = None
        if needs[0]:
            ga = _cotangent(xp, g, b, _transposed(dn, a.ndim, b.ndim, False))
        if needs[1]:
            swapped = DimensionNumbers(dn.b_contract, dn.a_contract, dn.b_batch, dn.a_batch)
            gb = _cotangent(xp, g, a, _transposed(swapped, b.ndim, a.ndim, True))
        return ga, gb

    def shape(self, a: Shape, b: Shape, *, dimension_numbers: Any) -> Shape:
        return _contraction(_dimension_numbers(dimension_numbers), a, b).out

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """``·`` for a matrix product (a's last axis with b's first); otherwise the contracted
        and batch axes too, as ``·[1;0|0;0]`` (lhs;rhs contracting | lhs;rhs batch)."""
        try:
            dn = _dimension_numbers(attrs.get("dimension_numbers"))
        except TypeError:
            return self.label, self.local_grads
        if dn.b_contract == (0,) and not dn.a_batch and len(dn.a_contract) == 1:
            return self.label, self.local_grads

        def axes(x: Axes) -> str:
            return ",".join(map(str, x))

        text = f"{axes(dn.a_contract)};{axes(dn.b_contract)}"
        if dn.a_batch:
            text += f"|{axes(dn.a_batch)};{axes(dn.b_batch)}"
        return f"·[{text}]", self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, Shape, Any]] = [
            ((3, 4), (4, 5), [[[1], [0]], [[], []]]),
            ((2, 3, 4), (4, 5), [[[2], [0]], [[], []]]),
            ((4, 3), (5, 4), [[[0], [1]], [[], []]]),
            ((4,), (4,), [[[0], [0]], [[], []]]),
            ((3,), (4,), [[[], []], [[], []]]),
            ((2, 3, 4), (2, 4, 5), [[[2], [1]], [[0], [0]]]),
            ((2, 5, 3, 4), (2, 5, 4, 3), [[[3], [2]], [[0, 1], [0, 1]]]),
            ((3, 2, 4, 5), (5, 4, 2), [[[3, 2], [0, 1]], [[1], [2]]]),
            ((2, 3), (3, 2), [[[0, 1], [1, 0]], [[], []]]),
            ((1, 3, 1), (1, 3), [[[1], [1]], [[0], [0]]]),
        ]
        return [
            ((rng.standard_normal(a), rng.standard_normal(b)), {"dimension_numbers": dn})
            for a, b, dn in cases
        ]


# ---------------------------------------------------------------- integer_pow

_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _exponent(y: Any) -> int:
    if not isinstance(y, int) or isinstance(y, bool):
        raise TypeError(f"integer_pow: y must be an int; got {type(y).__name__}")
    if abs(y) >= 2**63:
        raise ValueError(f"integer_pow: y={y} is out of range (|y| < 2**63)")
    return y


def _power(xp: Any, x: Any, y: int) -> Any:
    """x**y by repeated squaring, as lax.integer_pow computes it (y any int)."""
    if y == 0:
        return xp.ones_like(x)
    n = -y if y < 0 else y
    acc: Any = None
    while n > 0:
        if n & 1:
            acc = x if acc is None else acc * x
        n >>= 1
        if n > 0:
            x = x * x
    if y < 0:
        return 1 / acc
    return acc if acc is not x else x * 1  # a new array, never the operand itself


class IntegerPow(Op):
    name = "integer_pow"
    label = "xⁿ"
    local_grads = ("n·xⁿ⁻¹",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any, *, y: int) -> Any:
        return _power(xp, x, _exponent(y))

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, y: int) -> tuple[Any]:
        y = _exponent(y)
        if y == 0:
            return (xp.zeros_like(g),)
        if y == 1:
            return (g,)
        if y == 2:
            return (g * (2 * x),)
        return (g * (y * _power(xp, x, y - 1)),)

    def shape(self, x: Shape, *, y: int) -> Shape:
        _exponent(y)
        return x

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """``x²``, ``x⁻¹`` with ``2x``, ``−x⁻²`` for the node's exponent."""
        y = attrs.get("y")
        if not isinstance(y, int) or isinstance(y, bool):
            return self.label, self.local_grads
        if y == 0:
            return "x⁰", ("0",)
        if y == 1:
            return "x", ("1",)
        power = f"x{str(y - 1).translate(_SUPERSCRIPTS)}" if y != 2 else "x"
        factor = str(y).replace("-", "−")
        grad = f"−{power}" if y == -1 else f"{factor}{power}"
        return f"x{str(y).translate(_SUPERSCRIPTS)}", (grad,)

    def examples(self, rng: Any) -> list[Example]:
        x = away_from_zero(rng, (3, 4), margin=0.5)
        return [((x,), {"y": y}) for y in (2, 3, 0, 1, -1, -2, 5)] + [
            ((rng.standard_normal((2, 1, 3)),), {"y": 4})
        ]


_ = BROADCAST_SHAPES, broadcast  # used by the binary ops below
