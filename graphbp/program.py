"""Program: a network compiled for one backend and dtype — init it, run it, differentiate it.

One implementation for every backend. At its heart is a positional core per plan,
``core(params, inputs)`` over tuples in plan order, returning the outputs or the loss and every
parameter's gradient. The name-keyed methods (``loss``, ``value_and_grad``, ``forward``) and
``train_step`` are written once around it; a backend only wraps the core (JAX: jit, float64
scope, donation, sharding) and places arrays.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal

from graphbp.backend import Backend, check_dtype
from graphbp.codegen import generate, generate_entry, write
from graphbp.engine import Rules, Run, interpret
from graphbp.errors import GraphError, InputError, PluginError, article, show
from graphbp.op import (
    Array,
    call_forward,
    call_vjp,
    defines_vjp,
    runs_on,
    shape_fits,
    signature_of,
)
from graphbp.plan import BackStep, Plan, Step, build_plan

if TYPE_CHECKING:
    from graphbp.graph import Network
    from graphbp.optim import Optimizer

Traversal = Literal["generated", "interpreted"]
TrainStep = Callable[
    [dict[int, Array], Any, Sequence[Array], Any], tuple[dict[int, Array], Any, Array]
]
"""``step(params, state, data, rows) -> (params, state, loss)``: one minibatch update.

Parameters are keyed by position in ``network.params``; ``data`` holds every row of each input
the loss needs, in the order of ``prog.plan(with_grad=True).inputs``; ``rows`` picks the batch,
or is None when ``data`` is the batch already (fed by ``Backend.feed`` across processes).
"""
PlanKey = tuple[tuple[Hashable, ...], bool]

GENERATED_MAX_STEPS = 10_000
"""Plans with more steps (forward plus backward) are interpreted by default. Writing and
compiling a plan's source costs about 65 µs per step (110 µs beyond 20,000 steps) and the
generated code then saves about 1.5 µs per step on every run: it pays after 40-75 runs at any
size, but above this size its first run waits more than 0.7 s (README, Speed)."""


def check_backend(network: Network, backend: str) -> None:
    """Raise GraphError if an op node of ``network`` does not run on ``backend``: the node,
    its op, the primitive and source line where it has them, and the fix."""
    for node, op in network.ops.items():
        if runs_on(op, backend):
            continue
        data = network.graph.nodes[node]
        what = f"node {node!r} (op {op.name!r}"
        if isinstance(data.get("primitive"), str):
            what += f", JAX primitive {data['primitive']!r}"
        if isinstance(data.get("source"), str):
            what += f", from {data['source']}"
        runs = " or ".join(repr(b) for b in op.backends or ())
        raise GraphError(
            f"{what}) runs only on the {runs} backend, not on {backend!r}; compile with "
            f"backend={(op.backends or ('jax',))[0]!r}"
            + (
                ", or rewrite that part of the function with operations graphbp has ops for "
                "(`graphbp ops` lists them)"
                if "primitive" in data
                else ""
            )
        )


class Program:
    """A network compiled for one backend and dtype.

    Args:
        network: the validated network.
        backend: the backend to run on.
        dtype: ``"float64"`` or ``"float32"``.
        check_finite: raise NonFiniteError naming the first node whose value or gradient
            is NaN or infinite (slower: on JAX it runs eagerly, not jitted).
        devices: a backend's devices to split each batch across (JAX: a count, a list of
            devices or a ``jax.sharding.Mesh``); None for the default device.
        traversal: ``"generated"`` (the plan written out as Python and compiled once) or
            ``"interpreted"`` (a loop over the plan). Default: generated for plans of at most
            ``GENERATED_MAX_STEPS`` steps on a backend that does not trace, else interpreted.
        strict: hand plugins read-only arrays (values, ``out`` and ``g``), so that a forward
            or vjp writing into one raises a PluginError naming its op and node. Costs a
            view per value; a no-op on a backend whose arrays are immutable (JAX).

    Raises:
        InputError: an unsupported dtype, traversal or backend option.
        PluginError: an op on the loss's path has no vjp and the backend cannot derive one.
    """

    def __init__(
        self,
        network: Network,
        backend: Backend,
        dtype: str = "float64",
        check_finite: bool = False,
        devices: Any = None,
        traversal: Traversal | None = None,
        strict: bool = False,
    ) -> None:
        self.network = network
        self.backend = backend
        check_backend(network, backend.name)
        self.dtype = check_dtype(dtype)
        self.check_finite = check_finite
        self.xp = backend.xp
        self.layout = backend.layout(devices)
        if traversal not in (None, "generated", "interpreted"):
            raise InputError(f"traversal={show(traversal)}; use 'generated' or 'interpreted'")
        if traversal == "generated" and backend.traced:
            raise InputError(
                f"traversal='generated' on the {backend.name} backend, which traces: the "
                "generated code would run only while tracing; use the default"
            )
        self.traversal = traversal
        self.strict = strict
        self._seal = backend.read_only if strict and backend.mutable else None
        self.arrays = backend.arrays(dtype)
        with self.precision():
            self._consts = {
                n: backend.constant(network.attrs[n]["value"], dtype) for n in network.consts
            }
            self._one = backend.constant(1.0, dtype)
        self._plans: dict[PlanKey, Plan] = {}
        self._cores: dict[PlanKey, Run] = {}
        self._entries: dict[PlanKey, Callable[..., Any]] = {}
        self._sources: dict[PlanKey, str] = {}
        self._loss, self._grad = self._key(None, False), self._key(None, True)
        if not backend.differentiates:  # fail now, not at the first gradient
            for back in self.plan(with_grad=True).backward:
                if not defines_vjp(back.op):
                    raise PluginError(
                        f"op {back.op.name!r} at node {back.node!r} defines no vjp, so the "
                        f"{backend.name} backend cannot differentiate the loss through it; "
                        f"define vjp(self, xp, g, out, *operands) in "
                        f"{type(back.op).__qualname__}, or compile with backend='jax', "
                        "which differentiates its forward itself"
                    )

    def precision(self) -> AbstractContextManager[Any]:
        """The context the program computes in (JAX's 64-bit mode for float64)."""
        return self.backend.precision(self.dtype)

    # ------------------------------------------------------------------------ plans

    def plan(self, outputs: Iterable[Hashable] | None = None, with_grad: bool = False) -> Plan:
        """The plan computing ``outputs`` (default: the loss), and with_grad its gradient."""
        key = self._key(outputs, with_grad)
        if key not in self._plans:
            self._plans[key] = build_plan(self.network, key[0], with_grad)
        return self._plans[key]

    def source(self, outputs: Iterable[Hashable] | None = None, with_grad: bool = True) -> str:
        """The plan written out as Python: the forward pass, then the chain rule."""
        key = self._key(outputs, with_grad)
        if key not in self._sources:
            plan = self.plan(*key)
            self._sources[key] = write(plan, self.arrays, self._rules(plan, False), key[1])[0]
        return self._sources[key]

    def _key(self, outputs: Iterable[Hashable] | None, with_grad: bool) -> PlanKey:
        key = (tuple(outputs) if outputs is not None else (self.network.loss,), with_grad)
        for n in key[0]:
            if n not in self.network.kind:
                raise InputError(
                    f"no node {show(n)} in the network; nodes: {show(self.network.order, 300)}"
                )
        return key

    def _generates(self, plan: Plan) -> bool:
        if self.traversal is not None:
            return self.traversal == "generated"
        steps = len(plan.forward) + len(plan.backward)
        return not self.backend.traced and steps <= GENERATED_MAX_STEPS

    # ------------------------------------------------------------------------ the core

    def _core(self, key: PlanKey) -> Run:
        """The positional core of a plan: ``core(params, inputs)`` in plan order, returning
        the outputs, or the loss and the gradient of every parameter in network order. Built
        once per plan: the entry points and the training step share it."""
        if key not in self._cores:
            self._cores[key] = self._build_core(key)
        return self._cores[key]

    def _build_core(self, key: PlanKey) -> Run:
        plan, with_grad = self.plan(*key), key[1]
        rules = self._rules(plan, not with_grad and self.backend.differentiates)
        if self._generates(plan):
            compiled = generate(plan, self.arrays, rules, with_grad)
            self._sources[key] = compiled.source
            run = compiled.run
        else:
            run = interpret(plan, rules, with_grad)
        if self._seal is not None:
            run = self._sealed(run)
        in_plan = {n: i for i, (n, _) in enumerate(plan.params)}
        if with_grad and len(in_plan) != len(self.network.params):
            run = self._with_zero_grads(run, [in_plan.get(n) for n in self.network.params])
        if self.layout is None:
            return run
        layout, constrain = self.layout, self.backend.constrain

        def placed(params: Sequence[Array], inputs: Sequence[Array]) -> Any:
            return run(*constrain(layout, params, inputs))

        return placed

    def _sealed(self, run: Run) -> Run:
        """``run`` given read-only views of the parameters and inputs (strict programs)."""
        seal = self.backend.read_only

        def sealed(params: Sequence[Array], inputs: Sequence[Array]) -> Any:
            return run(tuple(map(seal, params)), tuple(map(seal, inputs)))

        return sealed

    def _with_zero_grads(self, run: Run, positions: list[int | None]) -> Run:
        """``run`` with a zero gradient for each parameter the loss does not depend on."""
        shapes = [self.network.shapes[n] for n in self.network.params]
        xp, dtype = self.xp, self.dtype

        def with_zeros(params: Sequence[Array], inputs: Sequence[Array]) -> Any:
            loss, grads = run(params, inputs)
            return loss, tuple(
                xp.zeros(shape, dtype) if i is None else grads[i]
                for i, shape in zip(positions, shapes, strict=True)
            )

        return with_zeros

    def _rules(self, plan: Plan, differentiable: bool) -> Rules:
        """What the traversal calls at each step: ``call_forward`` and ``call_vjp`` (JAX: with
        ``differentiable``, each forward wrapped so that ``jax.grad`` uses its plugin's rule)."""
        arrays, backend, seal = self.arrays, self.backend, self._seal

        def forward(step: Step, operands: Sequence[Any]) -> Any:
            return call_forward(
                step.op, arrays, operands, step.attrs, node=step.node, shape=step.shape
            )

        def vjp(back: BackStep, g: Any, out: Any, operands: Any, shapes: Any) -> Any:
            op, node = back.op, back.node
            rule = None
            if not defines_vjp(op):  # the backend's autodiff (NumPy refused this at init)
                rule = backend.autodiff(lambda xs: call_forward(op, arrays, xs, back.attrs))
            return call_vjp(
                op, arrays, g, out, operands, back.attrs,
                shapes=shapes, needs=back.needs, node=node, rule=rule,
            )  # fmt: skip

        if seal is not None:  # every value a plugin sees is read-only (leaves: ``_sealed``)
            plain_forward, plain_vjp = forward, vjp

            def forward(step: Step, operands: Sequence[Any]) -> Any:
                return seal(plain_forward(step, operands))

            def vjp(back: BackStep, g: Any, out: Any, operands: Any, shapes: Any) -> Any:
                return plain_vjp(back, seal(g), out, operands, shapes)

        consts = [self._consts[n] for n, _ in plan.consts]
        run_forward = self._differentiable(forward) if differentiable else forward
        return Rules(run_forward, vjp, consts, self._one, self.xp, self.check_finite, seal)

    def _differentiable(
        self, forward: Callable[[Step, Sequence[Any]], Any]
    ) -> Callable[[Step, Sequence[Any]], Any]:
        """``forward`` with each op that has a vjp made ``differentiable`` by the backend with
        its plugin's rule (wrapped once per step, when the step first runs)."""
        arrays, wrapped = self.arrays, {}

        def wrap(step: Step) -> Callable[[Sequence[Any]], Any]:
            op, attrs, node = step.op, step.attrs, step.node
            reads = signature_of(op).reads

            def vjp(g: Any, out: Any, operands: Sequence[Any]) -> Sequence[Any]:
                seen = [v if r else None for v, r in zip((out, *operands), reads, strict=True)]
                shapes = [x.shape for x in operands]
                return call_vjp(op, arrays, g, seen[0], seen[1:], attrs, shapes=shapes, node=node)

            return self.backend.differentiable(lambda xs: forward(step, xs), vjp, self.dtype)

        def differentiable(step: Step, operands: Sequence[Any]) -> Any:
            if not defines_vjp(step.op):
                return forward(step, operands)  # JAX differentiates it by itself
            if step.out not in wrapped:
                wrapped[step.out] = wrap(step)
            return wrapped[step.out](operands)

        return differentiable

    def _entry(self, key: PlanKey) -> Callable[[Mapping[Any, Any], Mapping[Any, Any]], Any]:
        """``entry(params, inputs)`` by name: the plan's leaves taken in plan order and
        admitted, then its core as the backend wraps it, in the program's precision."""
        entry = self._entries.get(key)
        if entry is None:
            core = self._core(key)
            plan, shapes = self.plan(*key), self.network.shapes
            # A backend that keeps the default, do-nothing precision is not entered per call.
            scoped = type(self.backend).precision is not Backend.precision
            wrapped = core if self.check_finite else self.backend.wrap(core)
            entry = self._entries[key] = generate_entry(
                [(n, shapes[n]) for n, _ in plan.params],
                [(n, shapes[n]) for n, _ in plan.inputs],
                self.arrays,
                self._admit,
                self._explained(wrapped) if self.backend.differentiates else wrapped,
                self.precision if scoped else None,
            )
        return entry

    def _explained(self, core: Callable[..., Any]) -> Callable[..., Any]:
        """``core`` raising the backend's explanation (``Backend.transform_error``) when it
        refuses a transformation of the program (JAX: forward mode through custom_vjp)."""
        explain = self.backend.transform_error

        def explained(params: Any, inputs: Any) -> Any:
            try:
                return core(params, inputs)
            except TypeError as exc:
                error = explain(exc)
                if error is None:
                    raise
                raise error from exc

        return explained

    # ---------------------------------------------------------------- public entry points

    def init(self, seed: int = 0) -> dict[Any, Array]:
        """Fresh parameters: each from its node's ``init`` (default glorot, zeros for 1-D).

        Each parameter's stream is seeded by ``(seed, its name)``, so adding a parameter
        leaves the others' initial values unchanged.
        """
        import numpy as np

        shapes = {n: tuple(self.network.graph.nodes[n]["shape"]) for n in self.network.params}
        _check_memory(shapes)
        params: dict[Any, Array] = {}
        for name, shape in shapes.items():
            rng = np.random.default_rng([seed, zlib.crc32(str(name).encode())])
            init = self.network.attrs[name].get("init")
            try:
                value = initial_value(rng, shape, init)
            except MemoryError:
                raise InputError(
                    f"param {name!r} of shape {shape} does not fit in memory; use smaller shapes"
                ) from None
            params[name] = self.backend.asarray(value, self.dtype)
        return params

    def loss(self, params: Mapping[Any, Array], inputs: Mapping[Any, Array]) -> Array:
        """The loss (a 0-d array). On JAX a JAX function: jax.grad of it uses the plugins'
        vjps."""
        loss = self._entry(self._loss)(params, inputs)[0]
        if self._seal is not None:  # strict: what the caller gets back is writable
            (loss,) = _writable((loss,))
        return loss

    def value_and_grad(
        self, params: Mapping[Any, Array], inputs: Mapping[Any, Array]
    ) -> tuple[Array, dict[Any, Array]]:
        """The loss and ∂loss/∂param for every parameter (zeros where it does not matter)."""
        loss, grads = self._entry(self._grad)(params, inputs)
        if self.backend.mutable:  # an array of its own each, which the caller may change
            grads = self.backend.independent(grads, (*params.values(), *inputs.values()))
            if self._seal is not None:
                (loss,) = _writable((loss,))
        return loss, dict(zip(self.network.params, grads, strict=False))  # one per param

    def forward(
        self,
        params: Mapping[Any, Array],
        inputs: Mapping[Any, Array],
        outputs: Iterable[Hashable],
    ) -> dict[Any, Array]:
        """Values of the nodes ``outputs`` (e.g. the prediction), needing only their inputs."""
        key = self._key(outputs, False)
        values = self._entry(key)(params, inputs)
        if self._seal is not None:  # strict: what the caller gets back is writable
            values = _writable(values)
        return dict(zip(key[0], values, strict=True))

    # ---------------------------------------------------------------------------- training

    def own(self, values: Mapping[Any, Any]) -> dict[Any, Array]:
        """Private copies of ``values`` as arrays of the program's dtype, where it computes."""
        with self.precision():
            copies = {k: self.xp.array(v, dtype=self.dtype, copy=True) for k, v in values.items()}
        return self.backend.place(self.layout, copies)

    def train_step(self, optimizer: Optimizer) -> TrainStep:
        """One minibatch step — the rows of the batch, loss and gradient, the update — as one
        function the backend wraps (JAX: jitted, parameters and optimizer state donated).

        Args:
            optimizer: the update rule; applied in place on a mutable backend (NumPy).
        """
        plan, core = self.plan(*self._grad), self._core(self._grad)
        position = {n: i for i, n in enumerate(self.network.params)}
        take = [position[n] for n, _ in plan.params]
        in_place = self.backend.mutable
        update = optimizer.update_ if in_place else optimizer.update

        def step(
            current: dict[int, Array], state: Any, data: Sequence[Array], rows: Any
        ) -> tuple[dict[int, Array], Any, Array]:
            params = tuple(current[i] for i in take)
            batch = tuple(data) if rows is None else tuple(x[rows] for x in data)
            loss, grads = core(params, batch)
            if in_place:  # the loss may be a parameter's own array, which the update changes
                loss = loss.copy()
            current, state = update(current, dict(enumerate(grads)), state)
            return current, state, loss

        wrapped = step if self.check_finite else self.backend.wrap(step, donate=(0, 1))

        def run_step(current: Any, state: Any, data: Sequence[Array], rows: Any) -> Any:
            with self.precision():
                return wrapped(current, state, data, rows)

        return run_step

    # ------------------------------------------------------------------------ leaf checks

    def _admit(self, kind: str, name: Hashable, value: Any, given: Mapping[Any, Array]) -> Array:
        """``value`` as a backend array of the program's dtype, or an error naming the leaf."""
        if value is None and name not in given:
            raise InputError(
                f"missing {kind} {name!r} (op {kind!r}); pass it in the {kind}s dict, "
                f"which has {sorted(map(str, given))}"
            )
        dtype = getattr(value, "dtype", None)
        if (
            dtype is not None
            and dtype != self.dtype
            and (why := self.backend.demoted(value, self.dtype))
        ):
            raise InputError(f"{kind} {name!r} (op {kind!r}) {why}")
        if dtype is not None and dtype != self.dtype and dtype.kind not in "fiub":
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) has dtype {dtype}; pass real numbers "
                f"(they are converted to {self.dtype})"
            )
        try:
            array = self.backend.asarray(value, self.dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) cannot be converted to {article(self.dtype)} array "
                f"({exc}); pass a numeric array"
            ) from None
        if not shape_fits(tuple(array.shape), self.network.shapes[name]):
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) has shape {tuple(array.shape)} but the network "
                f"declares {self.network.shapes[name]}; reshape it (None axes take any size)"
            )
        return array


def _writable(values: Sequence[Any]) -> tuple[Any, ...]:
    """NumPy ``values`` with each read-only array (a strict program's view) copied."""
    return tuple(v if v.flags.writeable else v.copy() for v in values)


def _check_memory(shapes: Mapping[Hashable, tuple[int, ...]]) -> None:
    """Refuse parameters whose float64 values need more than the machine's physical memory,
    before any is allocated (an overcommitting kernel would grant it, then kill the process)."""
    needed = 8 * sum(math.prod(shape) for shape in shapes.values())
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: MemoryError will say it
        return
    if memory > 0 and needed > memory:
        largest = max(shapes, key=lambda n: math.prod(shapes[n]))
        raise InputError(
            f"the parameters need {needed / 2**30:,.1f} GiB (the largest, {largest!r}, has "
            f"shape {shapes[largest]}), more than this machine's {memory / 2**30:,.1f} GiB; "
            "use smaller shapes"
        )


def initial_value(rng: Any, shape: tuple[int, ...], init: Any) -> Any:
    """Draw a parameter's initial value (NumPy float64) by the scheme named ``init``."""
    import numpy as np

    if init is None:
        init = "glorot" if len(shape) >= 2 else "zeros"
    if isinstance(init, int | float):
        return np.full(shape, float(init))
    fan_in = shape[0] if shape else 1
    fan_out = shape[-1] if shape else 1
    if init == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if init == "he":
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    if init == "normal":
        return rng.standard_normal(shape)
    if init == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if init == "zeros":
        return np.zeros(shape)
    return np.ones(shape)
