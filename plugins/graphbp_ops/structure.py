"""Shape and structure ops with the meaning of the JAX primitives of the same names
(``lax.broadcast_in_dim``, ``lax.reshape``, ``lax.select_n``, ``lax.lt``, ...), so that a jaxpr
maps onto them one equation per node.

Every value of a program has the program's float dtype: booleans and integers are stored as
0.0/1.0 and integer-valued floats. Attributes arrive as JSON lists (or a jaxpr's tuples) and
are checked by each op's shape rule, which refuses what forward cannot compute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphbp import Op
from graphbp.errors import show
from graphbp.op import Example
from graphbp_ops._attrs import at_most_rank, axis_list, int_attr, int_list, sizes
from graphbp_ops._examples import BROADCAST_SHAPES
from graphbp_ops._shapes import broadcast

Shape = tuple[int, ...]
_ALL2 = (True, True)
_ALL3 = (True, True, True)


def _zeros(xp: Any, like: Any) -> Any:
    """A zero cotangent of ``like``'s shape and dtype (on NumPy a view of one zero)."""
    return xp.broadcast_to(xp.zeros((), like.dtype), like.shape)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _show(values: Any) -> str:
    return ",".join(str(v) for v in values)


# ------------------------------------------------------------------ broadcast_in_dim


def _broadcast_plan(x: Shape, out_shape: Any, broadcast_dimensions: Any) -> tuple[Shape, Shape]:
    """Check broadcast_in_dim's attributes against operand shape ``x``; return the output
    shape and the permutation that puts the operand's axes in output order."""
    at_most_rank("out_shape", out_shape)
    out = sizes("out_shape", out_shape)
    dims = int_list("broadcast_dimensions", broadcast_dimensions, len(x))
    if len(out) < len(x):
        raise ValueError(f"out_shape {list(out)} has fewer axes than the operand's shape {x}")
    for d in dims:
        if not 0 <= d < len(out):
            raise ValueError(
                f"broadcast_dimensions={list(dims)}: {show(d)} is not an axis of out_shape "
                f"{list(out)}"
            )
    if len(set(dims)) != len(dims):
        raise ValueError(f"broadcast_dimensions={list(dims)} names an output axis twice")
    for i, d in enumerate(dims):
        if x[i] not in (1, out[d]):
            raise ValueError(
                f"operand axis {i} has size {x[i]} but output axis {d} of out_shape "
                f"{list(out)} has size {out[d]}; it must be 1 or equal"
            )
    order = tuple(sorted(range(len(dims)), key=lambda i: dims[i]))
    return out, order


class BroadcastInDim(Op):
    """``lax.broadcast_in_dim``: operand axis i becomes output axis ``broadcast_dimensions[i]``
    (of size 1 or equal), in ``out_shape``. (The target shape is not called ``shape``: a
    node's ``shape`` attribute is graphbp's declared shape of its value.)"""

    name = "broadcast_in_dim"
    label = "broadcast"
    local_grads = ("Σ over broadcast axes",)
    vjp_reads = ()

    def forward(self, xp: Any, x: Any, *, out_shape: Any, broadcast_dimensions: Any) -> Any:
        out, order = _broadcast_plan(x.shape, out_shape, broadcast_dimensions)
        if order != tuple(range(len(order))):
            x = xp.transpose(x, order)
        full = [1] * len(out)
        for k, i in enumerate(order):
            full[broadcast_dimensions[i]] = x.shape[k]
        return xp.broadcast_to(xp.reshape(x, tuple(full)), out)

    def vjp(
        self, xp: Any, g: Any, out: Any, x: Any, *, out_shape: Any, broadcast_dimensions: Any
    ) -> tuple[Any]:
        """g summed over the output axes the operand lacks, its axes put back in the
        operand's order; the engine sums the axes where the operand has size 1."""
        dims = tuple(broadcast_dimensions)
        new = tuple(a for a in range(g.ndim) if a not in dims)
        gx = g.sum(axis=new) if new else g
        order = tuple(sorted(range(len(dims)), key=lambda i: dims[i]))
        if order != tuple(range(len(order))):
            gx = xp.transpose(gx, _inverse(order))
        return (gx,)

    def shape(self, x: Shape, *, out_shape: Any, broadcast_dimensions: Any) -> Shape:
        return _broadcast_plan(x, out_shape, broadcast_dimensions)[0]

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[int], list[int]]] = [
            ((4,), [3, 4], [1]),  # a bias over the batch
            ((3, 1), [3, 4], [0, 1]),  # a size-1 axis stretched
            ((), [2, 3], []),  # a scalar
            ((3,), [3, 2, 4], [0]),
            ((4, 3), [3, 2, 4], [2, 0]),  # axes reordered
            ((2, 1), [2, 5, 3], [0, 2]),
            ((2, 3), [2, 3], [0, 1]),  # nothing to do
        ]
        return [
            ((rng.standard_normal(x),), {"out_shape": out, "broadcast_dimensions": dims})
            for x, out, dims in cases
        ]


# ------------------------------------------------------------------ reshaping


def _reshaped(x: Shape, new_sizes: Any, dimensions: Any = None) -> Shape:
    """The shape ``new_sizes`` gives an operand of shape ``x`` (one -1 inferred, as NumPy)."""
    if dimensions is not None:
        raise ValueError(
            f"dimensions={show(dimensions, 40)} (a transpose before the reshape) is not supported; "
            "leave it None and transpose first"
        )
    at_most_rank("new_sizes", new_sizes)
    new = int_list("new_sizes", new_sizes)
    if any(n < -1 for n in new) or new.count(-1) > 1:
        raise ValueError(
            f"new_sizes={show(list(new))}: sizes are non-negative, with at most one -1 (inferred)"
        )
    size = 1
    for d in x:
        size *= d
    known = 1
    for n in new:
        known *= n if n != -1 else 1
    if -1 in new:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape shape {x} into new_sizes {show(list(new))}")
        new = tuple(size // known if n == -1 else n for n in new)
    elif known != size:
        raise ValueError(
            f"cannot reshape shape {x} ({size} elements) into new_sizes {show(list(new))} "
            f"({known} elements)"
        )
    return new


class Reshape(Op):
    """``lax.reshape`` in row-major order; ``new_sizes`` may hold one -1 (as NumPy), and
    ``dimensions`` must be None (JAX's own reshapes leave it so)."""

    name = "reshape"
    label = "reshape"
    local_grads = ("1 (reshaped back)",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any, *, new_sizes: Any, dimensions: Any = None) -> Any:
        return xp.reshape(x, _reshaped(x.shape, new_sizes, dimensions))

    def vjp(
        self, xp: Any, g: Any, out: Any, x: Any, *, new_sizes: Any, dimensions: Any = None
    ) -> tuple[Any]:
        return (xp.reshape(g, x.shape),)

    def shape(self, x: Shape, *, new_sizes: Any, dimensions: Any = None) -> Shape:
        return _reshaped(x, new_sizes, dimensions)

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[int]]] = [
            ((3, 4), [4, 3]),
            ((3, 4), [-1]),
            ((2, 3, 4), [2, -1, 2]),
            ((3, 4), [12, 1]),
            ((), [1, 1]),
            ((2, 1, 3), [6]),
        ]
        return [((rng.standard_normal(x),), {"new_sizes": new}) for x, new in cases]


def _permutation(x: Shape, permutation: Any) -> Shape:
    perm = axis_list("permutation", permutation, len(x))
    if len(perm) != len(x):
        raise ValueError(
            f"permutation={list(permutation)} has {len(perm)} entries for an operand of "
            f"{len(x)} axes; list every axis once"
        )
    return perm


class Transpose(Op):
    """``lax.transpose``: output axis i is operand axis ``permutation[i]`` (negative axes
    count from the end, as in ``jnp.transpose``)."""

    name = "transpose"
    label = "xᵀ"
    local_grads = ("1 (transposed back)",)
    vjp_reads = ()

    def forward(self, xp: Any, x: Any, *, permutation: Any) -> Any:
        return xp.transpose(x, _permutation(x.shape, permutation))

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, permutation: Any) -> tuple[Any]:
        perm = tuple(p % g.ndim for p in permutation)
        return (xp.transpose(g, _inverse(perm)),)

    def shape(self, x: Shape, *, permutation: Any) -> Shape:
        return tuple(x[p] for p in _permutation(x, permutation))

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        perm = attrs.get("permutation", ())
        if list(perm) == [1, 0]:
            return self.label, self.local_grads
        return f"transpose({_show(perm)})", self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[int]]] = [
            ((3, 4), [1, 0]),
            ((2, 3, 4), [2, 0, 1]),
            ((2, 3, 4), [0, -1, 1]),
            ((3,), [0]),
            ((2, 1, 3, 2), [3, 1, 0, 2]),
        ]
        return [((rng.standard_normal(x),), {"permutation": p}) for x, p in cases]


def _squeezed(x: Shape, dimensions: Any) -> Shape:
    dims = axis_list("dimensions", dimensions, len(x))
    for d in dims:
        if x[d] != 1:
            raise ValueError(
                f"dimensions={list(dimensions)}: axis {d} of shape {x} has size {x[d]}; "
                "only axes of size 1 can be squeezed"
            )
    return tuple(n for k, n in enumerate(x) if k not in dims)


class Squeeze(Op):
    """``lax.squeeze``: removes the listed axes, each of size 1."""

    name = "squeeze"
    label = "squeeze"
    local_grads = ("1 (axes put back)",)
    vjp_reads = ()

    def forward(self, xp: Any, x: Any, *, dimensions: Any) -> Any:
        return xp.reshape(x, _squeezed(x.shape, dimensions))

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, dimensions: Any) -> tuple[Any]:
        ndim = g.ndim + len(dimensions)
        return (xp.expand_dims(g, tuple(sorted(d % ndim for d in dimensions))),)

    def shape(self, x: Shape, *, dimensions: Any) -> Shape:
        return _squeezed(x, dimensions)

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        return f"squeeze({_show(attrs.get('dimensions', ()))})", self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[int]]] = [
            ((3, 1, 4), [1]),
            ((1, 3, 1), [0, -1]),
            ((1,), [0]),
            ((3, 4), []),
            ((1, 1, 2), [1, 0]),
        ]
        return [((rng.standard_normal(x),), {"dimensions": d}) for x, d in cases]


def _expanded(x: Shape, dimensions: Any) -> Shape:
    at_most_rank("dimensions", dimensions, len(x))
    ndim = len(x) + (len(dimensions) if isinstance(dimensions, list | tuple) else 0)
    dims = set(axis_list("dimensions", dimensions, ndim))
    rest = iter(x)
    return tuple(1 if k in dims else next(rest) for k in range(ndim))


class ExpandDims(Op):
    """``jnp.expand_dims``: a new axis of size 1 at each listed position of the output."""

    name = "expand_dims"
    label = "expand_dims"
    local_grads = ("1 (axes removed)",)
    vjp_reads = ()

    def forward(self, xp: Any, x: Any, *, dimensions: Any) -> Any:
        return xp.reshape(x, _expanded(x.shape, dimensions))

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, dimensions: Any) -> tuple[Any]:
        dims = {d % g.ndim for d in dimensions}
        return (xp.reshape(g, tuple(n for k, n in enumerate(g.shape) if k not in dims)),)

    def shape(self, x: Shape, *, dimensions: Any) -> Shape:
        return _expanded(x, dimensions)

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        return f"expand_dims({_show(attrs.get('dimensions', ()))})", self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[int]]] = [
            ((3, 4), [0]),
            ((3, 4), [-1]),
            ((3, 4), [1, 3]),
            ((), [0]),
            ((2, 3), [-1, 0]),
        ]
        return [((rng.standard_normal(x),), {"dimensions": d}) for x, d in cases]


class Rev(Op):
    """``lax.rev`` (``jnp.flip``, ``x[::-1]``): the listed axes in reverse order."""

    name = "rev"
    label = "flip"
    local_grads = ("1 (flipped back)",)
    vjp_reads = ()

    def forward(self, xp: Any, x: Any, *, dimensions: Any) -> Any:
        dims = axis_list("dimensions", dimensions, x.ndim)
        return xp.flip(x, axis=dims) if dims else x

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, dimensions: Any) -> tuple[Any]:
        dims = tuple(d % g.ndim for d in dimensions)
        return (xp.flip(g, axis=dims) if dims else g,)

    def shape(self, x: Shape, *, dimensions: Any) -> Shape:
        axis_list("dimensions", dimensions, len(x))
        return x

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        return f"flip({_show(attrs.get('dimensions', ()))})", self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[int]]] = [
            ((3, 4), [0]),
            ((3, 4), [0, 1]),
            ((2, 3, 4), [-1, 0]),
            ((5,), []),
        ]
        return [((rng.standard_normal(x),), {"dimensions": d}) for x, d in cases]


def _tiled(x: Shape, reps: Any) -> Shape:
    counts = sizes("reps", reps, len(x))
    return tuple(n * r for n, r in zip(x, counts, strict=True))


class Tile(Op):
    """``lax.tile`` (``jnp.tile``): ``reps[i]`` copies of the operand along axis i, one
    count per axis."""

    name = "tile"
    label = "tile"
    local_grads = ("Σ over the copies",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any, *, reps: Any) -> Any:
        _tiled(x.shape, reps)
        return xp.tile(x, tuple(reps))

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, reps: Any) -> tuple[Any]:
        """g as (reps[0], n0, reps[1], n1, ...), summed over the copies (JAX's rule)."""
        split = tuple(k for r, n in zip(reps, x.shape, strict=True) for k in (r, n))
        return (xp.reshape(g, split).sum(axis=tuple(range(0, 2 * g.ndim, 2))),)

    def shape(self, x: Shape, *, reps: Any) -> Shape:
        return _tiled(x, reps)

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        return f"tile({_show(attrs.get('reps', ()))})", self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[int]]] = [
            ((3, 4), [2, 1]),
            ((3, 4), [1, 3]),
            ((2, 1, 3), [2, 4, 1]),
            ((), []),
            ((2, 3), [0, 2]),
        ]
        return [((rng.standard_normal(x),), {"reps": r}) for x, r in cases]


# ------------------------------------------------------------------ joining and cutting


def _concatenated(a: Shape, b: Shape, dimension: Any) -> tuple[Shape, int]:
    d = int_attr("dimension", dimension)
    if len(a) != len(b) or not a:
        raise ValueError(
            f"concatenate joins operands with the same number of axes (at least one); got "
            f"shapes {a} and {b}"
        )
    if not -len(a) <= d < len(a):
        raise ValueError(f"dimension={d} is out of range for {len(a)} axes")
    d %= len(a)
    if any(x != y for k, (x, y) in enumerate(zip(a, b, strict=True)) if k != d):
        raise ValueError(f"shapes {a} and {b} differ in an axis other than dimension {d}")
    return tuple(x + y if k == d else x for k, (x, y) in enumerate(zip(a, b, strict=True))), d


class Concatenate(Op):
    """``lax.concatenate`` of two operands along ``dimension`` (negative counts from the
    end); a jaxpr's n-ary concatenation becomes a chain of them."""

    name = "concatenate"
    label = "concat"
    local_grads = ("1 on a's part", "1 on b's part")
    vjp_reads = (0,)

    def forward(self, xp: Any, a: Any, b: Any, *, dimension: Any) -> Any:
        _, d = _concatenated(a.shape, b.shape, dimension)
        return xp.concatenate([a, b], axis=d)

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        a: Any,
        b: Any,
        *,
        dimension: Any,
        needs: tuple[bool, ...] = _ALL2,
    ) -> tuple[Any, Any]:
        d = dimension % g.ndim
        lead = (slice(None),) * d
        n = a.shape[d]
        return (
            g[(*lead, slice(0, n))] if needs[0] else None,
            g[(*lead, slice(n, None))] if needs[1] else None,
        )

    def shape(self, a: Shape, b: Shape, *, dimension: Any) -> Shape:
        return _concatenated(a, b, dimension)[0]

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        return f"concat(axis {attrs.get('dimension', '?')})", self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, Shape, int]] = [
            ((2, 3), (4, 3), 0),
            ((2, 3), (2, 1), 1),
            ((2, 3), (2, 2), -1),
            ((3,), (2,), 0),
            ((2, 1, 3), (2, 2, 3), 1),
        ]
        return [
            ((rng.standard_normal(a), rng.standard_normal(b)), {"dimension": d})
            for a, b, d in cases
        ]


def _slice_plan(
    x: Shape, start_indices: Any, limit_indices: Any, strides: Any
) -> tuple[Shape, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The output shape and the checked starts, limits and strides of a slice of ``x``."""
    start = int_list("start_indices", start_indices, len(x))
    limit = int_list("limit_indices", limit_indices, len(x))
    step = (1,) * len(x) if strides is None else int_list("strides", strides, len(x))
    for k, (s, e, n, st) in enumerate(zip(start, limit, x, step, strict=True)):
        if not 0 <= s <= e <= n:
            raise ValueError(
                f"axis {k} of shape {x}: start_indices {show(s)} and limit_indices {show(e)} must "
                f"satisfy 0 <= start <= limit <= {n}"
            )
        if st < 1:
            raise ValueError(f"strides={show(list(step))}: every stride must be at least 1")
    out = tuple((e - s + st - 1) // st for s, e, st in zip(start, limit, step, strict=True))
    return out, start, limit, step


class Slice(Op):
    """``lax.slice``: elements ``start:limit:stride`` of each axis (no negative indices, as
    in JAX; ``strides`` None means 1)."""

    name = "slice"
    label = "slice"
    local_grads = ("1 where sliced",)
    vjp_reads = (0,)

    def forward(
        self, xp: Any, x: Any, *, start_indices: Any, limit_indices: Any, strides: Any = None
    ) -> Any:
        _, start, limit, step = _slice_plan(x.shape, start_indices, limit_indices, strides)
        return x[tuple(map(slice, start, limit, step))]

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        x: Any,
        *,
        start_indices: Any,
        limit_indices: Any,
        strides: Any = None,
    ) -> tuple[Any]:
        if g.size == 0:
            return (xp.zeros(x.shape, g.dtype),)
        step = (1,) * g.ndim if strides is None else tuple(strides)
        config = [
            (s, n - (s + (m - 1) * st + 1), st - 1)
            for s, n, m, st in zip(start_indices, x.shape, g.shape, step, strict=True)
        ]
        return (pad(xp, g, xp.zeros((), g.dtype), config),)

    def shape(
        self, x: Shape, *, start_indices: Any, limit_indices: Any, strides: Any = None
    ) -> Shape:
        return _slice_plan(x, start_indices, limit_indices, strides)[0]

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        start = attrs.get("start_indices") or ()
        limit = attrs.get("limit_indices") or ()
        step = attrs.get("strides") or (1,) * len(start)
        parts = [
            f"{s}:{e}" + (f":{st}" if st != 1 else "")
            for s, e, st in zip(start, limit, step, strict=False)
        ]
        return f"[{', '.join(parts)}]", self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[int], list[int], list[int] | None]] = [
            ((5, 6), [1, 0], [4, 6], None),
            ((5, 6), [0, 1], [5, 6], [2, 3]),
            ((7,), [0], [7], [3]),
            ((4, 5), [1, 2], [3, 5], [1, 2]),
            ((3, 4), [0, 0], [3, 4], [1, 1]),
            ((6,), [2], [3], [4]),
        ]
        return [
            (
                (rng.standard_normal(x),),
                {"start_indices": s, "limit_indices": e, "strides": st},
            )
            for x, s, e, st in cases
        ]


def _padding(x: Shape, v: Shape, padding_config: Any) -> tuple[Shape, list[tuple[int, int, int]]]:
    """The output shape and checked (lo, hi, interior) triples of a pad of ``x``."""
    if v != ():
        raise ValueError(f"padding_value must be a scalar (shape ()); got shape {v}")
    if not isinstance(padding_config, list | tuple) or len(padding_config) != len(x):
        raise ValueError(
            f"padding_config needs one [lo, hi, interior] per axis of shape {x} "
            f"({len(x)}); got {show(padding_config)}"
        )
    config = [
        int_list(f"padding_config[{k}] ([lo, hi, interior])", c, 3)
        for k, c in enumerate(padding_config)
    ]
    out = []
    for k, ((lo, hi, interior), n) in enumerate(zip(config, x, strict=True)):
        if interior < 0:
            raise ValueError(
                f"padding_config axis {k}: interior padding {show(interior)} is negative"
            )
        size = lo + hi + n + max(n - 1, 0) * interior
        if size < 0:
            raise ValueError(
                f"padding_config axis {k}: {show([lo, hi, interior])} on size {n} leaves "
                f"{show(size)} elements"
            )
        out.append(size)
    return tuple(out), [(lo, hi, interior) for lo, hi, interior in config]


def pad(xp: Any, x: Any, value: Any, config: Any) -> Any:
    """``lax.pad``: each axis of ``x`` gets ``interior`` copies of ``value`` between its
    elements, then ``lo`` before and ``hi`` after (a negative count removes elements)."""
    for axis, (_, _, interior) in enumerate(config):
        n = x.shape[axis]
        if interior and n > 1:  # x[..., i, ...] followed by `interior` values, the last cut
            cell = (*x.shape[: axis + 1], interior, *x.shape[axis + 1 :])
            spread = xp.concatenate(
                [xp.expand_dims(x, axis + 1), xp.broadcast_to(value, cell)], axis=axis + 1
            )
            x = xp.reshape(spread, (*x.shape[:axis], n * (1 + interior), *x.shape[axis + 1 :]))
            x = x[(slice(None),) * axis + (slice(0, n + (n - 1) * interior),)]
    widths = [(max(lo, 0), max(hi, 0)) for lo, hi, _ in config]
    if any(w != (0, 0) for w in widths):
        x = xp.pad(x, widths, constant_values=value)
    if any(lo < 0 or hi < 0 for lo, hi, _ in config):
        x = x[
            tuple(
                slice(max(-lo, 0), n - max(-hi, 0))
                for (lo, hi, _), n in zip(config, x.shape, strict=True)
            )
        ]
    return x


class Pad(Op):
    """``lax.pad``: ``padding_config`` holds one [lo, hi, interior] per axis; lo and hi may be
    negative (elements removed), interior is the count of values put between elements."""

    name = "pad"
    label = "pad"
    local_grads = ("1 where x lands", "1 where padded")
    vjp_reads = ()

    def forward(self, xp: Any, x: Any, padding_value: Any, *, padding_config: Any) -> Any:
        _, config = _padding(x.shape, padding_value.shape, padding_config)
        return pad(xp, x, padding_value, config)

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        x: Any,
        padding_value: Any,
        *,
        padding_config: Any,
        needs: tuple[bool, ...] = _ALL2,
    ) -> tuple[Any, Any]:
        unpadded = pad(
            xp, g, xp.zeros((), g.dtype), [(-lo, -hi, 0) for lo, hi, _ in padding_config]
        )
        gx = unpadded[tuple(slice(None, None, interior + 1) for _, _, interior in padding_config)]
        return gx if needs[0] else None, (g.sum() - gx.sum()) if needs[1] else None

    def shape(self, x: Shape, padding_value: Shape, *, padding_config: Any) -> Shape:
        return _padding(x, padding_value, padding_config)[0]

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, list[list[int]]]] = [
            ((3, 4), [[1, 2, 0], [0, 1, 0]]),
            ((3, 4), [[0, 1, 1], [2, 0, 2]]),
            ((3, 4), [[-1, 1, 0], [2, -2, 1]]),
            ((3,), [[0, 0, 2]]),
            ((2, 3), [[-1, 0, 0], [-1, -1, 0]]),
            ((1, 2), [[1, 1, 3], [-2, 1, 1]]),
        ]
        return [
            ((rng.standard_normal(x), rng.standard_normal(())), {"padding_config": c})
            for x, c in cases
        ]


# ------------------------------------------------------------------ dtypes and gradients

_INT_RANGES = {
    **{f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"uint{b}": (0, 2**b - 1) for b in (8, 16, 32, 64)},
}
_FLOATS = frozenset({"float16", "bfloat16", "float32", "float64"})


def _dtype_name(new_dtype: Any) -> str:
    if not isinstance(new_dtype, str):
        raise TypeError(f"new_dtype must be a dtype name (str); got {type(new_dtype).__name__}")
    if new_dtype != "bool" and new_dtype not in _INT_RANGES and new_dtype not in _FLOATS:
        raise ValueError(
            f"new_dtype {new_dtype[:40]!r} is not supported; use bool, a float dtype "
            f"({', '.join(sorted(_FLOATS))}) or an integer dtype (int8 ... uint64)"
        )
    return new_dtype


class ConvertElementType(Op):
    """``lax.convert_element_type`` in a program of one float dtype: to a float dtype the
    value is unchanged; to an integer dtype it is truncated toward zero and saturated to the
    dtype's range (NaN gives 0), as XLA converts floats; to bool it is 1 where x ≠ 0, else 0.
    Only a float target passes the gradient on."""

    name = "convert_element_type"
    label = "convert"
    local_grads = ("1 to float, 0 to int or bool",)
    vjp_reads = ()

    def forward(self, xp: Any, x: Any, *, new_dtype: Any) -> Any:
        name = _dtype_name(new_dtype)
        if name in _FLOATS:
            return x
        if name == "bool":
            return (x != 0).astype(x.dtype)
        lo, hi = _INT_RANGES[name]
        return xp.where(x != x, 0, xp.clip(xp.trunc(x), float(lo), float(hi))).astype(x.dtype)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, new_dtype: Any) -> tuple[Any]:
        return (g if new_dtype in _FLOATS else _zeros(xp, g),)

    def shape(self, x: Shape, *, new_dtype: Any) -> Shape:
        _dtype_name(new_dtype)
        return x

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        name = attrs.get("new_dtype")
        if not isinstance(name, str):
            return self.label, self.local_grads
        return name, ("1" if name in _FLOATS else "0",)

    def examples(self, rng: Any) -> list[Example]:
        # away from integers (where truncation jumps) and from zero (where bool does)
        x = (rng.integers(-4, 4, (3, 4)) + rng.uniform(0.2, 0.8, (3, 4))) * 1.0
        big = x * 100.0  # saturates int8
        return [
            ((x,), {"new_dtype": "float32"}),
            ((x,), {"new_dtype": "float64"}),
            ((x,), {"new_dtype": "int32"}),
            ((big,), {"new_dtype": "int8"}),
            ((big,), {"new_dtype": "uint8"}),
            ((x,), {"new_dtype": "bool"}),
        ]


class StopGradient(Op):
    """``lax.stop_gradient``: the value passes, its gradient does not."""

    name = "stop_gradient"
    label = "stop_gradient"
    local_grads = ("0",)
    vjp_reads = ()
    stops_gradient = True

    def forward(self, xp: Any, x: Any) -> Any:
        return x

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (_zeros(xp, g),)

    def shape(self, x: Shape) -> Shape:
        return x


class SelectN(Op):
    """``lax.select_n`` with two cases: ``on_true`` where ``pred`` ≠ 0, else ``on_false``
    (pred is 0/1, as comparisons give it). The three operands broadcast as in NumPy (JAX
    wants pred scalar or of the cases' shape, which is included). No gradient flows to pred."""

    name = "select_n"
    label = "select"
    local_grads = ("0", "[pred=0]", "[pred≠0]")
    vjp_reads = (0,)

    def forward(self, xp: Any, pred: Any, on_false: Any, on_true: Any) -> Any:
        return xp.where(pred != 0, on_true, on_false)

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        pred: Any,
        on_false: Any,
        on_true: Any,
        needs: tuple[bool, ...] = _ALL3,
    ) -> tuple[Any, Any, Any]:
        zero = xp.zeros((), g.dtype)
        chosen = pred != 0
        return (
            _zeros(xp, pred) if needs[0] else None,
            xp.where(chosen, zero, g) if needs[1] else None,
            xp.where(chosen, g, zero) if needs[2] else None,
        )

    def shape(self, pred: Shape, on_false: Shape, on_true: Shape) -> Shape:
        return broadcast(pred, on_false, on_true)

    def examples(self, rng: Any) -> list[Example]:
        cases: list[tuple[Shape, Shape, Shape]] = [
            ((3, 4), (3, 4), (3, 4)),
            ((), (3, 4), (3, 4)),
            ((3, 1), (4,), (3, 4)),
            ((3, 4), (), (3, 4)),
        ]
        return [
            (
                (
                    1.0 * (rng.uniform(size=p) < 0.5),
                    rng.standard_normal(f),
                    rng.standard_normal(t),
                ),
                {},
            )
            for p, f, t in cases
        ]


# ------------------------------------------------------------------ comparisons


class _Comparison(Op):
    """A comparison of two operands (broadcast as in NumPy): 1.0 where it holds, else 0.0,
    in the operands' dtype. Its gradient is zero everywhere (JAX's rule)."""

    local_grads = ("0", "0")
    vjp_reads = ()  # zeros of g's shape: the engine sums them to a broadcast operand's

    def compare(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return self.compare(a, b).astype(a.dtype)

    def vjp(
        self, xp: Any, g: Any, out: Any, a: Any, b: Any, needs: tuple[bool, ...] = _ALL2
    ) -> tuple[Any, Any]:
        return (_zeros(xp, g) if needs[0] else None, _zeros(xp, g) if needs[1] else None)

    def shape(self, a: Shape, b: Shape) -> Shape:
        return broadcast(a, b)

    def examples(self, rng: Any) -> list[Example]:
        # random reals never tie, so no finite-difference nudge crosses a jump (ties are
        # tested against lax separately)
        return [((rng.standard_normal(a), rng.standard_normal(b)), {}) for a, b in BROADCAST_SHAPES]


class Eq(_Comparison):
    name = "eq"
    label = "=="

    def compare(self, a: Any, b: Any) -> Any:
        return a == b


class Ne(_Comparison):
    name = "ne"
    label = "≠"

    def compare(self, a: Any, b: Any) -> Any:
        return a != b


class Lt(_Comparison):
    name = "lt"
    label = "<"

    def compare(self, a: Any, b: Any) -> Any:
        return a < b


class Le(_Comparison):
    name = "le"
    label = "≤"

    def compare(self, a: Any, b: Any) -> Any:
        return a <= b


class Gt(_Comparison):
    name = "gt"
    label = ">"

    def compare(self, a: Any, b: Any) -> Any:
        return a > b


class Ge(_Comparison):
    name = "ge"
    label = "≥"

    def compare(self, a: Any, b: Any) -> Any:
        return a >= b
