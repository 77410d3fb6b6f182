"""Checks of JSON-plain attributes (lists of ints, padding pairs) for the shape rules of the
lax-style ops: each raises TypeError or ValueError naming the attribute, so a graph file's
wrong value is refused before any array is made."""

from __future__ import annotations

from typing import Any

from graphbp.errors import show


def is_int(value: Any) -> bool:
    """Whether ``value`` is an int (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


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
