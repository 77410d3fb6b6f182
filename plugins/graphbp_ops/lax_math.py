"""The math ops a JAX function's jaxpr is made of, one per ``jax.lax`` primitive, with JAX's
own derivative rules: general contraction (``dot_general``), powers and roots, ``abs`` and
``sign``, ``erf``/``erfc`` (computed here: NumPy has neither), ``log1p``/``expm1``, ``exp2``,
``sin``/``cos``/``tan``/``atan``, the steps ``floor``/``ceil``/``round``/``is_finite`` (zero
cotangent), maxima and minima, elementwise and over axes, and ``logaddexp``/``logaddexp2``
(JAX's custom_jvp functions, with their custom rules).

Attributes arrive as a JSON graph file gives them (lists where JAX has tuples) and are
checked by each shape rule before anything is computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from graphbp import Op
from graphbp.errors import show
from graphbp.op import Example
from graphbp_ops._examples import BROADCAST_SHAPES, away_from_zero
from graphbp_ops._shapes import axes as checked_axes
from graphbp_ops.arithmetic import _Binary
from graphbp_ops.elementwise import _Elementwise

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


class Layout(NamedTuple):
    """How one operand of a dot_general becomes a (stack of) matrices for matmul."""

    perm: Axes | None
    """The transpose that groups its axes (None: they are grouped already, no copy)."""
    mat: Shape
    """The matrix shape after the transpose: (B, rows, cols), or (rows, cols) without batch."""
    swap: bool
    """Whether the matrix is then used transposed (a view): taken when that spares a copy."""


def _layout(batch: Axes, first: Axes, second: Axes, shape: Shape, lead: Shape) -> Layout:
    """Lay an operand out as (batch, first, second) matrices; where that takes a transpose
    but (batch, second, first) does not, lay it out so and swap the matrices' axes (a view)."""
    identity = tuple(range(len(shape)))
    swap = (*batch, *first, *second) != identity and (*batch, *second, *first) == identity
    rows, cols = (second, first) if swap else (first, second)
    perm = (*batch, *rows, *cols)
    mat = (*lead, _prod([shape[d] for d in rows]), _prod([shape[d] for d in cols]))
    return Layout(None if perm == identity else perm, mat, swap)


class Contraction(NamedTuple):
    """How one dot_general runs as transpose + reshape + matmul."""

    a: Layout
    """a as (B, M, K) matrices."""
    b: Layout
    """b as (B, K, N) matrices."""
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
    batch = tuple(a[d] for d in dn.a_batch)
    lead = (_prod(batch),) if batch else ()
    return Contraction(
        _layout(dn.a_batch, a_free, dn.a_contract, a, lead),
        _layout(dn.b_batch, dn.b_contract, b_free, b, lead),
        (*batch, *(a[d] for d in a_free), *(b[d] for d in b_free)),
    )


def _matrices(xp: Any, x: Any, layout: Layout) -> Any:
    if layout.perm is not None:
        x = xp.transpose(x, layout.perm)
    if x.shape != layout.mat:
        x = xp.reshape(x, layout.mat)
    return xp.swapaxes(x, -1, -2) if layout.swap else x


def _dot(xp: Any, a: Any, b: Any, plan: Contraction) -> Any:
    out = _matrices(xp, a, plan.a) @ _matrices(xp, b, plan.b)
    return out if out.shape == plan.out else xp.reshape(out, plan.out)


def _product(xp: Any, a: Any, b: Any, dn: DimensionNumbers) -> Any:
    """dot_general(a, b, dn). NumPy: transpose + reshape + matmul. JAX (immutable arrays):
    one einsum, which JAX lowers to lax.dot_general with these very dimension numbers, so
    XLA picks the operands' layouts itself instead of copying them into transposed ones."""
    plan = _contraction(dn, a.shape, b.shape)
    if hasattr(a, "at"):
        return xp.einsum(_subscripts(dn, a.ndim, b.ndim), a, b)
    return _dot(xp, a, b, plan)


@lru_cache(maxsize=1024)
def _subscripts(dn: DimensionNumbers, a_ndim: int, b_ndim: int) -> str:
    """The einsum subscripts of dot_general(a, b, dn): out = batch, a's free, b's free."""
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    a_sub = [next(letters) for _ in range(a_ndim)]
    b_sub = [next(letters) for _ in range(b_ndim)]
    for i, j in zip(dn.a_contract + dn.a_batch, dn.b_contract + dn.b_batch, strict=True):
        b_sub[j] = a_sub[i]
    out = [a_sub[i] for i in dn.a_batch]
    out += [a_sub[i] for i in _free(a_ndim, dn.a_contract, dn.a_batch)]
    out += [b_sub[j] for j in _free(b_ndim, dn.b_contract, dn.b_batch)]
    return f"{''.join(a_sub)},{''.join(b_sub)}->{''.join(out)}"


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
    ct = _product(xp, g, y, t.dn)
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
        return _product(xp, a, b, dn)

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
        """``·`` for a matrix product x·W (a's axis 1 with b's axis 0); otherwise the axes it
        contracts and its batch axes too: ``·[a2·b2, batch a0=b0]``."""
        try:
            dn = _dimension_numbers(attrs.get("dimension_numbers"))
        except TypeError:
            return self.label, self.local_grads
        if dn == ((1,), (0,), (), ()):
            return self.label, self.local_grads

        def axes(x: Axes) -> str:
            return ",".join(map(str, x)) if x else "∅"

        text = f"a{axes(dn.a_contract)}·b{axes(dn.b_contract)}"
        if dn.a_batch:
            text += f", batch a{axes(dn.a_batch)}=b{axes(dn.b_batch)}"
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
        raise ValueError(f"integer_pow: y={show(y)} is out of range (|y| < 2**63)")
    return y


def _power(xp: Any, x: Any, y: int) -> Any:
    """x**y by repeated squaring, as lax.integer_pow computes it (y any int)."""
    if y == 0:
        return xp.ones_like(x)
    operand = x
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
    return acc if acc is not operand else x * 1  # a new array, never the operand itself


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


# ---------------------------------------------------------------- roots and powers


class Sqrt(_Elementwise):
    name = "sqrt"
    label = "√"
    local_grads = ("1/(2√x)",)
    vjp_reads = ("out",)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.sqrt(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * (0.5 / out),)

    def examples(self, rng: Any) -> list[Example]:
        return [((0.2 + rng.random((3, 4)) * 3,), {})]


class Rsqrt(_Elementwise):
    name = "rsqrt"
    label = "1/√x"
    local_grads = ("−1/(2x√x)",)
    vjp_reads = (0, "out")

    def forward(self, xp: Any, x: Any) -> Any:
        return 1 / xp.sqrt(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * (-0.5 * (out / x)),)

    def examples(self, rng: Any) -> list[Example]:
        return [((0.2 + rng.random((3, 4)) * 3,), {})]


class Pow(_Binary):
    """``lax.pow``: a to the power b, both arrays (NumPy broadcasting)."""

    name = "pow"
    label = "^"
    local_grads = ("b·aᵇ⁻¹", "log(a)·aᵇ")
    vjp_reads = (0, 1, "out")

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return a**b

    def vjp(
        self, xp: Any, g: Any, out: Any, a: Any, b: Any, needs: tuple[bool, ...] = _ALL
    ) -> tuple[Any, Any]:
        # JAX's rules for a float exponent; log(a) is taken as 0 where a == 0.
        ga = g * (b * a ** (b - 1)) if needs[0] else None
        gb = g * (xp.log(xp.where(a == 0, 1, a)) * out) if needs[1] else None
        return ga, gb

    def examples(self, rng: Any) -> list[Example]:
        return [
            ((0.3 + rng.random(a) * 2, rng.standard_normal(b)), {}) for a, b in BROADCAST_SHAPES
        ]


# ---------------------------------------------------------------- abs and sign


class Abs(_Elementwise):
    name = "abs"
    label = "|x|"
    local_grads = ("sign(x) (1 at 0)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.abs(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (xp.where(x >= 0, g, -g),)  # JAX's rule: slope 1 at 0 (and at -0.0)

    def examples(self, rng: Any) -> list[Example]:
        return [((away_from_zero(rng, (3, 4), margin=0.1),), {})]


class Sign(_Elementwise):
    name = "sign"
    label = "sign"
    local_grads = ("0",)
    vjp_reads = ()

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.sign(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (xp.zeros_like(g),)

    def examples(self, rng: Any) -> list[Example]:
        return [((away_from_zero(rng, (3, 4), margin=0.1),), {})]


# ---------------------------------------------------------------- log1p, expm1, sin, cos


class Log1p(_Elementwise):
    name = "log1p"
    label = "log1p"
    local_grads = ("1/(1+x)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.log1p(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g / (x + 1),)

    def examples(self, rng: Any) -> list[Example]:
        return [((rng.random((3, 4)) * 3 - 0.6,), {}), ((rng.standard_normal(5) * 1e-9,), {})]


class Expm1(_Elementwise):
    name = "expm1"
    label = "expm1"
    local_grads = ("eˣ",)
    vjp_reads = ("out",)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.expm1(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * (out + 1),)


class Sin(_Elementwise):
    name = "sin"
    label = "sin"
    local_grads = ("cos(x)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.sin(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * xp.cos(x),)


class Cos(_Elementwise):
    name = "cos"
    label = "cos"
    local_grads = ("−sin(x)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.cos(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (-(g * xp.sin(x)),)


class Tan(_Elementwise):
    name = "tan"
    label = "tan"
    local_grads = ("1+tan²(x)",)
    vjp_reads = ("out",)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.tan(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * (1 + out * out),)

    def examples(self, rng: Any) -> list[Example]:
        return [((rng.uniform(-1.3, 1.3, (3, 4)),), {})]


class Atan(_Elementwise):
    name = "atan"
    label = "atan"
    local_grads = ("1/(1+x²)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.arctan(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g / (1 + x * x),)


class Exp2(_Elementwise):
    name = "exp2"
    label = "2ˣ"
    local_grads = ("ln2·2ˣ",)
    vjp_reads = ("out",)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.exp2(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * out * 0.6931471805599453,)  # ln 2


# ---------------------------------------------------------------- steps: zero cotangent


class _Step(_Elementwise):
    """A piecewise-constant function of x (or a test of x): its cotangent is 0, as JAX's."""

    local_grads = ("0",)
    vjp_reads = ()

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, **attrs: Any) -> tuple[Any]:
        return (xp.zeros_like(g),)

    def examples(self, rng: Any) -> list[Example]:
        # away from integers and from halves, where the steps are
        x = rng.integers(-3, 3, (3, 4)) + rng.uniform(0.1, 0.4, (3, 4))
        return [((x * rng.choice([-1.0, 1.0], (3, 4)),), {})]


class Floor(_Step):
    name = "floor"
    label = "⌊x⌋"

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.floor(x)


class Ceil(_Step):
    name = "ceil"
    label = "⌈x⌉"

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.ceil(x)


def _rounding(method: Any) -> int:
    if type(method) is not int or method not in (0, 1):
        raise ValueError(
            f"round: rounding_method must be 0 (halves away from zero) or 1 (halves to even), "
            f"as lax.RoundingMethod; got {method!r}"[:200]
        )
    return method


class Round(_Step):
    """``lax.round``: halves away from zero (``rounding_method=0``, lax's default) or to the
    nearest even integer (1, what ``jnp.round`` uses)."""

    name = "round"
    label = "round"

    def forward(self, xp: Any, x: Any, rounding_method: int = 0) -> Any:
        if _rounding(rounding_method) == 1:
            return xp.round(x)
        # every float of magnitude >= 2**52 is an integer: clipped, ±inf never meet inf - inf
        big = xp.abs(x) >= 2**52
        c = xp.clip(x, -(2**52), 2**52)
        t = xp.trunc(c)
        return xp.where(big, x, xp.where(xp.abs(c - t) >= 0.5, t + xp.sign(c), t))

    def shape(self, x: Shape, rounding_method: int = 0) -> Shape:
        _rounding(rounding_method)
        return x

    def examples(self, rng: Any) -> list[Example]:
        (x,), _ = super().examples(rng)[0]
        return [((x,), {}), ((x,), {"rounding_method": 1})]


class IsFinite(_Step):
    name = "is_finite"
    label = "isfinite"

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.isfinite(x).astype(x.dtype)


# ---------------------------------------------------------------- erf and erfc
# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23
# (1969), as in his CALERF (netlib specfun): |x| <= 0.46875: erf(x) = x·A(x²)/B(x²);
# 0.46875 < |x| <= 4: erfc(|x|) = exp(−x²)·C(|x|)/D(|x|); |x| > 4: erfc(|x|) =
# exp(−x²)/|x|·(1/√π − P(1/x²)/(x²·Q(1/x²))). exp(−x²) is taken as exp(−s²)·exp(−(|x|−s)(|x|+s))
# with s = |x| rounded down to 1/16, so that x²'s rounding error is not amplified in the tail.

_A = (3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947)
_A4 = 0.185777706184603153
_B = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
_C = (
    0.564188496988670089,
    8.88314979438837594,
    66.1191906371416295,
    298.635138197400131,
    881.95222124176909,
    1712.04761263407058,
    2051.07837782607147,
    1230.33935479799725,
)
_C8 = 2.15311535474403846e-8
_D = (
    15.7449261107098347,
    117.693950891312499,
    537.181101862009858,
    1621.38957456669019,
    3290.79923573345963,
    4362.61909014324716,
    3439.36767414372164,
    1230.33935480374942,
)
_P = (
    0.305326634961232344,
    0.360344899949804439,
    0.125781726111229246,
    0.0160837851487422766,
    6.58749161529837803e-4,
)
_P5 = 0.0163153871373020978
_Q = (
    2.56852019228982242,
    1.87295284992346047,
    0.527905102951428412,
    0.0605183413124413191,
    0.00233520497626869185,
)
_THRESH = 0.46875
_ZERO_FROM = 27.5  # erfc(x) is 0 in float64 from 27.3 on: larger x are computed as this
_EXP_M64 = 1.603810890548638e-28  # e⁻⁶⁴ (math.exp(-64))
_RSQRT_PI = 0.56418958354775628695
_TWO_OVER_SQRT_PI = 1.1283791670955125739


def _ratio(t: Any, top: tuple[float, ...], lead: float, bottom: tuple[float, ...]) -> Any:
    """Cody's rational function in ``t``: numerator lead·tⁿ + top..., denominator tⁿ +
    bottom..., evaluated by Horner's rule as CALERF does."""
    num = lead * t
    den = t
    for a, b in zip(top[:-1], bottom[:-1], strict=True):
        num = (num + a) * t
        den = (den + b) * t
    return (num + top[-1]) / (den + bottom[-1])


def _erf_small(xp: Any, x: Any) -> Any:
    """erf(x) for |x| <= 0.46875 (x is clipped there)."""
    x = xp.clip(x, -_THRESH, _THRESH)
    return x * _ratio(x * x, _A, _A4, _B)


def _erfc_large(xp: Any, y: Any) -> Any:
    """erfc(y) for y = |x| > 0.46875 (smaller y are clipped); NaN stays NaN.

    exp(−s²) is scaled by e⁶⁴ and the product by e⁻⁶⁴ at the end, so a result below the
    smallest normal number (y > 26.5) is rounded once, not twice.
    """
    e = xp.clip(y, _THRESH, _ZERO_FROM)
    s = xp.trunc(e * 16) / 16
    gauss = xp.exp(64 - s * s) * xp.exp(-(e - s) * (e + s))
    mid = _ratio(xp.clip(y, _THRESH, 4.0), _C, _C8, _D)
    t = xp.clip(y, 4.0, _ZERO_FROM)
    u = 1 / (t * t)
    tail = (_RSQRT_PI - u * _ratio(u, _P, _P5, _Q)) / t
    return (gauss * xp.where(y <= 4, mid, tail)) * _EXP_M64


class Erf(_Elementwise):
    """The error function, to float64's full accuracy (Cody's approximations; NumPy has none)."""

    name = "erf"
    label = "erf"
    local_grads = ("2/√π·exp(−x²)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        y = xp.abs(x)
        big = (0.5 - _erfc_large(xp, y)) + 0.5
        return xp.where(y <= _THRESH, _erf_small(xp, x), xp.where(x < 0, -big, big))

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * (_TWO_OVER_SQRT_PI * xp.exp(-(x * x))),)

    def examples(self, rng: Any) -> list[Example]:
        return [((rng.standard_normal((3, 4)) * 2,), {}), ((rng.uniform(-6, 6, 9),), {})]


class Erfc(_Elementwise):
    """The complementary error function 1 − erf(x), without cancellation for large x."""

    name = "erfc"
    label = "erfc"
    local_grads = ("−2/√π·exp(−x²)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        y = xp.abs(x)
        r = _erfc_large(xp, y)
        return xp.where(y <= _THRESH, 1 - _erf_small(xp, x), xp.where(x < 0, 2 - r, r))

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * (-_TWO_OVER_SQRT_PI * xp.exp(-(x * x))),)

    def examples(self, rng: Any) -> list[Example]:
        return [((rng.standard_normal((3, 4)) * 2,), {}), ((rng.uniform(-6, 6, 9),), {})]


# ---------------------------------------------------------------- maxima and minima


def _balanced(
    xp: Any, g: Any, a: Any, b: Any, out: Any, needs: tuple[bool, ...]
) -> tuple[Any, Any]:
    """JAX's rule for max and min: the operand equal to the result gets g, both g/2 at a tie."""
    on_a = a == out
    on_b = b == out
    share = xp.where(on_a & on_b, g * 0.5, g)
    return (
        xp.where(on_a, share, 0) if needs[0] else None,
        xp.where(on_b, share, 0) if needs[1] else None,
    )


def _apart(rng: Any, shapes: tuple[Shape, Shape]) -> tuple[Any, Any]:
    """Two operands whose entries differ by at least 0.1 everywhere (no ties, no kinks)."""
    a = rng.standard_normal(shapes[0])
    gap = away_from_zero(rng, shapes[1], margin=0.1)
    return a, gap + (a if shapes[0] == shapes[1] else 0)


class Max(_Binary):
    name = "max"
    label = "max"
    local_grads = ("[a>b] (½ if a=b)", "[b>a] (½ if a=b)")
    vjp_reads = (0, 1, "out")

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return xp.maximum(a, b)

    def vjp(
        self, xp: Any, g: Any, out: Any, a: Any, b: Any, needs: tuple[bool, ...] = _ALL
    ) -> tuple[Any, Any]:
        return _balanced(xp, g, a, b, out, needs)

    def examples(self, rng: Any) -> list[Example]:
        return [(_apart(rng, (a, b)), {}) for a, b in BROADCAST_SHAPES[:2]]


class Min(_Binary):
    name = "min"
    label = "min"
    local_grads = ("[a<b] (½ if a=b)", "[b<a] (½ if a=b)")
    vjp_reads = (0, 1, "out")

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return xp.minimum(a, b)

    def vjp(
        self, xp: Any, g: Any, out: Any, a: Any, b: Any, needs: tuple[bool, ...] = _ALL
    ) -> tuple[Any, Any]:
        return _balanced(xp, g, a, b, out, needs)

    def examples(self, rng: Any) -> list[Example]:
        return [(_apart(rng, (a, b)), {}) for a, b in BROADCAST_SHAPES[:2]]


# ---------------------------------------------------------------- logaddexp


class _LogAddExp(_Binary):
    """log(bᵃ + bᵇ) for base ``b`` (e or 2), as ``jax.lax``'s custom_jvp function of that
    name computes it (max(a, b) + log_b(1 + b^−|a−b|); a+b where a−b is NaN, i.e. equal
    infinities or a NaN) and differentiates it: ∂/∂a = b^(a−out), infinities of a and of
    out replaced by 0 first (JAX's ``_replace_inf``). Its body's own derivative differs at
    a = b (max's tie, abs's kink); this rule is the one ``jax.grad`` uses."""

    vjp_reads = (0, 1, "out")

    def power(self, xp: Any, x: Any) -> Any:
        """b to the power ``x``."""
        raise NotImplementedError

    def log1p_power(self, xp: Any, x: Any) -> Any:
        """log_b(1 + bˣ)."""
        raise NotImplementedError

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        same = a == b  # equal infinities: a − b would be NaN (and NumPy would warn)
        delta = xp.where(same, 0, a) - xp.where(same, 0, b)
        # where JAX's a − b is NaN (a NaN operand, equal infinities) it returns a + b, which
        # this gives too: max(a, b) is then NaN, or the infinity plus a finite log_b 2
        return xp.maximum(a, b) + self.log1p_power(xp, -xp.abs(delta))

    def vjp(
        self, xp: Any, g: Any, out: Any, a: Any, b: Any, needs: tuple[bool, ...] = _ALL
    ) -> tuple[Any, Any]:
        top = _finite_inf(xp, out)
        return (
            g * self.power(xp, _finite_inf(xp, a) - top) if needs[0] else None,
            g * self.power(xp, _finite_inf(xp, b) - top) if needs[1] else None,
        )


def _finite_inf(xp: Any, x: Any) -> Any:
    """``x`` with +inf replaced by 0 (JAX's ``_replace_inf`` in lax's logaddexp rules)."""
    return xp.where(x == xp.inf, 0, x)


class LogAddExp(_LogAddExp):
    name = "logaddexp"
    label = "logaddexp"
    local_grads = ("exp(a−out)", "exp(b−out)")

    def power(self, xp: Any, x: Any) -> Any:
        return xp.exp(x)

    def log1p_power(self, xp: Any, x: Any) -> Any:
        return xp.log1p(xp.exp(x))


class LogAddExp2(_LogAddExp):
    name = "logaddexp2"
    label = "logaddexp2"
    local_grads = ("2^(a−out)", "2^(b−out)")

    def power(self, xp: Any, x: Any) -> Any:
        return xp.exp2(x)

    def log1p_power(self, xp: Any, x: Any) -> Any:
        return (1 / math.log(2)) * xp.log1p(xp.exp2(x))


def _reduced(x: Shape, axes: Any) -> tuple[Axes, Shape]:
    """The checked axes of a reduce_max/min (a list of ints; negative ones count from the
    end, as NumPy's) and the result's shape."""
    gone = checked_axes(list(_ints(axes, "axes")), len(x), "axes")
    return gone, tuple(d for k, d in enumerate(x) if k not in gone)


class _Chooser(Op):
    """reduce_max / reduce_min over ``axes``: g shared equally by the entries equal to the
    result (JAX's rule); over an empty axis the result is −inf (+inf), as lax's."""

    vjp_reads = (0, "out")
    identity = 0.0

    def reduce(self, xp: Any, x: Any, axis: Axes, initial: float | None) -> Any:
        raise NotImplementedError

    def forward(self, xp: Any, x: Any, *, axes: Any) -> Any:
        gone, _ = _reduced(x.shape, axes)
        empty = any(x.shape[k] == 0 for k in gone)
        return self.reduce(xp, x, gone, self.identity if empty else None)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, axes: Any) -> tuple[Any]:
        gone, _ = _reduced(x.shape, axes)
        if x.size == 0:  # nothing was chosen
            return (xp.zeros_like(x),)
        kept = tuple(1 if k in gone else d for k, d in enumerate(x.shape))
        chosen = x == xp.reshape(out, kept)
        counts = xp.sum(chosen, axis=gone, keepdims=True, dtype=g.dtype)
        # JAX's g·[x=out]/#ties: a slice holding NaN has no entry equal to its NaN result,
        # so every entry gets 0/0 = NaN (written without the division's warning).
        share = (xp.reshape(g, kept) * chosen) / xp.maximum(counts, 1)
        return (xp.where(counts > 0, share, xp.nan),)

    def shape(self, x: Shape, *, axes: Any) -> Shape:
        return _reduced(x, axes)[1]

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """``max over axis 1`` (axes as given)."""
        axes = attrs.get("axes")
        if isinstance(axes, list | tuple) and axes and all(type(a) is int for a in axes):
            which = "axis" if len(axes) == 1 else "axes"
            return f"{self.label} over {which} {','.join(map(str, axes))}", self.local_grads
        return self.label, self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        x = rng.permutation(24).reshape(2, 3, 4) * 0.25 + rng.uniform(-0.05, 0.05, (2, 3, 4))
        return [((x,), {"axes": axes}) for axes in ([0], [2], [0, 2], [0, 1, 2], [], [-1])]


class ReduceMax(_Chooser):
    name = "reduce_max"
    label = "max"
    local_grads = ("[x=max]/#ties",)
    identity = float("-inf")

    def reduce(self, xp: Any, x: Any, axis: Axes, initial: float | None) -> Any:
        if initial is None:
            return xp.max(x, axis=axis)
        return xp.max(x, axis=axis, initial=initial)


class ReduceMin(_Chooser):
    name = "reduce_min"
    label = "min"
    local_grads = ("[x=min]/#ties",)
    identity = float("inf")

    def reduce(self, xp: Any, x: Any, axis: Axes, initial: float | None) -> Any:
        if initial is None:
            return xp.min(x, axis=axis)
        return xp.min(x, axis=axis, initial=initial)
