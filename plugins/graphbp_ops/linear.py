"""Matrix products. Their rules take ``needs`` to skip cotangents nobody uses (e.g. ∂L/∂x)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from graphbp import Op
from graphbp.errors import GraphError, article
from graphbp.op import (
    Example,
    apply_label,
    check_cotangent,
    check_count,
    defines_shape,
    defines_vjp,
    rename_variable,
    signature_of,
    vjp_kwargs,
)
from graphbp.registry import arrays_for, get_op
from graphbp_ops._shapes import broadcast, matmul

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

    def shape(self, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
        return matmul(a, b)

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

    def shape(self, x: tuple[int, ...], w: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
        return broadcast(matmul(x, w), b)

    def examples(self, rng: Any) -> list[Example]:
        shapes = [((3, 4), (4, 5), (5,)), ((3, 4), (4, 5), (3, 5)), ((2, 3, 4), (4, 5), (1, 5))]
        return [(tuple(rng.standard_normal(s) for s in case), {}) for case in shapes]


class Activation(NamedTuple):
    """A layer's activation op, and how its rule is called (read once per op)."""

    op: Op
    kwargs: Mapping[str, Any]
    """``needs`` for a rule that takes it (∂L/∂z is always needed)."""
    reads_out: bool
    reads_z: bool


_ACTIVATIONS: dict[str, Activation] = {}
"""Activations already checked, by name (looked up on every layer call, so kept cheap)."""


def _activation(name: str) -> Activation:
    """The one-operand op named ``name``, for use as a layer's activation."""
    if not isinstance(name, str):
        raise GraphError(
            "activation must be the name of an op (such as 'sigmoid'); got "
            f"{article(type(name).__name__)}"
        )
    op = get_op(name)
    known = _ACTIVATIONS.get(name)
    if known is not None and known.op is op:
        return known
    if op.arity != 1 or not defines_vjp(op):
        raise GraphError(
            f"activation {name!r} must be an op with one operand and a vjp (such as sigmoid, "
            "tanh, relu, softplus); use a separate node for anything else"
        )
    reads_out, reads_z = signature_of(op).reads
    known = _ACTIVATIONS[name] = Activation(op, vjp_kwargs(op, {}, (True,)), reads_out, reads_z)
    return known


class Dense(Op):
    """A layer ``f(x·W + b)``: an affine map and an elementwise activation op in one node.

    The textbook writes a layer as one equation, h1 = σ(x·W1 + b1), and so does this node:
    the chain rule through it is one factor, ∂h1/∂W1. ``activation`` names any one-operand op
    (its forward and vjp are used, so a plugin activation works too, held to the same contract:
    its rule's cotangent is checked as call_vjp checks one, and its forward's result is dense's
    own, which the engine checks).
    """

    name = "dense"
    label = "f(x·W+b)"
    local_grads = ("(f′⊙·)·Wᵀ", "xᵀ·(f′⊙·)", "f′⊙·")

    def forward(self, xp: Any, x: Any, w: Any, b: Any, activation: str = "sigmoid") -> Any:
        # What the activation returns is dense's own result: the engine checks it as such.
        return _activation(activation).op.forward(xp, x @ w + b)

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
        f = _activation(activation)
        z = x @ w + b if f.reads_z else None  # σ, tanh: their rules read out alone
        cts = f.op.vjp(xp, g, out if f.reads_out else None, z, **f.kwargs)
        try:
            (gz,) = cts
            if x.ndim == 2:
                gw = weight_grad(x, gz) if needs[1] else None
                return (gz @ w.T if needs[0] else None), gw, gz
            gx, gw = matmul_vjp(xp, gz, x, w, needs)
            return gx, gw, gz
        except (TypeError, ValueError):  # the activation's rule broke the contract: name it
            check_count(f.op, None, cts, 1)
            check_cotangent(f.op, arrays_for(xp, g.dtype), None, 0, cts[0], out.shape, g.ndim)
            raise

    def shape(
        self,
        x: tuple[int, ...],
        w: tuple[int, ...],
        b: tuple[int, ...],
        activation: str = "sigmoid",
    ) -> tuple[int, ...]:
        z = broadcast(matmul(x, w), b)
        f = _activation(activation).op
        return f.shape(z) if defines_shape(f) else z  # an activation is elementwise

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """``σ(x·W+b)`` for a function name, ``(x·W+b)·σ(x·W+b)`` for a label ``x·σ(x)``; the
        activation's derivative is written in z = x·W+b, the value it is applied to."""
        label, grads = get_op(str(attrs.get("activation", "sigmoid"))).describe({})
        slope = rename_variable(grads[0], "z") if grads else f"{label}′"
        return (
            apply_label(label, "x·W+b"),
            tuple(text.replace("f′", slope) for text in self.local_grads),
        )

    def examples(self, rng: Any) -> list[Example]:
        shapes = [((3, 4), (4, 5), (5,)), ((2, 3, 4), (4, 5), (1, 5))]
        return [
            (tuple(rng.standard_normal(s) for s in case), {"activation": act})
            for case in shapes
            for act in ("sigmoid", "tanh", "softplus")
        ]
