"""Checks of list-of-int attributes (axes, sizes, permutations) as graph files give them: JSON
lists, or the tuples a JAX jaxpr holds. Each raises TypeError or ValueError naming the
attribute, which shape inference turns into a GraphError naming the node."""

from __future__ import annotations

import numbers
from typing import Any

from graphbp_ops._shapes import axes


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (a Python or NumPy int), not a bool."""
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and (type(value).__name__ != "bool_")
    )


def int_attr(name: str, value: Any) -> int:
    """``value`` as an int, or TypeError naming the attribute ``name``."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r:.40}")
    return int(value)


def int_list(name: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    """``value`` (a list or tuple of ints) as a tuple; TypeError for anything else and
    ValueError when it does not have ``length`` entries."""
    if not isinstance(value, list | tuple):
        raise TypeError(f"{name} must be a list of ints; got {type(value).__name__}")
    for v in value:
        if not is_int(v):
            raise TypeError(f"{name} must be a list of ints; it holds {type(v).__name__} {v!r:.40}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} has {len(value)} entries; it needs {length}, one per axis")
    return tuple(int(v) for v in value)


def sizes(name: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of non-negative ints (axis sizes)."""
    out = int_list(name, value, length)
    if any(v < 0 for v in out):
        raise ValueError(f"{name}={list(out)} holds a negative size")
    return out


def axis_list(name: str, value: Any, ndim: int) -> tuple[int, ...]:
    """Axes of an array of ``ndim`` axes (negative ones count from the end), each once,
    in the order given."""
    given = int_list(name, value)
    try:
        return axes(list(given), ndim)
    except ValueError as exc:
        raise ValueError(f"{name}={list(given)}: {exc}") from None
