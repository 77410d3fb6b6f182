"""opaque: one equation of an imported JAX function that no built-in op computes.

``graphbp.from_jax`` makes one such node per unsupported equation (``cond``, ``scan``,
``while``, ``sort``, ...). Its ``call`` attribute runs the equation with JAX (a
``graphbp.jax_call.JaxCall``), so it runs on the JAX backend only, where ``jax.vjp`` of its
forward is its derivative rule; a network holding one cannot be saved as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from graphbp import Op
from graphbp.op import Example


class Opaque(Op):
    name = "opaque"
    label = "opaque"
    local_grads = ("by jax.vjp",)
    backends: ClassVar[tuple[str, ...] | None] = ("jax",)

    def forward(self, xp: Any, x: Any, *, primitive: str, call: Any) -> Any:
        return call(x)

    def shape(self, x: tuple[int, ...], *, primitive: str, call: Any) -> tuple[int, ...]:
        expected = tuple(call.in_shape())
        if tuple(x) != expected:
            raise ValueError(
                f"the {primitive} equation takes an operand of shape {expected}, not {tuple(x)}"
            )
        return tuple(call.out_shape())

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        return str(attrs.get("primitive", self.name)), self.local_grads

    def examples(self, rng: Any) -> list[Example]:
        """A cumulative sum (one operand) and atan2 (two, packed into one vector)."""
        import jax

        from graphbp.jax_call import JaxCall

        f8 = "float64"
        cumsum = JaxCall(
            jax.lax.cumsum_p, {"axis": 0, "reverse": False}, [((3, 4), f8)], {}, [((3, 4), f8)], [0]
        )
        atan2 = JaxCall(jax.lax.atan2_p, {}, [((3, 4), f8), ((3, 4), f8)], {}, [((3, 4), f8)], [0])
        return [
            ((rng.standard_normal((3, 4)),), {"primitive": "cumsum", "call": cumsum}),
            ((0.5 + abs(rng.standard_normal(24)),), {"primitive": "atan2", "call": atan2}),
        ]
