"""JaxCall: one JAX equation, run with JAX, as the ``call`` of an opaque node.

An imported equation no built-in op computes (``cond``, ``scan``, ``while``, ``sort``, ...)
becomes one node of op ``opaque`` whose ``call`` attribute is a ``JaxCall``. Its operand is
the equation's one non-constant operand, or all of them flattened and concatenated; constant
operands are held by the call. It casts its operands back to the dtypes the equation was
traced with (graphbp values are all of the program's dtype), binds the primitive, and returns
the outputs the network uses in the program's dtype: one as it is, several flattened and
concatenated. It has no derivative rule of its own: the JAX backend differentiates it with
``jax.vjp``, and no other backend can run it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from graphbp.errors import InputError


class JaxCall:
    """Run one equation of a jaxpr with JAX (see the module docstring).

    Args:
        primitive: the JAX primitive; ``params``: its parameters, as in the equation.
        in_avals: the shape and dtype of every operand of the equation.
        consts: the operands known at import, by position.
        out_avals: the shape and dtype of every output; ``used``: the positions returned.
        source: where the user's code made the equation (``model.py:14``), or None.
    """

    not_data = "its computation is a JAX function held in memory, not data a file can hold"
    """Why a network holding a JaxCall cannot be saved (``Network.to_json``)."""

    def __init__(
        self,
        primitive: Any,
        params: dict[str, Any],
        in_avals: Sequence[tuple[tuple[int, ...], Any]],
        consts: dict[int, Any],
        out_avals: Sequence[tuple[tuple[int, ...], Any]],
        used: Sequence[int],
        source: str | None = None,
    ) -> None:
        self.primitive = primitive
        self.params = params
        self.in_avals = [(tuple(s), np.dtype(d)) for s, d in in_avals]
        self.consts = consts
        self.fed = [i for i in range(len(in_avals)) if i not in consts]
        """The operand positions the node's operand carries, in order."""
        self.out_avals = [(tuple(s), np.dtype(d)) for s, d in out_avals]
        self.used = list(used)
        self.source = source
        self.wide = any(d.itemsize == 8 for _, d in [*self.in_avals, *self.out_avals])
        """Whether the equation computes with 64-bit values (JAX's 64-bit mode needed)."""

    @property
    def name(self) -> str:
        """The primitive's name (``cond``, ``scan``)."""
        return str(self.primitive.name)

    @property
    def packed(self) -> bool:
        """Whether the node's operand is several operands flattened and concatenated."""
        return len(self.fed) != 1

    def in_shape(self) -> tuple[int, ...]:
        """The shape of the node's operand."""
        if not self.packed:
            return self.in_avals[self.fed[0]][0]
        return (sum(math.prod(self.in_avals[i][0]) for i in self.fed),)

    def out_shape(self) -> tuple[int, ...]:
        """The shape of the node's result."""
        if len(self.used) == 1:
            return self.out_avals[self.used[0]][0]
        return (sum(math.prod(self.out_avals[i][0]) for i in self.used),)

    def __call__(self, x: Any) -> Any:
        """The equation's used outputs, in ``x``'s dtype, from the node's operand ``x``.

        Raises:
            InputError: the equation was traced in float64 but runs without JAX's 64-bit
                mode (in a float32 program): its inner computations are typed float64.
        """
        if self.wide and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
            where = f" (from {self.source})" if self.source else ""
            raise InputError(
                f"the opaque {self.name} equation{where} was traced in float64 and runs only "
                "in float64; compile this network with dtype='float64', or import the "
                "function with float32 arguments for a float32 program"
            )
        parts = [x]
        if self.packed:
            parts, start = [], 0
            for i in self.fed:
                shape = self.in_avals[i][0]
                size = math.prod(shape)
                parts.append(jnp.reshape(x[start : start + size], shape))
                start += size
        operands: list[Any] = [None] * len(self.in_avals)
        for i, part in zip(self.fed, parts, strict=True):
            operands[i] = _cast(part, self.in_avals[i][1])
        for i, value in self.consts.items():
            operands[i] = jnp.asarray(value)
        outs = self.primitive.bind(*operands, **self.params)
        if not self.primitive.multiple_results:
            outs = [outs]
        used = [jnp.asarray(outs[i]).astype(x.dtype) for i in self.used]
        if len(used) == 1:
            return used[0]
        return jnp.concatenate([jnp.reshape(u, (-1,)) for u in used])

    def __repr__(self) -> str:
        where = f" at {self.source}" if self.source else ""
        return f"<JaxCall {self.name}{where}>"


def _cast(value: Any, dtype: np.dtype[Any]) -> Any:
    """A float operand as the dtype its equation was traced with (as JAX runs it now)."""
    if dtype == np.bool_:
        return value != 0
    target = jax.dtypes.canonicalize_dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return jnp.rint(value).astype(target)
    return value.astype(target)
