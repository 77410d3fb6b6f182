"""Checks of JSON-plain attributes (axes, sizes, permutations, padding pairs) as graph files
give them: JSON lists, or the tuples a JAX jaxpr holds. Each raises TypeError or ValueError
naming the attribute, which shape inference turns into a GraphError naming the node."""

from __future__ import annotations

import numbers
from typing import Any

from graphbp.errors import show
from graphbp.shapes import MAX_RANK
from graphbp_ops._shapes import axes as normal_axes


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (a Python or NumPy int), not a bool."""
    if type(value) is int:  # the common case, decided at once
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def int_attr(name: str, value: Any) -> int:
    """``value`` as an int, or TypeError naming the attribute ``name``."""
    if not is_int(value):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {show(value, 40)}")
    return int(value)


def at_most_rank(name: str, value: Any, extra: int = 0) -> None:
    """Refuse a list ``value`` whose entries (plus ``extra`` axes) would make a value of more
    than MAX_RANK axes: checked first, so a hostile list of any length costs one ``len``."""
    if isinstance(value, list | tuple) and len(value) + extra > MAX_RANK:
        more = f"with the operand's {extra} axes, " if extra else ""
        raise ValueError(
            f"{name} has {len(value):,} entries; {more}that makes more than the "
            f"{MAX_RANK} axes a value may have"
        )


def int_list(name: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    """``value`` (a list or tuple of ints) as a tuple; TypeError for anything else and
    ValueError when it does not have ``length`` entries."""
    if not isinstance(value, list | tuple):
        raise TypeError(f"{name} must be a list of ints; got {type(value).__name__}")
    for v in value:
        if not is_int(v):
            raise TypeError(
                f"{name} must be a list of ints; it holds {type(v).__name__} {show(v, 40)}"
            )
    if length is not None and len(value) != length:
        raise ValueError(f"{name} has {len(value)} entries; it needs {length}")
    return tuple(int(v) for v in value)


def sizes(name: str, value: Any, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of non-negative ints (axis sizes)."""
    out = int_list(name, value, length)
    if any(v < 0 for v in out):
        raise ValueError(f"{name}={show(list(out))} holds a negative size")
    return out


def axis_list(name: str, value: Any, ndim: int) -> tuple[int, ...]:
    """Axes of an array of ``ndim`` axes (negative ones count from the end), each once,
    in the order given."""
    return normal_axes(list(int_list(name, value)), ndim, name)


def ints(name: str, value: Any, length: int | None = None, low: int | None = None) -> list[int]:
    """``value`` as a list of ints (a list or tuple of them), of ``length`` if given and each
    at least ``low`` if given; TypeError or ValueError naming ``name`` otherwise."""
    if not isinstance(value, list | tuple) or not all(is_int(v) for v in value):
        raise TypeError(f"{name} must be a list of ints; got {show(value)}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} entries; got {len(value)} ({show(value)})")
    if low is not None and any(v < low for v in value):
        raise ValueError(f"{name} must be ints >= {low}; got {show(value)}")
    return list(value)


def pairs(name: str, value: Any, length: int) -> list[tuple[int, int]]:
    """``value`` as ``length`` [lo, hi] pairs of ints (negative allowed: they crop)."""
    if not isinstance(value, list | tuple) or not all(
        isinstance(p, list | tuple) and len(p) == 2 and is_int(p[0]) and is_int(p[1]) for p in value
    ):
        raise TypeError(f"{name} must be a list of [lo, hi] pairs of ints; got {show(value)}")
    if len(value) != length:
        raise ValueError(f"{name} must have {length} [lo, hi] pairs; got {len(value)}")
    return [(p[0], p[1]) for p in value]


def axes(name: str, value: Any, ndim: int, *, ascending: bool = False) -> list[int]:
    """``value`` as distinct axes in [0, ``ndim``), ascending if asked."""
    out = ints(name, value)
    if any(not 0 <= a < ndim for a in out):
        raise ValueError(f"{name} {show(value)} has an axis outside [0, {ndim})")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} {show(value)} names an axis twice")
    if ascending and out != sorted(out):
        raise ValueError(f"{name} {show(value)} must be in ascending order")
    return out


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    """``value`` if it is one of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, options))}; got {show(value)}"
        )
    return value
