"""The JAX backend: the same op plugins on ``jax.numpy``, jitted, composable with jax.grad.

Found through the ``graphbp.backends`` entry point and imported only when asked for, so
``import graphbp`` never imports jax. Needs the ``[jax]`` extra.

It supplies what differs from NumPy, and only that: programs are wrapped in ``jax.jit`` (their
traversal runs while JAX traces, once per input shape); float64 runs in JAX's 64-bit mode,
scoped to graphbp's calls; ``differentiable`` wraps each op in ``jax.custom_vjp`` wired to the
plugin's vjp, so ``jax.grad(prog.loss)`` uses the plugins' rules; an op without a vjp is
differentiated by ``jax.vjp``; with ``devices``, inputs are split along their batch axis across
a ``Mesh`` and parameters replicated, and XLA inserts the gradient all-reduce. A mesh may
span the processes of a ``jax.distributed`` run: training then keeps the data on the host and
``feed`` gives each process's devices only their rows of every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from graphbp.backend import Backend
from graphbp.errors import InputError, TransformError

FORWARD_MODE = (
    "{what}: JAX was asked to apply forward mode (jax.jvp, jax.jacfwd) to it, but its "
    "derivative rules are the op plugins' vjps, registered with jax.custom_vjp, which JAX "
    "applies in reverse mode only. Use jax.grad, jax.vjp or jax.jacrev; for second "
    "derivatives, jax.jacrev(jax.jacrev(prog.loss)) or jax.hessian (forward mode over the "
    "reverse-mode gradient, which differentiates the plugins' vjp code itself); for "
    "Jacobian-vector products of the gradient, jax.jvp of prog.value_and_grad. In float64 "
    "these need JAX's 64-bit mode on (jax.config.update('jax_enable_x64', True))"
)


class JaxBackend(Backend):
    """Runs every op plugin with ``jax.numpy``; programs are jitted and may span devices."""

    name = "jax"
    array_types = (jax.Array,)  # tracers included
    traced = True
    differentiates = True

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

    def to_numpy(self, value: Any) -> np.ndarray[Any, Any]:
        """Copy a JAX array to the host; one split across processes is gathered from all of
        them (a collective: every process must ask for it)."""
        if isinstance(value, jax.Array) and not (
            value.is_fully_addressable or value.is_fully_replicated
        ):
            return np.asarray(multihost_utils.process_allgather(value, tiled=True))
        return np.asarray(value)

    def demoted(self, value: Any, dtype: str) -> str | None:
        """Why a float32 JAX value (a tracer included) cannot enter a float64 program while
        JAX's 64-bit mode is off, or None.

        With 64-bit mode off, ``jax.grad``, ``jax.jit`` and ``jnp.asarray`` turn float64 NumPy
        arrays into float32 before graphbp sees them: computing in float64 from there would
        only hide the float32 rounding (a gradient off by ~1e-4 relative, returned as
        float32). graphbp refuses instead. A float32 JAX value in 64-bit mode was asked for
        explicitly, and is converted as NumPy float32 values are.
        """
        if (
            dtype != "float64"
            or not isinstance(value, jax.Array)
            or not jnp.issubdtype(value.dtype, jnp.floating)
            or value.dtype.itemsize >= 8
            or jax.dtypes.canonicalize_dtype(np.float64) == np.float64  # 64-bit mode is on
        ):
            return None
        return (
            f"is a {value.dtype} JAX array or tracer, but the program computes in float64: "
            "JAX's 64-bit mode is off, so JAX rounded its float64 values to float32 before "
            "graphbp saw them (jax.grad, jax.jit and jnp.asarray do), and a float64 result "
            "would carry float32 errors; enable 64-bit mode before creating arrays "
            "(jax.config.update('jax_enable_x64', True), or call inside "
            "`with jax.enable_x64(True):`), pass float64 arrays from prog.init or prog.own, "
            "or compile with dtype='float32'"
        )

    def transform_error(self, exc: BaseException) -> Exception | None:
        """A TransformError for JAX's refusal to apply forward mode to a custom_vjp rule."""
        text = str(exc)
        if isinstance(exc, TypeError) and "forward-mode" in text and "custom_vjp" in text:
            return TransformError(FORWARD_MODE.format(what="this graphbp program"))
        return None

    def autodiff(self, forward: Callable[[Sequence[Any]], Any]) -> Callable[..., Any]:
        """A vjp rule from ``jax.vjp`` of ``forward``, for an op that defines none."""

        def vjp(xp: Any, g: Any, out: Any, *operands: Any, **attrs: Any) -> Any:
            _, pullback = jax.vjp(lambda *xs: forward(xs), *operands)
            return pullback(g)

        return vjp

    def differentiable(
        self,
        forward: Callable[[Sequence[Any]], Any],
        vjp: Callable[[Any, Any, Sequence[Any]], Sequence[Any]],
        dtype: str,
    ) -> Callable[[Sequence[Any]], Any]:
        """``forward`` as a ``jax.custom_vjp`` function whose rule is ``vjp``."""
        precision = self.precision

        @jax.custom_vjp
        def apply(*operands: Any) -> Any:
            return forward(operands)

        def forward_saving(*operands: Any) -> tuple[Any, Any]:
            out = forward(operands)
            return out, (out, operands)

        def backward(saved: Any, g: Any) -> tuple[Any, ...]:
            out, operands = saved
            with precision(dtype):  # JAX may transpose after graphbp's call has returned
                return tuple(vjp(g, out, operands))

        apply.defvjp(forward_saving, backward)
        return lambda operands: apply(*operands)

    def layout(self, devices: Any) -> Mesh | None:
        """A one-axis ("batch") mesh over ``devices`` (a count or a list), or the Mesh given."""
        return make_mesh(devices)

    def constrain(self, layout: Any, params: Sequence[Any], inputs: Sequence[Any]) -> Any:
        """Inside jit: parameters replicated, inputs split along axis 0 across the mesh."""
        if layout is None:
            return params, inputs
        constrain: Callable[[Any, NamedSharding], Any] = jax.lax.with_sharding_constraint
        return (
            tuple(constrain(p, replicated(layout)) for p in params),
            tuple(constrain(x, batch_sharding(layout, x.shape)) for x in inputs),
        )

    def place(self, layout: Any, values: dict[Any, Any]) -> dict[Any, Any]:
        """Copies replicated on every device of the mesh (as they are without one)."""
        if layout is None:
            return values
        if self.processes(layout) == 1:
            placed: dict[Any, Any] = jax.device_put(values, replicated(layout))
            return placed
        # Across processes, from each process's host copy (gb.train checked they are the same):
        # jax.device_put would compare the copies with process_allgather first, which fails
        # when the processes have different numbers of devices.
        sharding = replicated(layout)

        def copies(value: Any) -> Any:
            if isinstance(value, jax.Array) and not value.is_fully_addressable:
                return jax.device_put(value, sharding)
            host = np.asarray(value)
            return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

        copied: dict[Any, Any] = jax.tree.map(copies, values)
        return copied

    def processes(self, layout: Any) -> int:
        """How many processes own a device of the mesh ``layout`` (1 without one)."""
        if layout is None:
            return 1
        return len({d.process_index for d in layout.devices.flat})

    def feed(
        self, layout: Any, arrays: Sequence[np.ndarray[Any, Any]], rows: np.ndarray[Any, Any]
    ) -> tuple[Any, ...]:
        """The batch ``rows`` of each host array as one global array split along axis 0 across
        the mesh (as ``constrain`` splits it), built by each process from only the rows of its
        own devices (``jax.make_array_from_callback``); without a mesh, on the default device."""
        if layout is None:
            return tuple(jnp.asarray(a[rows]) for a in arrays)
        batch = []
        for a in arrays:
            shape = (len(rows), *a.shape[1:])
            sharding = batch_sharding(layout, shape)

            def rows_of(index: Any, a: np.ndarray[Any, Any] = a) -> Any:
                return a[(rows[index[0]], *index[1:])]

            batch.append(jax.make_array_from_callback(shape, sharding, rows_of))
        return tuple(batch)

    def gather_hosts(self, value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Every process's ``value`` (the same shape and dtype in each) stacked in process
        order: one row per process on a mesh of each process's first device, so processes
        with different numbers of local devices gather alike (``process_allgather`` assumes
        they all have as many)."""
        if jax.process_count() == 1:
            return value[None]
        firsts: dict[int, Any] = {}
        for device in jax.devices():
            firsts.setdefault(device.process_index, device)
        mesh = Mesh(np.array([firsts[p] for p in sorted(firsts)]), ("processes",))
        mine = jax.device_put(value[None], firsts[jax.process_index()])
        shape = (len(firsts), *value.shape)
        rows = jax.make_array_from_single_device_arrays(shape, batch_sharding(mesh, shape), [mine])
        everywhere = jax.jit(lambda a: a, out_shardings=replicated(mesh))
        return np.asarray(everywhere(rows).addressable_data(0))

    def wrap(self, fn: Callable[..., Any], donate: tuple[int, ...] = ()) -> Callable[..., Any]:
        """``jax.jit(fn, donate_argnums=donate)``."""
        return jax.jit(fn, donate_argnums=donate)


def make_mesh(devices: Any) -> Mesh | None:
    """A one-axis ("batch") mesh over ``devices`` (a count or a list), or the Mesh given."""
    if devices is None or isinstance(devices, Mesh):
        return devices
    available = jax.devices()
    if isinstance(devices, int):
        if not 1 <= devices <= len(available):
            raise InputError(
                f"devices={devices}, but JAX sees {len(available)} device(s) "
                f"({available[0].platform}); ask for at most that many (on CPU, set "
                "XLA_FLAGS=--xla_force_host_platform_device_count=N before jax is imported)"
            )
        chosen = available[:devices]
    else:
        chosen = list(devices)
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise InputError(
                f"devices={devices!r}: pass a device count, a list of jax devices or a "
                "jax.sharding.Mesh"
            )
    if not any(d.process_index == jax.process_index() for d in chosen):
        raise InputError(
            f"devices={devices!r} holds none of this process's devices (process "
            f"{jax.process_index()} of {jax.process_count()}): in a jax.distributed run every "
            "process computes on its own devices; pass a mesh over every process's devices "
            f"(devices={len(available)}, or a Mesh of jax.devices())"
        )
    return Mesh(np.array(chosen), ("batch",))


def replicated(mesh: Mesh) -> NamedSharding:
    """A whole copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())  # type: ignore[no-untyped-call]


def batch_sharding(mesh: Mesh, shape: tuple[int, ...]) -> NamedSharding:
    """Split axis 0 of an array of ``shape`` across every device of ``mesh``; replicate what
    does not divide evenly."""
    if not shape or shape[0] % mesh.size:
        return replicated(mesh)  # e.g. a last, short batch: still correct, just not parallel
    return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))  # type: ignore[no-untyped-call]
