"""Operand shapes that exercise broadcasting, shared by the binary elementwise ops' checks."""

from __future__ import annotations

from typing import Any

BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,))]


def away_from_zero(rng: Any, shape: tuple[int, ...], margin: float = 0.5) -> Any:
    """Random values with |v| >= margin: for ops with a pole or kink at zero."""
    x = rng.standard_normal(shape)
    return (margin + abs(x)) * rng.choice([-1.0, 1.0], size=shape)
