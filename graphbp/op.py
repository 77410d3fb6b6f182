"""The op plugin contract: a forward function and its local derivative as a VJP."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from graphbp.errors import PluginError

Array = Any
"""An array of the active backend (numpy.ndarray, jax.Array, ...)."""

Example = tuple[tuple[Any, ...], dict[str, Any]]
"""Operands (float64 NumPy arrays) and attributes on which an op's gradient is checked."""


class Op:
    """Base class of every op plugin.

    A subclass sets ``name``, ``label`` and ``local_grads`` and defines ``forward`` and ``vjp``.
    ``xp`` is the backend's array namespace (numpy or jax.numpy); plugins never import it.
    Node attributes other than ``op``, ``shape`` and ``scope`` arrive as keyword arguments.

    ``vjp(xp, g, out, *operands, **attrs)`` gets ``g = ∂L/∂out`` and returns one cotangent
    per operand. It may return a cotangent of the broadcast (output) shape: the engine sums it
    back to the operand's shape. A vjp that also takes ``needs`` (a tuple of bools, one per
    operand) may return None where ``needs`` is False, to skip work nobody uses.

    An op without a vjp can still be used: JAX differentiates its forward itself; on NumPy
    compiling a network that needs its gradient is an error naming it.

    ``vjp_reads`` optionally declares which forward values the vjp reads: operand positions
    and/or ``"out"`` (σ's rule reads only ``out``). The engine frees the others as soon as the
    forward pass is done with them and passes None in their place. None (the default) means
    the vjp may read everything. The gradient checker holds ops to their declaration.

    Example:
        >>> class Cube(Op):
        ...     name = "cube"
        ...     label = "x³"
        ...     local_grads = ("3x²",)
        ...     def forward(self, xp, x):
        ...         return x**3
        ...     def vjp(self, xp, g, out, x):
        ...         return (3 * g * x**2,)
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    local_grads: ClassVar[tuple[str, ...]] = ()
    leaf: ClassVar[bool] = False
    vjp_reads: ClassVar[tuple[int | str, ...] | None] = None

    def forward(self, xp: Any, *operands: Array, **attrs: Any) -> Array:
        """Compute the op's output (an array of the backend) from its operands."""
        raise NotImplementedError

    def vjp(self, xp: Any, g: Array, out: Array, *operands: Array, **attrs: Any) -> Any:
        """Map ∂L/∂out to one cotangent ∂L/∂operandᵢ per operand."""
        raise NotImplementedError

    def examples(self, rng: Any) -> list[Example]:
        """Operands (and attributes) on which the op is smooth, for gradient checks.

        The default draws standard-normal operands of shape (3, 4); ops with a restricted
        domain (log, div) or particular shapes (matmul) override it.
        """
        return [(tuple(rng.standard_normal((3, 4)) for _ in range(self.arity)), {})]

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The label and local-derivative texts drawn for a node with these attributes.

        The default is the class's ``label`` and ``local_grads``; an op whose attributes
        change what it computes (``dense``'s activation) says so here.
        """
        return self.label, self.local_grads

    @property
    def arity(self) -> int:
        """The number of operands forward takes."""
        return signature_of(self).arity

    def __repr__(self) -> str:
        return f"<op {self.name!r} ({type(self).__module__}.{type(self).__qualname__})>"


class OpSignature:
    """What the engine needs to know about an op's methods, read once per op class."""

    def __init__(self, op: Op) -> None:
        self.arity, self.attrs, self.any_attrs = (
            (0, frozenset(), False) if op.leaf else _operands_and_attrs(op, op.forward)
        )
        self.vjp_takes_needs = "needs" in inspect.signature(op.vjp).parameters


_signatures: dict[type[Op], OpSignature] = {}


def signature_of(op: Op) -> OpSignature:
    """Inspect ``op`` once and cache what its methods accept."""
    cls = type(op)
    if cls not in _signatures:
        _signatures[cls] = OpSignature(op)
    return _signatures[cls]


def _operands_and_attrs(op: Op, forward: Callable[..., Any]) -> tuple[int, frozenset[str], bool]:
    params = list(inspect.signature(forward).parameters.values())
    if not params or params[0].kind not in (
        params[0].POSITIONAL_ONLY,
        params[0].POSITIONAL_OR_KEYWORD,
    ):
        raise PluginError(
            f"op {op.name!r} ({type(op).__qualname__}): forward must be "
            "forward(self, xp, *operands, **attrs); the first argument after self is xp"
        )
    operands = 0
    attrs: set[str] = set()
    any_attrs = False
    for p in params[1:]:
        if p.kind is p.VAR_POSITIONAL:
            raise PluginError(
                f"op {op.name!r} ({type(op).__qualname__}): forward takes *{p.name}; "
                "declare a fixed number of operands"
            )
        if p.kind is p.VAR_KEYWORD:
            any_attrs = True
        elif p.kind is p.KEYWORD_ONLY or p.default is not p.empty:
            attrs.add(p.name)
        else:
            operands += 1
    return operands, frozenset(attrs), any_attrs


def defines_vjp(op: Op) -> bool:
    """Whether ``op`` has its own derivative rule (JAX can do without one; NumPy cannot)."""
    return type(op).vjp is not Op.vjp


def validate_op(op: Op) -> None:
    """Raise PluginError unless ``op`` follows the plugin contract."""
    cls = type(op).__qualname__
    if not op.name or not op.name.isidentifier():
        raise PluginError(
            f"op class {cls} needs a `name` that is an identifier, e.g. name = 'cube'"
        )
    if not op.leaf and type(op).forward is Op.forward:
        raise PluginError(f"op {op.name!r} ({cls}) does not define forward(self, xp, *operands)")
    sig = signature_of(op)
    reads = op.vjp_reads
    if reads is not None and not defines_vjp(op):
        raise PluginError(
            f"op {op.name!r} ({cls}) declares vjp_reads but defines no vjp; define "
            "vjp(self, xp, g, out, *operands) or drop vjp_reads"
        )
    if reads is not None and any(r != "out" and r not in range(sig.arity) for r in reads):
        raise PluginError(
            f"op {op.name!r} ({cls}): vjp_reads={reads!r}; list operand positions "
            f"0..{sig.arity - 1} and/or 'out', the forward values the vjp reads"
        )
    if not op.leaf and len(op.local_grads) != sig.arity:
        raise PluginError(
            f"op {op.name!r} ({cls}): local_grads has {len(op.local_grads)} entries but forward "
            f"takes {sig.arity} operands; give one text of ∂out/∂operandᵢ per operand"
        )


def sum_to(xp: Any, g: Array, shape: tuple[int, ...]) -> Array:
    """Sum a broadcast cotangent ``g`` back down to ``shape`` (un-broadcasting).

    Leading axes that broadcasting added are summed away; axes where ``shape`` has 1 are
    summed and kept. One reduction does both.

    Raises:
        ValueError: when ``g`` cannot come from broadcasting an array of ``shape``.
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    tail = g.shape[lead:]
    if lead > 0 and tail == shape:  # the common case: a bias broadcast over the batch
        return g.sum(axis=0) if lead == 1 else g.sum(axis=tuple(range(lead)))
    if lead < 0 or any(want != 1 and want != have for have, want in zip(tail, shape, strict=True)):
        raise ValueError(f"cotangent of shape {g.shape} cannot be summed to {shape}")
    axes = (
        *range(lead),
        *(lead + i for i, (h, w) in enumerate(zip(tail, shape, strict=True)) if h != w),
    )
    return g.sum(axis=axes).reshape(shape)
