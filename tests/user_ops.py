"""Ops as a plugin author writes them, shared by the plugin tests (imported as ``user_ops``,
and copied beside the test files of the ``gradcheck`` fixture's pytest run): the README's
Cube, a swish, and a swish whose rule is wrong."""

from __future__ import annotations

from typing import Any

import graphbp as gb


class Cube(gb.Op):
    """The README's example plugin."""

    name = "cube"
    label = "x³"
    local_grads = ("3x²",)

    def forward(self, xp: Any, x: Any) -> Any:
        return x**3

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (3 * g * x**2,)


class Swish(gb.Op):
    name = "t_swish"
    label = "x·σ(x)"
    local_grads = ("σ(x)(1+x(1−σ(x)))",)

    def forward(self, xp: Any, x: Any) -> Any:
        return x * (0.5 + 0.5 * xp.tanh(0.5 * x))

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        s = 0.5 + 0.5 * xp.tanh(0.5 * x)
        return (g * (s + out * (1 - s)),)

    def shape(self, x: tuple[int, ...]) -> tuple[int, ...]:
        return x


class WrongSwish(Swish):
    """Swish whose rule forgets the x·σ(1−σ) term: a plausible bug."""

    name = "t_wrong_swish"

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g * (0.5 + 0.5 * xp.tanh(0.5 * x)),)
