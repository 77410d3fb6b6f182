"""Matrix products. Their rules take ``needs`` to skip cotangents nobody uses (e.g. ∂L/∂x)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphbp import Op
from graphbp.errors import GraphError
from graphbp.op import Example, defines_vjp
from graphbp.registry import get_op

_ALL = (True, True, True)


def weight_grad(x: Any, g: Any) -> Any:
    """xᵀ·g, the cotangent of W in x·W (2-D). With a single output column it is computed as
    (gᵀ·x)ᵀ: XLA's CPU backend turns xᵀ·g into a slow reduction loop there (a whole jitted
    training step measured 1.07–1.10× slower), while NumPy takes both alike."""
    return (g.T @ x).T if g.shape[-1] == 1 else x.T @ g


def matmul_vjp(xp: Any, g: Any, a: Any, b: Any, needs: tuple[bool, ...]) -> tuple[Any, Any]:
    """Cotangents of ``a @ b`` (NumPy matmul semantics, 1-D operands included)."""
    if a.ndim == 2 and b.ndim == 2:  # the common case, kept short
        return (g @ b.T if needs[0] else None), (weight_grad(a, g) if needs[1] else None)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = xp.expand_dims(g, -1) if b.ndim == 1 else g
    g2 = xp.expand_dims(g2, -2) if a.ndim == 1 else g2
    ga = gb = None
    if needs[0]:
        ga = g2 @ xp.swapaxes(b2, -1, -2)
        ga = ga[..., 0, :] if a.ndim == 1 else ga
    if needs[1]:
        gb = xp.swapaxes(a2, -1, -2) @ g2
        gb = gb[..., 0] if b.ndim == 1 else gb
    return ga, gb


class MatMul(Op):
    name = "matmul"
    label = "·"
    local_grads = ("·Bᵀ", "Aᵀ·")
    vjp_reads = (0, 1)

    def forward(self, xp: Any, a: Any, b: Any) -> Any:
        return a @ b

    def vjp(
        self, xp: Any, g: Any, out: Any, a: Any, b: Any, needs: tuple[bool, ...] = _ALL
    ) -> tuple[Any, Any]:
        return matmul_vjp(xp, g, a, b, needs)

    def examples(self, rng: Any) -> list[Example]:
        shapes = [
            ((3, 4), (4, 5)),
            ((2, 3, 4), (4, 5)),
            ((4,), (4, 5)),
            ((3, 4), (4,)),
            ((4,), (4,)),
        ]
        return [((rng.standard_normal(a), rng.standard_normal(b)), {}) for a, b in shapes]


class Affine(Op):
    name = "affine"
    label = "x·W+b"
    local_grads = ("·Wᵀ", "xᵀ·", "1")
    vjp_reads = (0, 1)

    def forward(self, xp: Any, x: Any, w: Any, b: Any) -> Any:
        return x @ w + b

    def vjp(
        self, xp: Any, g: Any, out: Any, x: Any, w: Any, b: Any, needs: tuple[bool, ...] = _ALL
    ) -> tuple[Any, Any, Any]:
        if x.ndim == 2:  # the common case, one frame fewer
            return (g @ w.T if needs[0] else None), (weight_grad(x, g) if needs[1] else None), g
        gx, gw = matmul_vjp(xp, g, x, w, needs)
        return gx, gw, g

    def examples(self, rng: Any) -> list[Example]:
        shapes = [((3, 4), (4, 5), (5,)), ((3, 4), (4, 5), (3, 5)), ((2, 3, 4), (4, 5), (1, 5))]
        return [(tuple(rng.standard_normal(s) for s in case), {}) for case in shapes]


_ACTIVATIONS: dict[str, Op] = {}
"""Activations already checked, by name (looked up on every layer call, so kept cheap)."""


def activation_op(name: str) -> Op:
    """The one-operand op named ``name``, for use as a layer's activation."""
    op = get_op(name)
    if _ACTIVATIONS.get(name) is op:
        return op
    if op.arity != 1 or not defines_vjp(op):
        raise GraphError(
            f"activation {name!r} must be an op with one operand and a vjp (such as sigmoid, "
            "tanh, relu, softplus); use a separate node for anything else"
        )
    _ACTIVATIONS[name] = op
    return op


class Dense(Op):
    """A layer ``f(x·W + b)``: an affine map and an elementwise activation op in one node.

    The textbook writes a layer as one equation, h1 = σ(x·W1 + b1), and so does this node:
    the chain rule through it is one factor, ∂h1/∂W1. ``activation`` names any one-operand op
    (its forward and vjp are used, so a plugin activation works too).
    """

    name = "dense"
    label = "f(x·W+b)"
    local_grads = ("(f′⊙·)·Wᵀ", "xᵀ·(f′⊙·)", "f′⊙·")

    def forward(self, xp: Any, x: Any, w: Any, b: Any, activation: str = "sigmoid") -> Any:
        return activation_op(activation).forward(xp, x @ w + b)

    def vjp(
        self,
        xp: Any,
        g: Any,
        out: Any,
        x: Any,
        w: Any,
        b: Any,
        activation: str = "sigmoid",
        needs: tuple[bool, ...] = _ALL,
    ) -> tuple[Any, Any, Any]:
        f = activation_op(activation)
        reads = f.vjp_reads
        z = x @ w + b if reads is None or 0 in reads else None  # σ, tanh: from out alone
        (gz,) = f.vjp(xp, g, out, z)
        if x.ndim == 2:
            gw = weight_grad(x, gz) if needs[1] else None
            return (gz @ w.T if needs[0] else None), gw, gz
        gx, gw = matmul_vjp(xp, gz, x, w, needs)
        return gx, gw, gz

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        f = get_op(str(attrs.get("activation", "sigmoid")))
        slope = f.local_grads[0] if f.local_grads else f"{f.label}′"
        return (
            self.label.replace("f", f.label, 1),
            tuple(text.replace("f′", slope) for text in self.local_grads),
        )

    def examples(self, rng: Any) -> list[Example]:
        shapes = [((3, 4), (4, 5), (5,)), ((2, 3, 4), (4, 5), (1, 5))]
        return [
            (tuple(rng.standard_normal(s) for s in case), {"activation": act})
            for case in shapes
            for act in ("sigmoid", "tanh", "softplus")
        ]
