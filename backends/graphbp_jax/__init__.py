"""The JAX backend: the same op plugins on ``jax.numpy``, jitted, composable with jax.grad.

Found through the ``graphbp.backends`` entry point and imported only when asked for, so
``import graphbp`` never imports jax. Needs the ``[jax]`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from graphbp.backend import Backend, check_dtype
from graphbp.op import Op, defines_vjp

if TYPE_CHECKING:
    from graphbp.graph import Network
    from graphbp.program import Program


class JaxBackend(Backend):
    """Runs every op plugin with ``jax.numpy``; programs are jitted and may span devices."""

    name = "jax"
    mutable = False

    @property
    def xp(self) -> Any:
        """The jax.numpy module."""
        return jnp

    def precision(self, dtype: str) -> AbstractContextManager[Any]:
        """JAX's 64-bit mode for float64 work, scoped to the ``with`` block (and this thread).

        graphbp never flips the global ``jax_enable_x64`` flag: a user's other JAX code keeps
        JAX's float32 default while graphbp's float64 programs run in float64.
        """
        return jax.enable_x64(True) if dtype == "float64" else nullcontext()

    def asarray(self, value: Any, dtype: str) -> Any:
        """Convert ``value`` to a JAX array of ``dtype`` (float64 without a global flag)."""
        with self.precision(dtype):
            return jnp.asarray(value, dtype=dtype)

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``jax.jit(fn)``."""
        return jax.jit(fn)

    def to_numpy(self, value: Any) -> np.ndarray[Any, Any]:
        """Copy a JAX array to the host."""
        return np.asarray(value)

    def vjp_of(self, op: Op) -> Callable[..., Any]:
        """The op's own vjp, or else JAX's autodiff of its forward."""
        return op.vjp if defines_vjp(op) else autodiff_vjp(op)

    def compile(
        self,
        network: Network,
        dtype: str,
        check_finite: bool = False,
        devices: Any = None,
        **options: Any,
    ) -> Program:
        """A jitted program; ``devices`` (a count, devices or a Mesh) shards each batch."""
        from graphbp_jax.program import JaxProgram

        if options:
            super().compile(network, dtype, check_finite, **options)  # names the bad option
        return JaxProgram(network, self, check_dtype(dtype), check_finite, devices)


def autodiff_vjp(op: Op) -> Callable[..., Any]:
    """A vjp for ``op`` derived by ``jax.vjp`` from its forward (for ops that define none)."""

    def vjp(xp: Any, g: Any, out: Any, *operands: Any, **attrs: Any) -> Any:
        _, pullback = jax.vjp(lambda *xs: op.forward(xp, *xs, **attrs), *operands)
        return pullback(g)

    return vjp
