"""Arithmetic ops. Rules return the broadcast cotangent; the engine sums it to shape."""

from __future__ import annotations

from typing import Any

from graphbp import Op
from graphbp.op import Example
from graphbp_ops._examples import BROADCAST_SHAPES, away_from_zero
from graphbp_ops._shapes import broadcast


class _Binary(Op):
    def shape(self, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
        return broadcast(a, b)

    def examples(self, rng: Any) -> list[Example]:
        return [((rng.standard_normal(a), rng.standard_normal(b)), {}) for a, b in BROADCAST_SHAPES]


class Add(_Binary):
    name = "add"
    label = "+"
    local_grads = ("1", "1")
    vjp_reads = ()

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return a + b

    def vjp(self, xp: Any, g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
        return g, g


class Sub(_Binary):
    name = "sub"
    label = "−"
    local_grads = ("1", "−1")
    vjp_reads = ()

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return a - b

    def vjp(self, xp: Any, g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
        return g, -g


class Mul(_Binary):
    name = "mul"
    label = "×"
    local_grads = ("b", "a")
    vjp_reads = (0, 1)

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return a * b

    def vjp(self, xp: Any, g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
        return g * b, g * a


class Div(_Binary):
    name = "div"
    label = "÷"
    local_grads = ("1/b", "−a/b²")
    vjp_reads = (1, "out")

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return a / b

    def vjp(self, xp: Any, g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
        ga = g / b
        return ga, -ga * out

    def examples(self, rng: Any) -> list[Example]:
        return [((rng.standard_normal(a), away_from_zero(rng, b)), {}) for a, b in BROADCAST_SHAPES]


class Neg(Op):
    name = "neg"
    label = "−x"
    local_grads = ("−1",)
    vjp_reads = ()

    def forward(self, xp: Any, x: Any) -> Any:
        return -x

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (-g,)

    def shape(self, x: tuple[int, ...]) -> tuple[int, ...]:
        return x


class Square(Op):
    name = "square"
    label = "x²"
    local_grads = ("2x",)
    vjp_reads = (0,)

    def forward(self, xp: Any, x: Any) -> Any:
        return x * x

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (2 * g * x,)

    def shape(self, x: tuple[int, ...]) -> tuple[int, ...]:
        return x
