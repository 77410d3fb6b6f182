"""Shape rules in pure Python: what NumPy's broadcasting, matmul and reductions give, computed
from shapes alone (no array is made), for the ops' ``shape`` methods."""

from __future__ import annotations

from typing import Any

from graphbp.errors import show

Shape = tuple[int, ...]


def broadcast(*shapes: Shape) -> Shape:
    """The shape NumPy broadcasting gives; ValueError where it would refuse."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for k in range(-ndim, 0):
        size = 1
        for s in shapes:
            d = s[k] if -k <= len(s) else 1
            if d != 1 and size != 1 and d != size:
                raise ValueError(
                    f"shapes {' and '.join(map(str, shapes))} do not broadcast together"
                )
            if d != 1:
                size = d
        out.append(size)
    return tuple(out)


def matmul(a: Shape, b: Shape) -> Shape:
    """The shape of ``a @ b`` (NumPy matmul, 1-D operands included); ValueError where it
    would refuse."""
    if not a or not b:
        raise ValueError(f"matmul takes no 0-d operand; got shapes {a} and {b}")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(
            f"matmul of shapes {a} and {b}: the first's {'only' if len(a) == 1 else 'last'} "
            "axis and the second's "
            f"{'only' if len(b) == 1 else 'second-to-last'} axis differ in size"
        )
    batch = broadcast(a2[:-2], b2[:-2])
    return (*batch, *a2[-2:-1][: len(a) - 1], *b2[-1:][: len(b) - 1])


def axes(axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """The axes a reduction over ``axis`` (None, an int or a list of ints) removes, checked as
    NumPy checks them: TypeError for a non-integer, ValueError out of range or repeated.
    Messages call the attribute ``name``."""
    if axis is None:
        return tuple(range(ndim))
    given = [axis] if not isinstance(axis, list | tuple) else list(axis)
    for a in given:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(
                f"{name} must be None, an int or a list of ints; got {type(a).__name__}"
            )
    for a in given:
        if not -ndim <= a < ndim:
            prefix = "" if name == "axis" else f"{name}={show(axis)}: "
            raise ValueError(f"{prefix}axis {show(a)} is out of bounds for {ndim} dimension(s)")
    out = tuple(a % ndim for a in given)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}{' ' if name == 'axis' else '='}{show(axis)} names an axis twice")
    return out


def reduce(shape: Shape, axis: Any, keepdims: Any) -> Shape:
    """The shape of a sum or mean of ``shape`` over ``axis``."""
    if not isinstance(keepdims, int):
        raise TypeError(f"keepdims must be True or False; got {type(keepdims).__name__}")
    gone = axes(axis, len(shape))
    if keepdims:
        return tuple(1 if k in gone else d for k, d in enumerate(shape))
    return tuple(d for k, d in enumerate(shape) if k not in gone)
