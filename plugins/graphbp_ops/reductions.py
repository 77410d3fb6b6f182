"""Reductions over an ``axis`` (None: all axes), optionally keeping reduced axes."""

from __future__ import annotations

from typing import Any

from graphbp import Op
from graphbp.op import Example
from graphbp_ops._shapes import reduce

Axis = int | tuple[int, ...] | list[int] | None


def _axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def _spread(xp: Any, g: Any, x: Any, axis: Axis, keepdims: bool) -> Any:
    """Broadcast a reduced cotangent back over the reduced axes of ``x``."""
    if not keepdims:
        g = xp.expand_dims(g, _axes(axis, x.ndim))
    return xp.broadcast_to(g, x.shape)


def _examples(rng: Any) -> list[Example]:
    x = rng.standard_normal((3, 4))
    return [
        ((x,), {}),
        ((x,), {"axis": 0}),
        ((x,), {"axis": -1, "keepdims": True}),
        ((x,), {"axis": [0, 1]}),
    ]


class Sum(Op):
    name = "sum"
    label = "Σ"
    local_grads = ("1",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any, axis: Axis = None, keepdims: bool = False) -> Any:
        return xp.sum(x, axis=_axis(axis), keepdims=keepdims)

    def vjp(
        self, xp: Any, g: Any, out: Any, x: Any, axis: Axis = None, keepdims: bool = False
    ) -> tuple[Any]:
        return (_spread(xp, g, x, axis, keepdims),)

    def shape(
        self, x: tuple[int, ...], axis: Axis = None, keepdims: bool = False
    ) -> tuple[int, ...]:
        return reduce(x, axis, keepdims)

    def examples(self, rng: Any) -> list[Example]:
        return _examples(rng)


class Mean(Op):
    name = "mean"
    label = "mean"
    local_grads = ("1/n",)
    vjp_reads = (0, "out")

    def forward(self, xp: Any, x: Any, axis: Axis = None, keepdims: bool = False) -> Any:
        return xp.mean(x, axis=_axis(axis), keepdims=keepdims)

    def vjp(
        self, xp: Any, g: Any, out: Any, x: Any, axis: Axis = None, keepdims: bool = False
    ) -> tuple[Any]:
        n = x.size // max(out.size, 1) if x.size else 1
        return (_spread(xp, g / n, x, axis, keepdims),)

    def shape(
        self, x: tuple[int, ...], axis: Axis = None, keepdims: bool = False
    ) -> tuple[int, ...]:
        return reduce(x, axis, keepdims)

    def examples(self, rng: Any) -> list[Example]:
        return _examples(rng)


def _axis(axis: Axis) -> int | tuple[int, ...] | None:
    """Axis as NumPy and JAX take it (JSON turns tuples into lists)."""
    return tuple(axis) if isinstance(axis, list) else axis
