"""The backend contract: an array namespace plus conversions to and from NumPy."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

from graphbp.errors import InputError
from graphbp.op import defines_vjp

if TYPE_CHECKING:
    import numpy as np

    from graphbp.graph import Network
    from graphbp.op import Array, Op
    from graphbp.program import Program

DTYPES = ("float32", "float64")


class Backend:
    """An array library the engine runs on; subclasses set ``name`` and ``xp``."""

    name: ClassVar[str] = ""
    mutable: ClassVar[bool] = False
    """Whether arrays may be updated in place (NumPy) rather than replaced (JAX)."""
    array_type: ClassVar[type | None] = None
    """The concrete array type; inputs already of it (and of the dtype) skip conversion."""

    @property
    def xp(self) -> Any:
        """The array namespace passed to every op (numpy, jax.numpy, ...)."""
        raise NotImplementedError

    def precision(self, dtype: str) -> AbstractContextManager[Any]:
        """A context in which ops compute in ``dtype`` (JAX needs one for float64)."""
        return nullcontext()

    def asarray(self, value: Any, dtype: str) -> Array:
        """Convert ``value`` to a backend array of floating ``dtype``."""
        return self.xp.asarray(value, dtype=dtype)

    def constant(self, value: Any, dtype: str) -> Array:
        """A backend array that is shared between runs and must never change."""
        return self.asarray(value, dtype)

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` compiled for repeated calls on arrays (JAX: ``jax.jit``; NumPy: ``fn``)."""
        return fn

    def to_numpy(self, value: Array) -> np.ndarray[Any, Any]:
        """Copy a backend array to a NumPy array."""
        import numpy as np

        return np.asarray(value)

    def vjp_of(self, op: Op) -> Callable[..., Any] | None:
        """The derivative rule used for ``op``: its own vjp, or None if it defines none."""
        return op.vjp if defines_vjp(op) else None

    def compile(
        self, network: Network, dtype: str, check_finite: bool = False, **options: Any
    ) -> Program:
        """Build the runnable program for ``network`` on this backend.

        Raises:
            InputError: for an option this backend does not take (``devices`` is JAX's).
        """
        from graphbp.program import Program

        if options:
            given = ", ".join(f"{k}={v!r}" for k, v in options.items())
            raise InputError(
                f"the {self.name} backend takes no option {given}; it runs on one CPU "
                "(compile with backend='jax' to use several devices)"
            )
        return Program(network, self, check_dtype(dtype), check_finite)


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if graphbp supports it, else raise InputError naming the choices."""
    if dtype not in DTYPES:
        raise InputError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    return dtype
