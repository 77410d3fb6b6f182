"""Attributes for the NN ops' shape-rule property test (tests/test_safe_shapes.py): each
entry draws attributes for the operand shapes drawn, mostly fitting, sometimes broken."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

Draw = Callable[[st.SearchStrategy[Any]], Any]
Shapes = list[tuple[int, ...]]

BAD = st.sampled_from([[0], [-1], [1.5], "2", None, [[1, 2, 3]], [True], {}])
"""Values no list-of-ints attribute takes (or of the wrong length)."""


def _spoil(draw: Draw, attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs``, one of them replaced by a bad value one time in eight."""
    if attrs and draw(st.integers(0, 7)) == 0:
        attrs[draw(st.sampled_from(sorted(attrs)))] = draw(BAD)
    return attrs


def _gather(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    operand, indices = shapes
    rank = len(operand)
    columns = indices[-1] if indices else 0
    axes = list(range(rank))
    starts = draw(st.permutations(axes))[:columns] if columns <= rank else [0] * columns
    collapsed = sorted(draw(st.lists(st.sampled_from(axes), unique=True))) if axes else []
    sizes = [1 if d in collapsed else draw(st.integers(0, max(operand[d], 0))) for d in axes]
    out_rank = rank - len(collapsed) + max(len(indices) - 1, 0)
    offsets = sorted(draw(st.permutations(range(out_rank)))[: rank - len(collapsed)])
    attrs = {
        "dimension_numbers": {
            "offset_dims": offsets,
            "collapsed_slice_dims": collapsed,
            "start_index_map": list(starts),
        },
        "slice_sizes": sizes,
        "mode": draw(st.sampled_from(["clip", "fill", "promise_in_bounds"])),
        "fill_value": draw(st.sampled_from([None, 0.0, -1])),
    }
    if draw(st.integers(0, 7)) == 0:
        attrs["mode"] = draw(st.sampled_from(["wrap", 1, None]))
    return _spoil(draw, attrs)


def _conv(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    rank = len(shapes[0])
    nd = max(rank - 2, 0)
    numbers = {
        key: list(draw(st.permutations(range(rank))))
        for key in ("lhs_spec", "rhs_spec", "out_spec")
    }
    attrs = {
        "window_strides": draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)),
        "padding": [[draw(st.integers(-1, 2)), draw(st.integers(-1, 2))] for _ in range(nd)],
        "lhs_dilation": draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)),
        "rhs_dilation": draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)),
        "dimension_numbers": numbers,
        "feature_group_count": draw(st.sampled_from([1, 1, 1, 2])),
        "batch_group_count": draw(st.sampled_from([1, 1, 1, 2])),
    }
    return _spoil(draw, attrs)


def _window(draw: Draw, shapes: Shapes) -> dict[str, Any]:
    rank = len(shapes[0])

    def each(low: int, high: int) -> list[int]:
        return list(draw(st.lists(st.integers(low, high), min_size=rank, max_size=rank)))

    attrs = {
        "window_dimensions": each(0, 3),
        "window_strides": each(1, 2),
        "padding": [[draw(st.integers(-1, 2)), draw(st.integers(-1, 2))] for _ in range(rank)],
        "base_dilation": each(1, 2),
        "window_dilation": each(1, 2),
    }
    return _spoil(draw, attrs)


ATTRS: dict[str, Callable[[Draw, Shapes], dict[str, Any]]] = {
    "gather": _gather,
    "conv": _conv,
    "reduce_window_max": _window,
    "reduce_window_sum": _window,
}
