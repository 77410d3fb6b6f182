"""Sliding windows as XLA defines them for convolutions and reduce_window: the input dilated
(``base``/``lhs_dilation``: holes between elements), padded (a negative pad crops), then read
at ``start + k·window_dilation`` for every window offset k, every ``stride`` elements. The
windows are strided views, one per offset, and their transpose adds each one back; on JAX a
window of more than SMALL elements is one gather and one scatter instead."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from graphbp.shapes import MAX_ELEMENTS
from graphbp_ops._attrs import ints, pairs

MAX_OFFSETS = 2**20
"""The most elements a window may have (a 1024×1024 window): on NumPy each is one strided
view (cheap); on JAX windows of more than SMALL elements are one gather and one scatter."""
SMALL = 16
"""The most elements a window may have for JAX to read and add it back one strided view per
element (fastest to run; XLA's program grows with the window: 16 compile in 0.3 s)."""


class Windows(NamedTuple):
    """The geometry of windows over some axes of an array."""

    axes: tuple[int, ...]
    """The windowed axes of the array."""
    sizes: tuple[int, ...]
    """The window's size along each windowed axis."""
    strides: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    base_dilation: tuple[int, ...]
    window_dilation: tuple[int, ...]
    in_sizes: tuple[int, ...]
    """The input's size along each windowed axis."""
    padded: tuple[int, ...]
    """The dilated and padded input's size along each windowed axis."""
    out: tuple[int, ...]
    """The number of windows along each windowed axis."""

    def offsets(self) -> list[tuple[int, ...]]:
        """Every window offset, in row-major order (XLA's order within a window)."""
        return list(itertools.product(*map(range, self.sizes)))


def check_work(what: str, elements: int, offsets: int, window: str) -> None:
    """Refuse windows whose intermediate arrays (the padded input, the input windows) would
    hold more than MAX_ELEMENTS elements, or with more than MAX_OFFSETS window elements:
    attributes from a graph file must not make the op allocate or loop without bound."""
    if offsets > MAX_OFFSETS:
        raise ValueError(
            f"{window} gives windows of {offsets:,} elements; at most {MAX_OFFSETS:,} are supported"
        )
    if elements > MAX_ELEMENTS:
        raise ValueError(
            f"{what} would hold {elements:,} elements, more than the {MAX_ELEMENTS:,} any value "
            "may have; check the padding and dilations"
        )


def dilated(size: int, d: int) -> int:
    """The size of ``size`` elements with ``d - 1`` holes between neighbours."""
    return 0 if size == 0 else (size - 1) * d + 1


def windows(
    in_sizes: Sequence[int],
    axes: Sequence[int],
    sizes: Sequence[int],
    strides: Any,
    padding: Any,
    base_dilation: Any,
    window_dilation: Any,
    names: tuple[str, str, str, str] = (
        "window_strides",
        "padding",
        "base_dilation",
        "window_dilation",
    ),
) -> Windows:
    """Check the window attributes (named ``names``) and compute the window geometry.

    Raises:
        TypeError, ValueError: an attribute of the wrong type, length or range; a padding
            that crops more than the input has.
    """
    n = len(axes)
    strides = ints(names[0], strides, n, low=1)
    padding = pairs(names[1], padding, n)
    base = ints(names[2], base_dilation, n, low=1)
    wdil = ints(names[3], window_dilation, n, low=1)
    padded, out = [], []
    for i in range(n):
        p = dilated(in_sizes[i], base[i]) + padding[i][0] + padding[i][1]
        if p < 0:
            raise ValueError(
                f"{names[1]} {list(padding[i])} crops more than axis {axes[i]}'s "
                f"{dilated(in_sizes[i], base[i])} elements"
            )
        span = dilated(sizes[i], wdil[i])
        padded.append(p)
        out.append(max((p - span) // strides[i] + 1, 0))
    return Windows(
        tuple(axes),
        tuple(sizes),
        tuple(strides),
        tuple(padding),
        tuple(base),
        tuple(wdil),
        tuple(in_sizes),
        tuple(padded),
        tuple(out),
    )


def _dilate(xp: Any, x: Any, axis: int, d: int, fill: Any) -> Any:
    """``x`` with ``d - 1`` copies of ``fill`` between neighbours along ``axis``."""
    n = x.shape[axis]
    if d == 1 or n <= 1:
        return x
    # A new axis after ``axis`` holds each element and its holes; merging the two is a
    # reshape of adjacent axes, so XLA needs no transpose (nor copy) to spread x.
    lead, rest = x.shape[:axis], x.shape[axis + 1 :]
    column = xp.reshape(x, (*lead, n, 1, *rest))
    holes = xp.full((*lead, n, d - 1, *rest), fill, dtype=x.dtype)
    spread = xp.reshape(xp.concatenate([column, holes], axis=axis + 1), (*lead, n * d, *rest))
    return spread[(slice(None),) * axis + (slice(0, (n - 1) * d + 1),)]


def pad(xp: Any, x: Any, widths: dict[int, tuple[int, int]], fill: Any) -> Any:
    """``x`` padded by ``widths`` ({axis: (lo, hi)}) with ``fill``; a negative width crops."""
    grow = [widths.get(a, (0, 0)) for a in range(x.ndim)]
    positive = [(max(lo, 0), max(hi, 0)) for lo, hi in grow]
    if any(lo or hi for lo, hi in positive):
        x = xp.pad(x, positive, constant_values=fill)
    if any(lo < 0 or hi < 0 for lo, hi in grow):
        x = x[
            tuple(slice(max(-lo, 0), x.shape[a] - max(-hi, 0)) for a, (lo, hi) in enumerate(grow))
        ]
    return x


def prepare(xp: Any, x: Any, w: Windows, fill: Any) -> Any:
    """``x`` dilated and padded along the windowed axes, filled with ``fill``."""
    for axis, d in zip(w.axes, w.base_dilation, strict=True):
        x = _dilate(xp, x, axis, d, fill)
    return pad(xp, x, dict(zip(w.axes, w.padding, strict=True)), fill)


def unprepare(xp: Any, dx: Any, w: Windows) -> Any:
    """The transpose of ``prepare``: a cotangent of the padded input summed back to the input
    (the padding and the holes get none)."""
    dx = pad(xp, dx, {a: (-lo, -hi) for a, (lo, hi) in zip(w.axes, w.padding, strict=True)}, 0)
    if all(d == 1 for d in w.base_dilation):
        return dx
    cut = [slice(None)] * dx.ndim
    for axis, d in zip(w.axes, w.base_dilation, strict=True):
        cut[axis] = slice(None, None, d)
    return dx[tuple(cut)]


def view(ndim: int, w: Windows, offset: tuple[int, ...]) -> tuple[slice, ...]:
    """The slices that read window element ``offset`` of every window."""
    cut = [slice(None)] * ndim
    for axis, k, r, s, n in zip(w.axes, offset, w.window_dilation, w.strides, w.out, strict=True):
        start = k * r
        cut[axis] = slice(start, start + (n - 1) * s + 1 if n else start, s)
    return tuple(cut)


def views(padded: Any, w: Windows) -> list[Any]:
    """Window element k of every window, one strided view per offset k (row-major)."""
    return [padded[view(padded.ndim, w, k)] for k in w.offsets()]


def _index(shape: tuple[int, ...], w: Windows) -> tuple[Any, ...]:
    """Per axis of an array of ``shape`` (the padded input), integer arrays that broadcast
    to (K, *windows' shape) and read window element k of every window: one gather or
    scatter instead of one op per offset, so XLA's program does not grow with the window."""
    k = len(w.sizes)
    offsets = np.indices(w.sizes).reshape(k, -1)  # (axes, K), row-major
    big = max(shape, default=0) >= 2**31
    dtype = np.int64 if big else np.int32
    where = dict(zip(w.axes, range(k), strict=True))
    index = []
    for axis, size in enumerate(shape):
        lay = [1] * (len(shape) + 1)
        lay[axis + 1] = -1
        if axis in where:
            i = where[axis]
            step = np.arange(w.out[i], dtype=dtype) * w.strides[i]
            start = offsets[i].astype(dtype) * w.window_dilation[i]
            index.append(start.reshape(-1, *[1] * len(shape)) + step.reshape(lay))
        else:
            index.append(np.arange(size, dtype=dtype).reshape(lay))
    return tuple(index)


def gather(xp: Any, padded: Any, w: Windows, axis: int = 0) -> Any:
    """Every window's elements: window element k of every window along a new ``axis``.
    NumPy, and JAX for windows of at most SMALL elements, stack strided views; JAX gathers
    larger windows at once."""
    if not hasattr(padded, "at") or count(w) <= SMALL:
        return xp.stack(views(padded, w), axis=axis)
    read = padded.at[_index(padded.shape, w)].get(mode="promise_in_bounds")
    return xp.moveaxis(read, 0, axis)


def fold(xp: Any, padded: Any, w: Windows, combine: Any, reduction: Any) -> Any:
    """Every window reduced: its strided views combined pairwise by ``combine`` (NumPy, and
    JAX for windows of at most SMALL elements, where XLA fuses them), or all windows
    gathered at once and reduced by ``reduction`` over the window axis (JAX, larger ones)."""
    if not hasattr(padded, "at") or count(w) <= SMALL:
        return functools.reduce(combine, views(padded, w))
    return reduction(gather(xp, padded, w), axis=0)


def scatter(xp: Any, parts: Any, shape: tuple[int, ...], w: Windows, axis: int = 0) -> Any:
    """The transpose of ``gather``: ``parts`` (window element k of every window along
    ``axis``, or a list of them) added into a zero array of ``shape`` where each was read.
    NumPy adds one strided view per offset in place. JAX spreads each part to ``shape`` by
    dilation and padding and sums them for windows of at most SMALL elements (XLA fuses that
    into one loop, 3× faster than a scatter), and scatters larger windows at once: the
    program then does not grow with the window (an n×n window's n² full-size pads took XLA
    100 s and 3 GB to compile at n = 16)."""
    if not isinstance(parts, list):
        parts = xp.moveaxis(parts, axis, 0)
    total = xp.zeros(shape, dtype=parts[0].dtype if len(parts) else parts.dtype)
    if not hasattr(total, "at"):
        for i, k in enumerate(w.offsets()):
            total[view(len(shape), w, k)] += parts[i]
        return total
    if count(w) > SMALL:
        stacked = xp.stack(parts) if isinstance(parts, list) else parts
        return total.at[_index(shape, w)].add(stacked, mode="promise_in_bounds")
    for i, k in enumerate(w.offsets()):
        part, widths = parts[i], {}
        for a, kk, r, s in zip(w.axes, k, w.window_dilation, w.strides, strict=True):
            part = _dilate(xp, part, a, s, 0)
            widths[a] = (kk * r, shape[a] - kk * r - part.shape[a])
        total = total + pad(xp, part, widths, 0)
    return total


def count(w: Windows) -> int:
    """The number of elements in a window."""
    return math.prod(w.sizes)
