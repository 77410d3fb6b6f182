"""JaxProgram: the engine's plans run under ``jax.jit``, optionally data-parallel.

Three things differ from NumPy, and only these:

- Every entry point is a jitted function: the engine's Python traversal runs while JAX traces
  it, once per input shape, and never again.
- ``loss`` and ``forward`` wrap each op in ``jax.custom_vjp`` wired to the plugin's vjp, so
  ``jax.grad(prog.loss)`` differentiates with the plugins' own rules; ``value_and_grad`` and
  training run graphbp's backward traversal itself.
- With ``devices``, inputs are split along their batch axis across a ``Mesh`` and parameters
  are replicated; XLA inserts the gradient all-reduce (no hand-written communication).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from graphbp.engine import Rules, count_error, fit_cotangent
from graphbp.errors import InputError
from graphbp.graph import Network, shape_matches
from graphbp.op import defines_vjp, signature_of
from graphbp.plan import Plan, Step
from graphbp.program import Program, TrainStep
from graphbp_jax import JaxBackend

if TYPE_CHECKING:
    from graphbp.optim import Optimizer


class JaxProgram(Program):
    """A network compiled for JAX: jitted, differentiable by JAX, shardable across devices.

    Args:
        network: the validated network.
        backend: the JAX backend.
        dtype: ``"float64"`` (run in JAX's 64-bit mode, scoped to graphbp's calls) or
            ``"float32"``.
        check_finite: run eagerly (not jitted) and name the first non-finite node.
        devices: None (JAX's default device), a device count, a list of devices, or a
            ``jax.sharding.Mesh``; batches are split across all of the mesh's devices.
    """

    def __init__(
        self,
        network: Network,
        backend: JaxBackend,
        dtype: str,
        check_finite: bool = False,
        devices: Any = None,
    ) -> None:
        with backend.precision(dtype):
            super().__init__(network, backend, dtype, check_finite)
        self.mesh = make_mesh(devices)
        self._jit: Callable[..., Any] = (lambda f, **_: f) if check_finite else jax.jit
        self._functions: dict[Any, tuple[Plan, Callable[..., Any]]] = {}

    def precision(self) -> AbstractContextManager[Any]:
        """The context graphbp's calls run in: JAX's 64-bit mode for a float64 program."""
        return self.backend.precision(self.dtype)

    # ------------------------------------------------------------------------ derivatives

    def _rules(self, with_grad: bool) -> Rules:
        """The backward traversal calls the plugins' vjps (or JAX's autodiff of ops without);
        forward-only plans wrap each op so that JAX's own transformations use the same rules.
        """
        forward = (lambda step: step.op.forward) if with_grad else self._custom_vjp
        return Rules(forward, self._vjp_rule)

    def _custom_vjp(self, step: Step) -> Callable[..., Any]:
        """``step``'s forward as a ``jax.custom_vjp`` function whose rule is the plugin's vjp."""
        op, attrs = step.op, step.attrs
        if not defines_vjp(op):
            return op.forward  # JAX differentiates it as it is
        needs = {"needs": (True,) * len(step.args)} if signature_of(op).vjp_takes_needs else {}
        in_precision = self.precision

        @jax.custom_vjp
        def apply(*operands: Any) -> Any:
            return op.forward(jnp, *operands, **attrs)

        def forward(*operands: Any) -> tuple[Any, Any]:
            out = op.forward(jnp, *operands, **attrs)
            return out, (out, operands)

        def backward(saved: Any, g: Any) -> tuple[Any, ...]:
            out, operands = saved
            with in_precision():  # JAX may transpose after graphbp's call has returned
                cts = op.vjp(jnp, g, out, *operands, **attrs, **needs)
                if not isinstance(cts, tuple | list) or len(cts) != len(operands):
                    count_error(step, cts)
                return tuple(
                    jnp.zeros_like(x)
                    if ct is None
                    else fit_cotangent(jnp, jnp.asarray(ct, x.dtype), x.shape, step, i)
                    for i, (ct, x) in enumerate(zip(cts, operands, strict=True))
                )

        apply.defvjp(forward, backward)
        return lambda xp, *operands, **_: apply(*operands)

    # ---------------------------------------------------------------------- entry points

    def loss(self, params: Mapping[Any, Any], inputs: Mapping[Any, Any]) -> Any:
        """The loss (a 0-d array); a JAX function: jax.grad of it uses the plugins' vjps."""
        return self._call(None, False, params, inputs)[0]

    def forward(
        self, params: Mapping[Any, Any], inputs: Mapping[Any, Any], outputs: Iterable[Hashable]
    ) -> dict[Any, Any]:
        """Values of the nodes ``outputs``, needing only their inputs."""
        outputs = tuple(outputs)
        return dict(zip(outputs, self._call(outputs, False, params, inputs), strict=True))

    def value_and_grad(
        self, params: Mapping[Any, Any], inputs: Mapping[Any, Any]
    ) -> tuple[Any, dict[Any, Any]]:
        """The loss and ∂loss/∂param for every parameter, by graphbp's backward traversal."""
        loss, grads = self._call(None, True, params, inputs)
        return loss, dict(zip(self.network.params, grads, strict=True))

    def _call(
        self,
        outputs: tuple[Hashable, ...] | None,
        with_grad: bool,
        params: Mapping[Any, Any],
        inputs: Mapping[Any, Any],
    ) -> Any:
        with self.precision():
            plan, fn = self._function(outputs, with_grad)
            ps = tuple(self._leaf("param", n, params) for n, _ in plan.params)
            xs = tuple(self._leaf("input", n, inputs) for n, _ in plan.inputs)
            return fn(ps, xs)

    def _function(
        self, outputs: tuple[Hashable, ...] | None, with_grad: bool
    ) -> tuple[Plan, Callable[..., Any]]:
        """The plan and its jitted ``fn(params, inputs)`` (see ``_traced``)."""
        key = self._key(outputs, with_grad)
        if key not in self._functions:
            plan, fn = self._traced(outputs, with_grad)
            self._functions[key] = plan, self._jit(fn)
        return self._functions[key]

    def _traced(
        self, outputs: tuple[Hashable, ...] | None, with_grad: bool
    ) -> tuple[Plan, Callable[..., Any]]:
        """The plan and ``fn(params, inputs)``, the engine's run over tuples in plan order.

        With gradient, ``fn`` returns the loss and a tuple of every parameter's gradient in
        network order: by position, because JAX cannot sort mixed-type names as dict keys.
        """
        plan, compiled = self._get(outputs, with_grad)
        p_names = [n for n, _ in plan.params]
        i_names = [n for n, _ in plan.inputs]
        run, place = compiled.run, self._place

        def fn(ps: Sequence[Any], xs: Sequence[Any]) -> Any:
            ps, xs = place(ps, xs)
            result = run(
                jnp, dict(zip(p_names, ps, strict=True)), dict(zip(i_names, xs, strict=True))
            )
            if not with_grad:
                return tuple(result)
            loss, grads = result
            return loss, tuple(self._all_grads(grads).values())

        return plan, fn

    def _all_grads(self, grads: dict[Any, Any]) -> dict[Any, Any]:
        """``grads`` for every parameter, in network order: zeros where the loss does not
        depend on it."""
        return {
            n: grads[n] if n in grads else jnp.zeros(self.network.shapes[n] or (), self.dtype)
            for n in self.network.params
        }

    def _leaf(self, kind: str, name: Hashable, given: Mapping[Any, Any]) -> Any:
        """A leaf as a JAX array (or tracer) of the program's dtype, checked like NumPy's."""
        value = given.get(name)
        if (
            isinstance(value, jax.Array)
            and value.dtype == self._dtype
            and shape_matches(value.shape, self.network.shapes[name])
        ):
            return value
        return self._admit(kind, name, value, given)

    # ----------------------------------------------------------------------------- devices

    def _place(self, ps: Sequence[Any], xs: Sequence[Any]) -> tuple[tuple[Any, ...], ...]:
        """Inside jit: parameters replicated, inputs split along axis 0 across the mesh."""
        mesh = self.mesh
        if mesh is None:
            return tuple(ps), tuple(xs)
        constrain: Callable[[Any, NamedSharding], Any] = jax.lax.with_sharding_constraint
        return (
            tuple(constrain(p, replicated(mesh)) for p in ps),
            tuple(constrain(x, batch_sharding(mesh, x)) for x in xs),
        )

    def own(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        """Private copies on the program's device(s), replicated across a mesh."""
        with self.precision():
            owned = {k: jnp.array(v, dtype=self.dtype, copy=True) for k, v in values.items()}
        if self.mesh is not None:
            owned = jax.device_put(owned, replicated(self.mesh))
        return owned

    # ---------------------------------------------------------------------------- training

    def train_step(
        self, optimizer: Optimizer, params: Sequence[Hashable], inputs: Sequence[Hashable]
    ) -> TrainStep:
        """The whole step — batch gather, forward, backward traversal, update — as one jitted
        function; parameters and optimizer state are donated (updated without a copy).
        """
        plan, fn = self._traced(None, True)
        param_at = {n: i for i, n in enumerate(params)}
        input_at = {n: i for i, n in enumerate(inputs)}

        def step(current: Any, state: Any, data: Sequence[Any], rows: Any) -> Any:
            ps = [current[param_at[n]] for n, _ in plan.params]
            loss, grads = fn(ps, [data[input_at[n]][rows] for n, _ in plan.inputs])
            by_position = {param_at[n]: g for n, g in zip(self.network.params, grads, strict=True)}
            current, state = optimizer.update(current, by_position, state)
            return current, state, loss

        jitted = self._jit(step, donate_argnums=(0, 1))

        def run_step(current: Any, state: Any, data: Sequence[Any], rows: Any) -> Any:
            with self.precision():
                return jitted(current, state, data, rows)

        return run_step


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
    return Mesh(np.array(chosen), ("batch",))


def replicated(mesh: Mesh) -> NamedSharding:
    """A whole copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())  # type: ignore[no-untyped-call]


def batch_sharding(mesh: Mesh, x: Any) -> NamedSharding:
    """Split axis 0 across every device of ``mesh``; replicate what does not divide evenly."""
    if x.ndim == 0 or x.shape[0] % mesh.size:
        return replicated(mesh)  # e.g. a last, short batch: still correct, just not parallel
    return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names)))  # type: ignore[no-untyped-call]
