"""Attributes for the shape ops' shape-rule property test (tests/test_safe_shapes.py): each
entry draws attributes for the operand shapes drawn, so most fit and some do not."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

Draw = Callable[[st.SearchStrategy[Any]], Any]
Shapes = list[tuple[int, ...]]


def _broadcast_in_dim(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    x = shapes[0]
    extra = draw(st.integers(0, 2))
    order = draw(st.permutations(range(len(x) + extra)))
    dims = list(order[: len(x)])
    out = draw(st.lists(st.integers(0, 3), min_size=len(x) + extra, max_size=len(x) + extra))
    for i, d in enumerate(dims):
        if draw(st.integers(0, 4)):  # mostly a size that fits
            out[d] = x[i] if x[i] != 1 else out[d]
    if draw(st.integers(0, 9)) == 0:
        dims = draw(st.lists(st.integers(-1, 4), max_size=3))
    return {"out_shape": out, "broadcast_dimensions": dims}


def _reshape(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    size = math.prod(shapes[0])
    new = draw(
        st.sampled_from(
            [[size], [-1], [1, size], [size, -1], [-1, 1, -1], [2, -1], [3, -2], [0, -1]]
        )
        | st.lists(st.integers(-1, 4), max_size=3)
    )
    return {"new_sizes": new}


def _transpose(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    ndim = len(shapes[0])
    perm = list(draw(st.permutations(range(ndim))))
    if perm and draw(st.booleans()):
        perm[0] -= ndim  # the same axis, counted from the end
    if draw(st.integers(0, 5)) == 0:
        perm = draw(st.lists(st.integers(-3, 3), max_size=3))
    return {"permutation": perm}


def _squeeze(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    ones = [k for k, n in enumerate(shapes[0]) if n == 1]
    dims = draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    if draw(st.integers(0, 4)) == 0:
        dims = draw(st.lists(st.integers(-4, 3), max_size=2))
    return {"dimensions": dims}


def _slice(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    x = shapes[0]
    start = [draw(st.integers(0, n)) for n in x]
    limit = [draw(st.integers(s, n)) for s, n in zip(start, x, strict=True)]
    strides = draw(st.none() | st.lists(st.integers(1, 3), min_size=len(x), max_size=len(x)))
    if draw(st.integers(0, 5)) == 0:
        start = draw(st.lists(st.integers(-1, 4), max_size=3))
    return {"start_indices": start, "limit_indices": limit, "strides": strides}


def _pad(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    triple = st.tuples(st.integers(-2, 2), st.integers(-2, 2), st.integers(-1, 2)).map(list)
    config = [draw(triple) for _ in shapes[0]]
    return {"padding_config": config}


ATTRS: dict[str, Callable[[Draw, Shapes], dict[str, Any]]] = {
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "transpose": _transpose,
    "squeeze": _squeeze,
    "expand_dims": lambda draw, shapes: {
        "dimensions": draw(st.lists(st.integers(-4, 4), max_size=2))
    },
    "rev": lambda draw, shapes: {"dimensions": draw(st.lists(st.integers(-3, 3), max_size=2))},
    "tile": lambda draw, shapes: {
        "reps": draw(st.lists(st.integers(-1, 3), min_size=max(len(shapes[0]) - 1, 0), max_size=3))
    },
    "concatenate": lambda draw, shapes: {"dimension": draw(st.integers(-3, 3))},
    "slice": _slice,
    "pad": _pad,
    "convert_element_type": lambda draw, shapes: {
        "new_dtype": draw(st.sampled_from(["float32", "int8", "uint32", "bool", "complex64"]))
    },
}
"""Per op: a function of hypothesis' draw and the operand shapes, giving attributes."""
