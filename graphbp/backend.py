"""The backend contract: an array namespace, conversions, and how a program's positional core
is wrapped and its arrays placed. ``Program`` is written once; a backend supplies only these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

from graphbp.errors import InputError, show
from graphbp.op import Arrays

if TYPE_CHECKING:
    import numpy as np

    from graphbp.op import Array

DTYPES = ("float32", "float64")


class Backend:
    """An array library the engine runs on; subclasses set ``name``, ``xp``, ``array_types``.

    The defaults run eagerly, on one device, with no autodiff of its own (NumPy's case).
    """

    name: ClassVar[str] = ""
    array_types: ClassVar[tuple[type, ...]] = ()
    """What counts as an array of this backend; the first is the concrete array type."""
    mutable: ClassVar[bool] = False
    """Whether arrays may be updated in place (NumPy) rather than replaced (JAX)."""
    traced: ClassVar[bool] = False
    """Whether wrapped functions run by tracing, once per input shape (``jax.jit``): generated
    traversal code would then buy nothing, so programs interpret the plan."""
    differentiates: ClassVar[bool] = False
    """Whether the backend differentiates a forward itself (``autodiff``, ``differentiable``)."""

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

    def arrays(self, dtype: str) -> Arrays:
        """What plugins run with on this backend, and what their results must be."""
        import numpy as np

        dt = np.dtype(check_dtype(dtype))
        return Arrays(self.xp, self.array_types, dt, self.name, self.is_array)

    def is_array(self, value: Any) -> bool:
        """Whether ``value`` is an array of this backend: an instance of ``array_types``."""
        return isinstance(value, self.array_types)

    def read_only(self, value: Array) -> Array:
        """``value`` as plugins see it in a strict program: an array they cannot write into.

        The default returns it as it is: arrays of a backend without in-place updates (JAX)
        are immutable already.
        """
        return value

    def independent(self, values: Sequence[Array], others: Iterable[Any]) -> tuple[Array, ...]:
        """``values`` (results handed to the caller), each one an array of its own.

        On a backend whose arrays can change in place, a result that is read-only, shares its
        memory with another result or with one of ``others`` (the caller's own arrays) is
        copied, so that changing one never changes another. The default (immutable arrays)
        returns them as they are.
        """
        return tuple(values)

    def demoted(self, value: Any, dtype: str) -> str | None:
        """Why ``value`` cannot enter a ``dtype`` program without losing precision silently
        (with the fix), or None if it can. Only a backend that may have demoted a value
        before graphbp saw it (JAX without 64-bit mode) says anything."""
        return None

    def transform_error(self, exc: BaseException) -> Exception | None:
        """The graphbp error explaining ``exc``, raised by the backend when a program was
        transformed in a way its derivative rules do not support; None for anything else."""
        return None

    def to_numpy(self, value: Array) -> np.ndarray[Any, Any]:
        """Copy a backend array to a NumPy array."""
        import numpy as np

        return np.asarray(value)

    # ---------------------------------------------------------------- derivatives

    def autodiff(self, forward: Callable[[Sequence[Array]], Array]) -> Callable[..., Any] | None:
        """A vjp rule, called like ``Op.vjp``, derived from ``forward`` (operands → output) for
        an op that defines none; None if the backend cannot differentiate by itself."""
        return None

    def differentiable(
        self,
        forward: Callable[[Sequence[Array]], Array],
        vjp: Callable[[Array, Array, Sequence[Array]], Sequence[Array]],
        dtype: str,
    ) -> Callable[[Sequence[Array]], Array]:
        """``forward`` as a function the backend's own differentiation differentiates with
        ``vjp`` (g, out, operands → cotangents): JAX wraps it in ``jax.custom_vjp``."""
        return forward

    # ---------------------------------------------------------------- wrapping, placing

    def layout(self, devices: Any) -> Any:
        """How a program's arrays are spread over ``devices`` (None: the backend's default).

        Raises:
            InputError: this backend runs on one device (NumPy).
        """
        if devices is not None:
            raise InputError(
                f"the {self.name} backend takes no option devices={devices!r}; it runs on one "
                "CPU (compile with backend='jax' to use several devices)"
            )
        return None

    def constrain(self, layout: Any, params: Sequence[Array], inputs: Sequence[Array]) -> Any:
        """Inside a wrapped function: ``(params, inputs)`` laid out as ``layout`` says."""
        return params, inputs

    def place(self, layout: Any, values: dict[Any, Array]) -> dict[Any, Array]:
        """``values`` moved where a program with ``layout`` computes."""
        return values

    def processes(self, layout: Any) -> int:
        """How many processes a program with ``layout`` computes in (1: this one alone)."""
        return 1

    def feed(
        self, layout: Any, arrays: Sequence[np.ndarray[Any, Any]], rows: np.ndarray[Any, Any]
    ) -> tuple[Array, ...]:
        """The rows ``rows`` of each host array in ``arrays``, as one batch where a program
        with ``layout`` computes; across processes, each process sends only its devices' rows
        (JAX)."""
        picked = self.place(layout, {i: a[rows] for i, a in enumerate(arrays)})
        return tuple(picked[i] for i in range(len(arrays)))

    def gather_hosts(self, value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Every process's ``value`` (a NumPy array of the same shape in each), stacked along a
        new first axis in process order; a collective: every process must call it."""
        return value[None]

    def wrap(self, fn: Callable[..., Any], donate: tuple[int, ...] = ()) -> Callable[..., Any]:
        """``fn`` compiled for repeated calls (JAX: ``jax.jit``, arguments ``donate`` donated).

        Args:
            fn: a function of arrays (and tuples or dicts of them).
            donate: positions of arguments whose buffers ``fn`` may reuse for its results.
        """
        return fn


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if graphbp supports it, else raise InputError naming the choices."""
    if dtype not in DTYPES:
        raise InputError(f"dtype {show(dtype)} is not supported; use one of {', '.join(DTYPES)}")
    return dtype
