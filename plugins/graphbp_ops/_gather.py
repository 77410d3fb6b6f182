"""XLA's gather, as lax.gather_p has it (the index vector is the last axis of the indices),
computed by advanced indexing, and its transpose, a scatter-add.

Each operand axis is read at ``start + offset``: ``start`` is the index the indices give for it
(axes in ``start_index_map``, clamped into range), the batch position (``operand_batching_dims``)
or 0; ``offset`` runs over the slice for axes kept in the output (``offset_dims``). Axes read
whole (no index, full slice) are sliced instead of indexed, so ``table[ids]`` is one take.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from graphbp.errors import show
from graphbp_ops._attrs import axes, choice, ints, is_int

MODES = ("clip", "fill", "promise_in_bounds")
KEYS = (
    "offset_dims",
    "collapsed_slice_dims",
    "start_index_map",
    "operand_batching_dims",
    "start_indices_batching_dims",
)


class Plan(NamedTuple):
    """How one gather reads its operand, from shapes and attributes alone."""

    out_shape: tuple[int, ...]
    indexed: tuple[int, ...]
    """Operand axes read through index arrays, then the axes read whole (``whole``)."""
    whole: tuple[int, ...]
    reduced_shape: tuple[int, ...]
    """The output's shape without the axes of ``whole``: the index arrays' common shape."""
    order: tuple[int, ...]
    """The output axis of each axis of the indexed result (reduced axes, then whole ones)."""
    starts: tuple[tuple[str, int, int], ...]
    """Per indexed axis: ("index", k, hi) start from the indices' column k clamped to
    [0, hi]; ("batch", axis, 0) the position along reduced ``axis``; ("zero", 0, 0)."""
    offsets: tuple[int | None, ...]
    """Per indexed axis: the reduced axis its slice runs along, or None (collapsed)."""
    slice_sizes: tuple[int, ...]
    batch_axes: tuple[int, ...]
    """The reduced axes of the indices' batch axes, in order."""
    columns: tuple[tuple[int, int], ...]
    """Per column of the indices: the operand axis it starts and its largest start."""


def plan(operand: tuple[int, ...], indices: tuple[int, ...], dnums: Any, sizes: Any) -> Plan:
    """The plan of a gather, or ValueError/TypeError naming the attribute that does not fit."""
    if not isinstance(dnums, Mapping):
        raise TypeError(f"dimension_numbers must be a dict of {', '.join(KEYS)}; got {show(dnums)}")
    unknown = [k for k in dnums if k not in KEYS]
    if unknown:
        raise ValueError(f"dimension_numbers has the unknown key {show(unknown[0])}")
    missing = [k for k in KEYS[:3] if k not in dnums]
    if missing:
        raise ValueError(f"dimension_numbers needs {missing[0]!r}")
    rank, q = len(operand), len(indices)
    if q < 1:
        raise ValueError("indices must have at least one axis (the last holds each index vector)")
    out_rank = len(ints("offset_dims", dnums["offset_dims"])) + q - 1
    offset_dims = axes("offset_dims", dnums["offset_dims"], out_rank, ascending=True)
    collapsed = axes("collapsed_slice_dims", dnums["collapsed_slice_dims"], rank, ascending=True)
    start_map = axes("start_index_map", dnums["start_index_map"], rank)
    batching = axes("operand_batching_dims", dnums.get("operand_batching_dims", []), rank)
    if batching != sorted(batching):
        raise ValueError(f"operand_batching_dims {batching} must be in ascending order")
    idx_batching = axes(
        "start_indices_batching_dims", dnums.get("start_indices_batching_dims", []), q - 1
    )
    if len(start_map) != indices[-1]:
        raise ValueError(
            f"start_index_map has {len(start_map)} entries but the indices' last axis has "
            f"{indices[-1]}; they must be equal"
        )
    if set(collapsed) & set(batching) or set(start_map) & set(batching):
        raise ValueError(
            "operand_batching_dims must not appear in collapsed_slice_dims or start_index_map"
        )
    if len(batching) != len(idx_batching):
        raise ValueError(
            "operand_batching_dims and start_indices_batching_dims must have equal lengths"
        )
    if any(operand[a] != indices[b] for a, b in zip(batching, idx_batching, strict=True)):
        raise ValueError(
            "operand_batching_dims and start_indices_batching_dims must have the same sizes"
        )
    sizes = ints("slice_sizes", sizes, rank, low=0)
    kept = [d for d in range(rank) if d not in collapsed and d not in batching]
    if len(kept) != len(offset_dims):
        raise ValueError(
            f"slice_sizes has {rank} entries, but offset_dims, collapsed_slice_dims and "
            "operand_batching_dims name "
            f"{len(offset_dims) + len(collapsed) + len(batching)} axes; every operand axis "
            "must be exactly one of them"
        )
    for d, s in enumerate(sizes):
        if (d in collapsed or d in batching) and s != 1:
            raise ValueError(
                f"slice_sizes[{d}] = {show(s)}, but axis {d} is collapsed or batching, so must be 1"
            )
    batch_out = [a for a in range(out_rank) if a not in offset_dims]
    offset_out = dict(zip(kept, offset_dims, strict=True))
    out_shape = [0] * out_rank
    for d, a in offset_out.items():
        out_shape[a] = sizes[d]
    for b, a in enumerate(batch_out):
        out_shape[a] = indices[b]
    for d, s in enumerate(sizes):  # an empty output reads nothing (JAX: empty indices)
        if s > operand[d] and math.prod(out_shape):
            raise ValueError(f"slice_sizes[{d}] = {s} is larger than the operand's axis {d}")
    whole = tuple(
        d for d in kept if d not in start_map and sizes[d] == operand[d] and operand[d] > 0
    )
    whole_out = [offset_out[d] for d in whole]
    reduced_axes = [a for a in range(out_rank) if a not in whole_out]
    where = {a: i for i, a in enumerate(reduced_axes)}
    indexed = tuple(d for d in range(rank) if d not in whole)
    starts = []
    for d in indexed:
        if d in start_map:
            starts.append(("index", start_map.index(d), max(operand[d] - sizes[d], 0)))
        elif d in batching:
            starts.append(("batch", where[batch_out[idx_batching[batching.index(d)]]], 0))
        else:
            starts.append(("zero", 0, 0))
    return Plan(
        out_shape=tuple(out_shape),
        indexed=indexed,
        whole=whole,
        reduced_shape=tuple(out_shape[a] for a in reduced_axes),
        order=(*reduced_axes, *whole_out),
        starts=tuple(starts),
        offsets=tuple(where[offset_out[d]] if d in offset_out else None for d in indexed),
        slice_sizes=tuple(sizes),
        batch_axes=tuple(where[a] for a in batch_out),
        columns=tuple((d, operand[d] - sizes[d]) for d in start_map),
    )


def check_mode(mode: Any, fill_value: Any) -> None:
    """Refuse a mode other than MODES, and a fill value that is not a finite number or None."""
    choice("mode", mode, MODES)
    if fill_value is None:
        return
    if is_int(fill_value) or isinstance(fill_value, float):
        try:
            if math.isfinite(float(fill_value)):
                return
        except OverflowError:  # an int beyond any float
            pass
    raise ValueError(f"fill_value must be a finite float or None (NaN); got {show(fill_value)}")


def _along(xp: Any, values: Any, axis: int, ndim: int) -> Any:
    """``values`` (1-D) laid along ``axis`` of an ``ndim``-axis array of ones elsewhere."""
    shape = [1] * ndim
    shape[axis] = -1
    return xp.reshape(values, shape)


def _batch_shaped(xp: Any, p: Plan, column: Any) -> Any:
    """A batch-shaped array (the indices without their last axis) laid on the reduced axes."""
    shape = [1] * len(p.reduced_shape)
    for axis, size in zip(p.batch_axes, column.shape, strict=True):
        shape[axis] = size
    return xp.reshape(column, shape)


def read_starts(xp: Any, p: Plan, indices: Any) -> tuple[list[Any], Any]:
    """Each index column rounded to ints and clamped into range, and whether each window is
    in bounds (reduced-shaped, None when there are no index columns)."""
    starts, inside = [], None
    for k, (_, hi) in enumerate(p.columns):
        raw = xp.rint(indices[..., k])
        raw = xp.clip(xp.where(raw == raw, raw, -1.0), -1.0, hi + 1.0)  # NaN: out of bounds
        ok = (raw >= 0) & (raw <= hi)
        inside = ok if inside is None else inside & ok
        starts.append(_batch_shaped(xp, p, xp.clip(raw, 0, max(hi, 0)).astype(int)))
    return starts, (None if inside is None else _batch_shaped(xp, p, inside))


def index_arrays(xp: Any, p: Plan, starts: list[Any]) -> tuple[Any, ...]:
    """One integer array of the reduced shape per indexed operand axis."""
    ndim = len(p.reduced_shape)
    arrays = []
    for d, (kind, k, _), axis in zip(p.indexed, p.starts, p.offsets, strict=True):
        start = starts[k] if kind == "index" else 0
        if kind == "batch":
            start = _along(xp, xp.arange(p.reduced_shape[k]), k, ndim)
        if axis is not None:
            start = start + _along(xp, xp.arange(p.slice_sizes[d]), axis, ndim)
        arrays.append(xp.broadcast_to(xp.asarray(start), p.reduced_shape))
    return tuple(arrays)


def to_output(xp: Any, p: Plan, result: Any) -> Any:
    """The indexed result (reduced axes, then whole axes) in the output's axis order."""
    if list(p.order) == sorted(p.order):
        return result
    return xp.transpose(result, [p.order.index(a) for a in range(len(p.order))])


def from_output(xp: Any, p: Plan, g: Any) -> Any:
    """The inverse of ``to_output``."""
    return g if list(p.order) == sorted(p.order) else xp.transpose(g, p.order)


def operand_order(p: Plan) -> list[int]:
    """The operand's axes as the indexing reads them: indexed, then whole."""
    return [*p.indexed, *p.whole]
