"""The engine: a flat forward plan and the one generic backward traversal (the chain rule)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from graphbp.errors import InputError, NonFiniteError, PluginError
from graphbp.graph import Network, Shape, shape_matches
from graphbp.op import Array, Op, signature_of, sum_to

if TYPE_CHECKING:
    from graphbp.backend import Backend


class Step(NamedTuple):
    """One op application: ``values[out] = op.forward(xp, *values[args], **attrs)``."""

    node: Hashable
    op: Op
    call: Callable[[Any, list[Array]], Array]
    """The forward applied to the slot values, bound to this step's slots and attrs."""
    out: int
    args: tuple[int, ...]
    free: tuple[int, ...]
    """Slots whose values no later step needs once this step has run."""


class BackStep(NamedTuple):
    """One chain-rule application: push ``grads[out]`` through the op's vjp to its operands."""

    node: Hashable
    op: Op
    call: Callable[[Any, list[Array], Array], Any]
    """The vjp applied to (values, ∂L/∂out), bound to this step's slots, attrs and needs."""
    out: int
    args: tuple[int, ...]
    needs: tuple[bool, ...]
    """Which operands lie on a path to a parameter (only their cotangents are kept)."""
    targets: tuple[tuple[int, int], ...]
    """(position, slot) of each operand whose cotangent is kept."""
    free: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """A network scheduled for one set of outputs: slots instead of names, no networkx."""

    outputs: tuple[int, ...]
    slots: dict[Hashable, int]
    inputs: tuple[tuple[Hashable, int], ...]
    params: tuple[tuple[Hashable, int], ...]
    consts: tuple[tuple[Hashable, int], ...]
    forward: tuple[Step, ...]
    backward: tuple[BackStep, ...]


def build_plan(net: Network, outputs: Iterable[Hashable], with_grad: bool) -> Plan:
    """Schedule ``net`` to compute ``outputs`` (and, with_grad, the loss gradient).

    The plan keeps only ancestors of the outputs, in topological order. The backward part
    visits, in reverse order, only nodes that depend on a parameter, and records for every
    value the last step that reads it, so it can be freed right after.
    """
    outputs = tuple(outputs)
    needed = set(outputs)
    for node in outputs:
        needed |= _ancestors(net, node)
    order = [n for n in net.order if n in needed]
    slots = {n: i for i, n in enumerate(order)}
    kinds = {n: net.ops[n].name for n in order}

    on_param_path: dict[Hashable, bool] = {}
    for n in order:
        on_param_path[n] = kinds[n] == "param" or any(on_param_path[a] for a in net.operands[n])
    interior = [n for n in order if not net.ops[n].leaf]
    back_nodes = [n for n in reversed(interior) if on_param_path[n]] if with_grad else []

    # The last step (forward steps first, then backward steps) that reads each value.
    last_read: dict[Hashable, int] = {}
    for i, n in enumerate(interior):
        for a in net.operands[n]:
            last_read[a] = i
    for j, n in enumerate(back_nodes, start=len(interior)):
        for a in vjp_reads(net, n):
            last_read[a] = j
    keep = set(outputs) | {n for n in order if net.ops[n].leaf}
    frees: dict[int, list[int]] = {}
    for n, i in last_read.items():
        if n not in keep:
            frees.setdefault(i, []).append(slots[n])

    def operands(n: Hashable) -> tuple[int, ...]:
        return tuple(slots[a] for a in net.operands[n])

    forward = tuple(
        Step(
            n,
            op,
            bind_forward(op, operands(n), net.attrs[n]),
            slots[n],
            operands(n),
            tuple(frees.get(i, ())),
        )
        for i, n in enumerate(interior)
        for op in (net.ops[n],)
    )
    backward = []
    for j, n in enumerate(back_nodes, start=len(interior)):
        op, args = net.ops[n], operands(n)
        needs = tuple(on_param_path[a] for a in net.operands[n])
        call = bind_vjp(op, slots[n], args, net.attrs[n], needs)
        targets = tuple((i, a) for i, a in enumerate(args) if needs[i])
        free = tuple(frees.get(j, ()))
        backward.append(BackStep(n, op, call, slots[n], args, needs, targets, free))
    return Plan(
        outputs=tuple(slots[n] for n in outputs),
        slots=slots,
        inputs=tuple((n, slots[n]) for n in order if kinds[n] == "input"),
        params=tuple((n, slots[n]) for n in order if kinds[n] == "param"),
        consts=tuple((n, slots[n]) for n in order if kinds[n] == "const"),
        forward=forward,
        backward=tuple(backward),
    )


def bind_forward(op: Op, args: tuple[int, ...], attrs: dict[str, Any]) -> Callable[..., Array]:
    """``op.forward`` as a function of (xp, values), bound to its operand slots and attrs.

    On small arrays, building an operand list per call costs as much as the ufunc itself,
    so the common arities get a closure that indexes the slots directly.
    """
    fn, kw = op.forward, attrs
    if len(args) == 1:
        (a,) = args
        return (lambda xp, v: fn(xp, v[a], **kw)) if kw else (lambda xp, v: fn(xp, v[a]))
    if len(args) == 2:
        a, b = args
        return lambda xp, v: fn(xp, v[a], v[b], **kw)
    if len(args) == 3:
        a, b, c = args
        return lambda xp, v: fn(xp, v[a], v[b], v[c], **kw)
    return lambda xp, v: fn(xp, *[v[i] for i in args], **kw)


def bind_vjp(
    op: Op, out: int, args: tuple[int, ...], attrs: dict[str, Any], needs: tuple[bool, ...]
) -> Callable[..., Any]:
    """``op.vjp`` as a function of (xp, values, g), bound like ``bind_forward``.

    An op whose vjp takes ``needs`` gets it, so it can skip cotangents nobody uses.
    """
    fn = op.vjp
    kw = {**attrs, "needs": needs} if signature_of(op).vjp_takes_needs else attrs
    if len(args) == 1:
        (a,) = args
        if not kw:
            return lambda xp, v, g: fn(xp, g, v[out], v[a])
        return lambda xp, v, g: fn(xp, g, v[out], v[a], **kw)
    if len(args) == 2:
        a, b = args
        return lambda xp, v, g: fn(xp, g, v[out], v[a], v[b], **kw)
    if len(args) == 3:
        a, b, c = args
        return lambda xp, v, g: fn(xp, g, v[out], v[a], v[b], v[c], **kw)
    return lambda xp, v, g: fn(xp, g, v[out], *[v[i] for i in args], **kw)


def vjp_reads(net: Network, node: Hashable) -> list[Hashable]:
    """The nodes whose forward values the vjp of ``node`` reads (see ``Op.vjp_reads``)."""
    reads = net.ops[node].vjp_reads
    if reads is None:
        return [node, *net.operands[node]]
    return [node if r == "out" else net.operands[node][int(r)] for r in reads]


def _ancestors(net: Network, node: Hashable) -> set[Hashable]:
    seen: set[Hashable] = set()
    stack = [node]
    while stack:
        for a in net.operands[stack.pop()]:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return seen


class Program:
    """A network compiled for one backend and dtype: run it, differentiate it, init it.

    Args:
        network: the validated network.
        backend: the backend to run on.
        dtype: ``"float64"`` or ``"float32"``.
        check_finite: raise NonFiniteError naming the first node whose value or gradient
            is NaN or infinite (slower; off by default).
    """

    def __init__(
        self, network: Network, backend: Backend, dtype: str, check_finite: bool = False
    ) -> None:
        self.network = network
        self.backend = backend
        self.dtype = dtype
        self.check_finite = check_finite
        self.xp = backend.xp
        self._plans: dict[tuple[tuple[Hashable, ...], bool], Plan] = {}
        self._consts = {
            n: backend.asarray(network.graph.nodes[n]["value"], dtype) for n in network.consts
        }
        self._fits = {n: shape_test(network.shapes[n]) for n in (*network.inputs, *network.params)}

    def plan(self, outputs: Iterable[Hashable] | None = None, with_grad: bool = False) -> Plan:
        """The (cached) plan computing ``outputs`` (default: the loss)."""
        key = (tuple(outputs) if outputs is not None else (self.network.loss,), with_grad)
        if key not in self._plans:
            for n in key[0]:
                if n not in self.network.ops:
                    raise InputError(f"no node {n!r} in the network; nodes: {self.network.order}")
            self._plans[key] = build_plan(self.network, key[0], with_grad)
        return self._plans[key]

    # ---------------------------------------------------------------- public entry points

    def init(self, seed: int = 0) -> dict[Any, Array]:
        """Fresh parameters: each from its node's ``init`` (default glorot, zeros for 1-D).

        Each parameter's stream is seeded by ``(seed, its name)``, so adding a parameter
        leaves the others' initial values unchanged.
        """
        import numpy as np

        params: dict[Any, Array] = {}
        for name in self.network.params:
            data = self.network.graph.nodes[name]
            shape = tuple(data["shape"])
            rng = np.random.default_rng([seed, zlib.crc32(str(name).encode())])
            params[name] = self.backend.asarray(
                initial_value(rng, shape, data.get("init")), self.dtype
            )
        return params

    def loss(self, params: Mapping[Any, Array], inputs: Mapping[Any, Array]) -> Array:
        """The loss (a 0-d array) for ``params`` and ``inputs``."""
        plan = self.plan()
        values, _ = self._forward(plan, params, inputs)
        return values[plan.outputs[0]]

    def value_and_grad(
        self, params: Mapping[Any, Array], inputs: Mapping[Any, Array]
    ) -> tuple[Array, dict[Any, Array]]:
        """The loss and ∂loss/∂param for every parameter (zeros where it does not matter)."""
        plan = self.plan(with_grad=True)
        values, shapes = self._forward(plan, params, inputs)
        loss = values[plan.outputs[0]]
        grads = self._backward(plan, values, shapes, loss)
        for name in self.network.params:
            if name not in grads:
                grads[name] = self.xp.zeros_like(params[name])
        return loss, grads

    def forward(
        self,
        params: Mapping[Any, Array],
        inputs: Mapping[Any, Array],
        outputs: Iterable[Hashable],
    ) -> dict[Any, Array]:
        """Values of the nodes ``outputs`` (e.g. the prediction), needing only their inputs."""
        plan = self.plan(outputs)
        values, _ = self._forward(plan, params, inputs)
        return {n: values[s] for n, s in zip(plan_outputs(plan), plan.outputs, strict=True)}

    # ---------------------------------------------------------------- the two traversals

    def _forward(
        self, plan: Plan, params: Mapping[Any, Array], inputs: Mapping[Any, Array]
    ) -> tuple[list[Array], list[Any]]:
        """Evaluate the plan's steps in topological order.

        Returns:
            The slot values (None where freed) and every slot's shape (kept when its value
            is freed, so cotangents can still be summed back to it).
        """
        xp, check = self.xp, self.check_finite
        values: list[Array] = [None] * len(plan.slots)
        self._feed(plan, values, params, inputs)
        shapes = [None if v is None else v.shape for v in values]
        for step in plan.forward:
            _, _, call, out, _, free = step
            values[out] = value = call(xp, values)
            shapes[out] = value.shape
            for s in free:
                values[s] = None
            if check:
                _check_finite(xp, value, step, "value")
        return values, shapes

    def _backward(
        self, plan: Plan, values: list[Array], shapes: list[Any], loss: Array
    ) -> dict[Any, Array]:
        """The chain rule: walk the plan in reverse, each upstream gradient computed once.

        ``grads[s]`` holds ∂L/∂(value in slot s). A step reads its output's gradient, asks the
        op's vjp for the operands' cotangents, sums each back to its operand's shape, and
        adds it into that operand's gradient (fan-out sums).
        """
        xp, check = self.xp, self.check_finite
        grads: list[Array] = [None] * len(plan.slots)
        grads[plan.outputs[0]] = xp.asarray(1.0, dtype=loss.dtype)  # ∂L/∂L
        for step in plan.backward:
            _, _, call, out, args, _, targets, free = step
            g = grads[out]  # ∂L/∂out: complete, since every consumer of out came earlier
            grads[out] = None
            cts = call(xp, values, g)
            if type(cts) not in (tuple, list) or len(cts) != len(args):
                raise _arity_error(step, cts)
            for i, a in targets:
                ct = cts[i]
                try:
                    if ct.shape != shapes[a]:  # a broadcast operand: un-broadcast
                        ct = sum_to(xp, ct, shapes[a])
                except (AttributeError, ValueError):
                    raise _cotangent_error(step, i, ct, shapes[a]) from None
                if check:
                    _check_finite(xp, ct, step, "gradient")
                grads[a] = ct if grads[a] is None else grads[a] + ct  # fan-out sums
            for s in free:
                values[s] = None
        return {name: grads[s] for name, s in plan.params if grads[s] is not None}

    def _feed(
        self,
        plan: Plan,
        values: list[Array],
        params: Mapping[Any, Array],
        inputs: Mapping[Any, Array],
    ) -> None:
        """Put inputs, parameters and constants into their slots, checking each."""
        for kind, given, leaves in (("input", inputs, plan.inputs), ("param", params, plan.params)):
            for name, slot in leaves:
                if name not in given:
                    raise InputError(
                        f"missing {kind} {name!r} (op {kind!r}); pass it in the {kind}s dict, "
                        f"which has {sorted(map(str, given))}"
                    )
                values[slot] = self._checked(kind, name, given[name])
        for name, slot in plan.consts:
            values[slot] = self._consts[name]

    def _checked(self, kind: str, name: Hashable, value: Any) -> Array:
        """``value`` as a backend array of the program's dtype, its shape checked."""
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype != self.dtype and dtype.kind not in "fiub":
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) has dtype {dtype}; pass real numbers "
                f"(they are converted to {self.dtype})"
            )
        try:
            array = self.backend.asarray(value, self.dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) cannot be converted to a {self.dtype} array "
                f"({exc}); pass a numeric array"
            ) from None
        if not self._fits[name](array.shape):
            shape = self.network.shapes[name]
            raise InputError(
                f"{kind} {name!r} (op {kind!r}) has shape {tuple(array.shape)} but the network "
                f"declares {shape}; reshape it (None axes take any size)"
            )
        return array


def shape_test(declared: Shape | None) -> Callable[[tuple[int, ...]], bool]:
    """A fast test of whether a run-time shape fits ``declared`` (None axes match any size)."""
    if declared is None:
        return lambda shape: True
    if None not in declared:
        return lambda shape: shape == declared
    batch = declared.index(None)
    rest = declared[batch + 1 :]
    if None not in rest:  # the usual (None, ...) batch axis
        n, head = len(declared), declared[:batch]
        return lambda shape: (
            len(shape) == n and shape[batch + 1 :] == rest and shape[:batch] == head
        )
    return lambda shape: shape_matches(tuple(shape), declared)


def plan_outputs(plan: Plan) -> list[Hashable]:
    """The node names of a plan's outputs, in order."""
    by_slot = {s: n for n, s in plan.slots.items()}
    return [by_slot[s] for s in plan.outputs]


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


def _cotangent_error(step: BackStep, position: int, ct: Any, shape: Any) -> PluginError:
    """Name the plugin whose vjp returned an unusable cotangent, and what was expected."""
    if not hasattr(ct, "shape"):
        got = f"{type(ct).__name__} for operand {position}, which needs a gradient"
    else:
        got = f"a cotangent of shape {tuple(ct.shape)} for operand {position}"
    return PluginError(
        f"op {step.op.name!r} at node {step.node!r}: vjp returned {got}; return an array of "
        f"the operand's shape {tuple(shape)} (or a shape it broadcasts to)"
    )


def _arity_error(step: BackStep, cts: Any) -> PluginError:
    got = len(cts) if isinstance(cts, tuple | list) else type(cts).__name__
    return PluginError(
        f"op {step.op.name!r} at node {step.node!r}: vjp returned {got} cotangent(s) but the op "
        f"has {len(step.args)} operand(s); return a tuple with one cotangent per operand"
    )


def _check_finite(xp: Any, value: Array, step: Step | BackStep, what: str) -> None:
    if not bool(xp.all(xp.isfinite(value))):
        raise NonFiniteError(
            f"the {what} at node {step.node!r} (op {step.op.name!r}) is not finite "
            f"(NaN or Inf); check that op's inputs, lower the learning rate or rescale the data"
        )
