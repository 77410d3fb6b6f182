"""Gradient checking: plugin vjps and whole networks against float64 central differences,
and the textbook oracle: the seed network's backprop written out by hand in NumPy.

Example:
    >>> import graphbp.testing as gbt
    >>> gbt.check_op("sigmoid")                 # every example of the op, on numpy
    >>> gbt.check_network(net)                  # every parameter element of a network
    >>> loss, grads = gbt.handwritten_grads(params, x, y)   # the seed network, by hand
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from graphbp.chain import Edge
from graphbp.check_report import FAILED, NO_GRADIENT, NOT_FINITE, NOT_SMOOTH, EdgeCheck
from graphbp.check_report import CheckReport as CheckReport
from graphbp.errors import (
    BackendNotInstalledError,
    GradientCheckError,
    GraphbpError,
    InputError,
    PluginError,
    exc_text,
    index_text,
    show,
    visible,
)
from graphbp.op import (
    Example,
    Op,
    call_forward,
    call_vjp,
    defines_shape,
    defines_vjp,
    gradient_free,
    is_write,
    runs_on,
    signature_of,
)
from graphbp.registry import as_op, backends, get_backend, get_op, ops

if TYPE_CHECKING:
    from graphbp.backend import Backend
    from graphbp.graph import Network
    from graphbp.program import Program

STEP = 1e-4
"""Step of the five-point central difference: truncation error O(h⁴) ≈ 1e-16 in float64."""
_ROUNDOFF = 10 * float(np.finfo(np.float64).eps) / STEP
"""Round-off bound of a difference quotient, per unit of |f|: below it, values agree."""


def agreement(analytic: float, numeric: float, atol: float, rtol: float) -> tuple[bool, float]:
    """Whether |a − n| <= atol + rtol·max(|a|, |n|), and the relative error |a − n| / max(|a|, |n|).

    ``atol`` is the round-off of the difference quotient; the relative error of values that
    agree is reported only above round-off (atol / rtol), 0 below it; that of values that
    disagree always.
    """
    diff, scale = abs(analytic - numeric), max(abs(analytic), abs(numeric))
    ok = diff <= atol + rtol * scale
    return ok, (diff / scale if scale > atol / rtol or not ok else 0.0)


def installed_backends() -> list[str]:
    """The backends that are installed and load (those whose dependencies are missing are not)."""
    usable = []
    for name in backends():
        try:
            get_backend(name)
        except BackendNotInstalledError:
            continue
        usable.append(name)
    return usable


def check_op(
    op: Op | type[Op] | str,
    backend: str = "numpy",
    *,
    examples: Iterable[Example] | None = None,
    seed: int = 0,
    rtol: float = 1e-6,
    directions: int = 3,
    max_elements: int | None = None,
) -> CheckReport:
    """Check an op's vjp against central differences of its forward, in float64.

    For each example, with a random cotangent ``g``: the vjp's cotangents must equal the
    gradient of ``⟨g, forward(operands)⟩`` element by element and along random directions.
    The op is called as the engine calls it (``call_forward``, ``call_vjp``), so a result
    that breaks the plugin contract fails the check too. On a backend whose arrays can change
    in place (NumPy), the forward and the vjp must leave what they are given alone: each is
    called on copies of its arguments, compared afterwards, and with each argument read-only
    in turn; a write into an operand, ``out`` or ``g`` fails the check, naming the argument.

    Args:
        op: the op, its class or its registered name.
        backend: the backend to run forward and vjp on.
        examples: (operands, attrs) pairs; default ``op.examples(rng)``.
        seed: seeds the examples, cotangents and directions.
        rtol: the largest relative error allowed.
        directions: random directions checked per example, besides every element.
        max_elements: operands larger than this are checked along directions only
            (default: every element of every operand).

    Raises:
        GradientCheckError: naming the op, the example, the operand and the element.
        PluginError: the op breaks the plugin contract, or its examples are malformed.
    """
    op = as_op(op)
    be = get_backend(backend)
    if not runs_on(op, backend):
        runs = ", ".join(op.backends or ())
        raise GradientCheckError(
            f"op {op.name!r} runs only on {runs}, not on {backend}; check it on {runs}"
        )
    if not defines_vjp(op) and not be.differentiates:
        raise GradientCheckError(
            f"op {op.name!r} defines no vjp, so the {backend} backend cannot differentiate it; "
            "define vjp(self, xp, g, out, *operands)"
        )
    with be.precision("float64"):
        return _check_op(op, be, examples, seed, rtol, directions, max_elements)


def _check_op(
    op: Op,
    be: Backend,
    examples: Iterable[Example] | None,
    seed: int,
    rtol: float,
    directions: int,
    max_elements: int | None = None,
) -> CheckReport:
    backend = be.name
    rng = np.random.default_rng(seed)
    report = CheckReport(f"op {op.name!r}", backend)
    for k, (xs, attrs) in enumerate(_op_examples(op, examples, rng)):
        where = f"op {op.name!r} on {backend}, example {k} (shapes {[x.shape for x in xs]}"
        where += f", attrs {_attrs_text(attrs)})" if attrs else ")"
        forward, vjp = _op_rules(op, be, attrs, [x.shape for x in xs])
        try:
            if be.mutable:  # before anything else: a write would skew every later call
                _check_writes(op, be, attrs, xs, rng, where)
            out = forward(*xs)  # compiled once: the difference quotients call it many times
            _check_shape_rule(op, [x.shape for x in xs], attrs, tuple(np.shape(out)), where)
            g = rng.standard_normal(np.shape(out))
            cts = vjp(be.asarray(g, "float64"), *_as_engine_passes(op, out, xs))
        except PluginError as exc:
            cause = exc.__cause__
            if (
                getattr(exc, "method", None) == "vjp"
                and op.vjp_reads is not None
                and isinstance(cause, AttributeError | TypeError)
            ):  # e.g. None * g: the rule reads a value its vjp_reads leaves out
                raise GradientCheckError(
                    f"{where}: vjp failed ({type(cause).__name__}: {exc_text(cause)}); "
                    f"if it reads a forward value, list it in vjp_reads (now {op.vjp_reads!r})"
                ) from exc
            raise GradientCheckError(f"{where}: {exc}") from exc

        objective = _objective(op, be, forward, g, xs)
        free = gradient_free(op, attrs)
        for i, ct in enumerate(cts):
            analytic = np.asarray(be.to_numpy(ct))
            if i < len(free) and free[i] and np.any(analytic != 0):
                raise GradientCheckError(
                    f'{where}, operand {i}: its local derivative is declared "0" (it gets no '
                    "gradient), but the vjp returned a nonzero cotangent; return zeros there "
                    "(e.g. xp.zeros_like(g)) or write its local_grads text as the derivative it is"
                )
            elementwise = max_elements is None or analytic.size <= max_elements
            worst = _compare(objective, xs, i, analytic, rng, directions, rtol, where, elementwise)
            report.worst[f"example {k} operand {i}"] = worst
            report.compared += (analytic.size if elementwise else 0) + directions
    return report


def _objective(
    op: Op, be: Backend, forward: Callable[..., Any], g: Any, at: list[Any]
) -> Callable[[list[Any]], float]:
    """⟨g, forward(operands)⟩, whose gradient in each operand its vjp must give; for an op
    that stops the gradient, held at ``at`` (its value counts as constant)."""

    def objective(values: list[Any]) -> float:
        if op.stops_gradient:  # held to zero cotangents: its value counts as constant
            values = at
        return float(np.sum(g * be.to_numpy(forward(*values))))

    return objective


def _op_examples(
    op: Op, examples: Iterable[Example] | None, rng: np.random.Generator
) -> list[tuple[list[np.ndarray[Any, Any]], dict[str, Any]]]:
    """The examples to check ``op`` on (``examples``, else ``op.examples(rng)``), each as
    float64 operands and attributes, or a PluginError saying what is malformed and how to
    write it."""
    cls = type(op)
    source = "the examples passed to the check" if examples else f"{cls.__qualname__}.examples()"
    operands = ", ".join(f"x{i}" for i in range(op.arity)) + ("," if op.arity == 1 else "")
    form = f"a list of (operands, attrs) pairs, e.g. [(({operands}), {{}})]"

    def refuse(problem: str) -> PluginError:
        return PluginError(f"op {op.name!r}: {source} {problem}; write them as {form}")

    if not examples:
        required = signature_of(op).required_attrs
        if cls.examples is Op.examples and required:
            raise PluginError(
                f"op {op.name!r}: forward needs the attribute(s) {', '.join(required)}, which "
                f"the default examples (no attributes) do not give; define "
                f"{cls.__qualname__}.examples(self, rng) returning operands and attributes, "
                f"e.g. [((rng.standard_normal((3, 4)),), {{{required[0]!r}: 2.0}})]"
            )
        try:
            examples = op.examples(rng)
        except GraphbpError:
            raise
        except Exception as exc:
            raise PluginError(
                f"op {op.name!r}: {source} raised {type(exc).__name__}: "
                f"{exc_text(exc)}; fix {cls.__module__}.{cls.__qualname__}.examples"
            ) from exc
    if isinstance(examples, Iterable) and not isinstance(examples, str | bytes | Mapping):
        examples = list(examples)  # a generator of examples, a deque, ...
    if not isinstance(examples, list | tuple):
        raise refuse(f"returned {show(examples)}")
    if not examples:
        raise refuse("returned no example")
    checked = []
    for k, example in enumerate(examples):
        if not isinstance(example, tuple | list) or len(example) != 2:
            raise refuse(f"gave example {k} as {show(example)}, not an (operands, attrs) pair")
        operands_k, attrs = example
        if not isinstance(operands_k, tuple | list) or len(operands_k) != op.arity:
            raise refuse(
                f"gave example {k} operands {show(operands_k)}, not a tuple of {op.arity} array(s)"
            )
        if not isinstance(attrs, Mapping) or not all(isinstance(a, str) for a in attrs):
            raise refuse(f"gave example {k} attributes {show(attrs)}, not a dict by name")
        missing = [a for a in signature_of(op).required_attrs if a not in attrs]
        if missing:
            raise refuse(f"gave example {k} no attribute {', '.join(missing)}, which forward needs")
        try:
            xs = [np.asarray(x, dtype=np.float64) for x in operands_k]
        except (TypeError, ValueError) as exc:
            raise refuse(
                f"gave example {k} operands that are not float arrays ({exc_text(exc)})"
            ) from exc
        checked.append((xs, dict(attrs)))
    return checked


def _attrs_text(attrs: Mapping[str, Any]) -> str:
    """A node's attributes for a message, on one line and bounded: NumPy scalars as numbers,
    arrays by shape, anything else cut as ``show`` cuts it."""
    items = [f"{show(k, 30)}: {_value_text(v)}" for k, v in list(attrs.items())[:8]]
    more = ", …" if len(attrs) > 8 else ""
    return "{" + ", ".join(items) + more + "}"


def _value_text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<{value.dtype} array of shape {value.shape}>"
    if isinstance(value, np.generic):
        value = value.item()
    return show(value, 40)


def _shape_text(shape: Any) -> str:
    """A shape for a message, ``(3, 2)`` (never ``(np.int64(3), ...)``); anything else as
    ``show`` writes it."""
    if isinstance(shape, tuple | list) and all(isinstance(d, int | np.integer) for d in shape):
        return str(tuple(int(d) for d in shape))
    return show(shape)


def _check_shape_rule(
    op: Op, shapes: list[tuple[int, ...]], attrs: dict[str, Any], got: tuple[int, ...], where: str
) -> None:
    """Raise GradientCheckError unless the op's shape rule (if any) gives forward's shape."""
    if not defines_shape(op):
        return
    try:
        rule = op.shape(*shapes, **attrs)
    except Exception as exc:
        raise GradientCheckError(
            f"{where}: the shape rule raised {type(exc).__name__}: {exc_text(exc)}, but "
            f"forward returned shape {_shape_text(got)}; fix {type(op).__qualname__}.shape"
        ) from exc
    if not isinstance(rule, tuple | list) or tuple(rule) != got:
        raise GradientCheckError(
            f"{where}: the shape rule gives {_shape_text(rule)} but forward returned shape "
            f"{_shape_text(got)}; fix "
            f"{type(op).__qualname__}.shape (Network() infers shapes with it)"
        )


def _op_rules(
    op: Op,
    be: Backend,
    attrs: dict[str, Any],
    shapes: list[tuple[int, ...]],
    compiled: bool = True,
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``forward(*operands)`` and ``vjp(g, out, *operands)`` of ``op`` on backend ``be``, as
    the engine calls them (every operand needing a cotangent), compiled by the backend
    (unless ``compiled`` is False: for a call or two, compiling costs more than it saves)."""
    arrays = be.arrays("float64")

    def forward(operands: Any) -> Any:
        return call_forward(op, arrays, operands, attrs)

    rule = None if defines_vjp(op) else be.autodiff(forward)

    def vjp(g: Any, out: Any, *operands: Any) -> Any:
        return call_vjp(op, arrays, g, out, operands, attrs, shapes=shapes, rule=rule)

    def plain(fn: Callable[..., Any]) -> Callable[..., Any]:  # NumPy arrays in as the backend's
        def call(*args: Any) -> Any:
            return fn(*(a if a is None else be.asarray(a, "float64") for a in args))

        return call

    wrap = be.wrap if compiled else plain
    return wrap(lambda *operands: forward(operands)), wrap(vjp)


NEVER_WRITE = "return a new array; never write into operands, out or g"


def _check_writes(
    op: Op, be: Backend, attrs: dict[str, Any], xs: list[Any], rng: np.random.Generator, where: str
) -> None:
    """Fail if the op's forward or vjp writes into an array it is given.

    Each is called on copies, which must be unchanged afterwards (a write that changes
    values), then once per argument with that argument read-only (a write of any kind,
    even one that restores the values or writes the same ones).
    """
    arrays = be.arrays("float64")
    shapes = [x.shape for x in xs]

    def forward(args: list[Any]) -> Any:
        return call_forward(op, arrays, args, attrs)

    def vjp(args: list[Any]) -> Any:
        g, out, *operands = args
        return call_vjp(op, arrays, g, out, operands, attrs, shapes=shapes)

    copies = [x.copy() for x in xs]
    out = forward(copies)
    _unchanged("forward", xs, copies, [f"operand {i}" for i in range(len(xs))], where)
    g = rng.standard_normal(np.shape(out))
    given = [g, out, *_as_engine_passes(op, out, xs)[1:]]
    names = ["g", "out", *(f"operand {i}" for i in range(len(xs)))]
    copies = [None if v is None else np.array(v, copy=True) for v in given]
    vjp(copies)
    _unchanged("vjp", given, copies, names, where)
    for rule, args, labels in ((forward, xs, names[2:]), (vjp, given, names)):
        for i, label in enumerate(labels):
            if args[i] is None:
                continue
            trial = [None if v is None else np.array(v, copy=True) for v in args]
            trial[i] = be.read_only(trial[i])
            try:
                rule(trial)
            except PluginError as exc:
                if not is_write(exc.__cause__):
                    raise
                kind = "forward" if rule is forward else "vjp"
                raise GradientCheckError(
                    f"{where}: {kind} writes into {label} (it raised "
                    f'"{exc_text(exc.__cause__ or exc)}" when {label} was read-only); {NEVER_WRITE}'
                ) from exc


def _unchanged(
    kind: str, before: list[Any], after: list[Any], names: list[str], where: str
) -> None:
    """Raise GradientCheckError naming the first argument whose copy a call changed."""
    for name, was, now in zip(names, before, after, strict=True):
        if was is not None and not np.array_equal(was, now, equal_nan=True):
            raise GradientCheckError(
                f"{where}: {kind} wrote into {name} (its values changed during the call); "
                f"{NEVER_WRITE}"
            )


def _as_engine_passes(op: Op, out: Any, operands: list[Any]) -> list[Any]:
    """``[out, *operands]`` with None for what the op says its vjp does not read."""
    reads = signature_of(op).reads
    return [v if read else None for v, read in zip((out, *operands), reads, strict=True)]


def _compare(
    objective: Callable[[list[Any]], float],
    xs: list[Any],
    i: int,
    analytic: Any,
    rng: np.random.Generator,
    directions: int,
    rtol: float,
    where: str,
    elementwise: bool = True,
    wrt: str = "",
) -> float:
    """Compare ∂objective/∂xs[i] with central differences; return the worst relative error.

    Elementwise, each entry of the gradient is compared with a one-hot difference; along a
    random direction v, ⟨gradient, v⟩ is compared with the directional difference. ``wrt``
    names the derivative in messages (default ``∂/∂operand i``).
    """
    wrt = wrt or f"∂/∂operand {i}"
    worst = 0.0
    # Round-off of the difference quotient: it does not shrink with the direction's length.
    atol = _ROUNDOFF * (1 + abs(objective(xs)))

    def judge(analytic_value: float, numeric: float, what: str) -> float:
        ok, err = agreement(analytic_value, numeric, atol, rtol)
        if not (math.isfinite(analytic_value) and math.isfinite(numeric)):
            which = "the vjp" if not math.isfinite(analytic_value) else "forward"
            raise GradientCheckError(
                f"{where}: {what}: analytic {analytic_value:.10g} vs numeric {numeric:.10g}: "
                f"{which} gave a value that is not finite, at an example where the op should "
                "be smooth"
            )
        if not ok:
            allowed = atol + rtol * max(abs(analytic_value), abs(numeric))
            raise GradientCheckError(
                f"{where}: {what}: analytic {analytic_value:.10g} vs numeric {numeric:.10g} "
                f"differ by {abs(analytic_value - numeric):.3g}, more than the {allowed:.3g} "
                f"allowed (rtol {rtol:.0e}, round-off {atol:.1e})"
            )
        return err

    for what, analytic_value, numeric, _ in _comparisons(
        objective, xs, i, analytic, rng, directions, elementwise, wrt
    ):
        worst = max(worst, judge(analytic_value, numeric, what))
    return worst


def _comparisons(
    objective: Callable[[list[Any]], float],
    xs: list[Any],
    i: int,
    analytic: Any,
    rng: np.random.Generator,
    directions: int,
    elementwise: bool,
    wrt: str,
) -> Iterator[tuple[str, float, float, Any]]:
    """What ``_compare`` compares, one at a time: (what, the gradient's value, central
    differences' value, the direction in operand ``i``) along each of ``_directions``."""
    for what, v, j in _directions(xs[i].shape, rng, directions, elementwise, wrt):
        value = float(analytic[j]) if j is not None else float(np.sum(analytic * v))
        yield what, value, _central(objective, xs, i, v), v


def _directions(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    directions: int,
    elementwise: bool,
    wrt: str | int,
) -> Iterator[tuple[str, Any, tuple[int, ...] | None]]:
    """The directions a gradient of ``shape`` is compared along: (what, the direction, its
    element) for each element (one-hot, if ``elementwise``), then (what, the direction,
    None) for ``directions`` random ones. ``wrt`` names the derivative (an operand's number:
    ``∂/∂operand i``)."""
    wrt = f"∂/∂operand {wrt}" if isinstance(wrt, int) else wrt
    for j in np.ndindex(shape) if elementwise else ():
        bump = np.zeros(shape)
        bump[j] = 1.0
        yield f"{wrt}{index_text(j)}", bump, j
    for d in range(directions):
        yield f"{wrt} along random direction {d}", rng.standard_normal(shape), None


def _central(
    objective: Callable[[list[Any]], float], xs: list[Any], i: int, v: Any, step: float = STEP
) -> float:
    """The derivative of the objective along ``v`` in operand ``i``, by central differences.

    Five-point stencil: (f(x−2h) − 8f(x−h) + 8f(x+h) − f(x+2h)) / 12h, h = ``step``.
    """

    def at(k: int) -> float:
        moved = list(xs)
        moved[i] = xs[i] + (k * step) * v
        return objective(moved)

    return (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * step)


def check_network(
    net: Network,
    backend: str = "numpy",
    *,
    params: Mapping[Any, Any] | None = None,
    inputs: Mapping[Any, Any] | None = None,
    seed: int = 0,
    rtol: float = 1e-6,
    directions: int = 3,
    max_elements: int = 2000,
    report: bool = False,
) -> CheckReport:
    """Check every parameter gradient of a network against central differences (float64).

    With ``report=True`` nothing is raised for a wrong gradient: the report says, for every
    operand edge, whether its op's vjp for that operand, at the network's values, agrees with
    central differences of the op's forward and, where jax is installed, with ``jax.vjp`` of
    it (``CheckReport.edges``, ``wrong_ops``); ``report.write("check.html")`` draws it.

    Args:
        net: the network.
        backend: where to run it.
        params: parameter values; default ``init(seed)``.
        inputs: input values; default standard normal of each input's declared shape
            (None axes of size 4).
        seed: seeds the defaults and the random directions.
        rtol: the largest relative error allowed.
        directions: random directions per parameter (and per edge), besides each element.
        max_elements: parameters (and operands) larger than this are checked along
            directions only.
        report: check every edge too, and report wrong gradients instead of raising; the
            parameters' gradients are then compared along the random directions only (the
            edges say where a rule is wrong), which bounds their cost on large networks.

    Raises:
        GradientCheckError: naming the parameter, the element and both values (not with
            ``report=True``).
    """
    prog = net.compile(backend, "float64")
    be = prog.backend
    rng = np.random.default_rng(seed)
    params = dict(params) if params is not None else prog.init(seed)
    inputs = dict(inputs) if inputs is not None else random_inputs(net, rng)
    result = CheckReport("network", backend, net=net if report else None)
    try:
        _, grads = prog.value_and_grad(params, inputs)
    except PluginError as exc:  # a rule that raises: the edges' checks name it
        if not report:
            raise
        result.failed["gradient"] = f"backprop failed: {exc_text(exc)}"
        grads = {}
    names = [n for n in net.params if n in grads]
    xs = [np.asarray(be.to_numpy(params[n]), dtype=np.float64) for n in names]
    frozen = _frozen(net, prog, params, inputs)

    def objective(values: list[Any]) -> float:
        return float(frozen.loss(dict(zip(names, values, strict=True)), inputs))

    for i, name in enumerate(names):
        analytic = np.asarray(be.to_numpy(grads[name]), dtype=np.float64)
        where = f"network on {backend}, parameter {show(name)} (shape {xs[i].shape})"
        # a report finds the wrong rule edge by edge: each parameter along directions only
        elementwise = analytic.size <= max_elements and not report
        wrt = f"∂L/∂{visible(str(name))}"
        try:
            result.worst[str(name)] = _compare(
                objective, xs, i, analytic, rng, directions, rtol, where, elementwise, wrt
            )
        except GradientCheckError as exc:
            if report:
                result.failed[str(name)] = str(exc)
                continue
            culprit = _wrong_rule(net, prog, params, inputs, max_elements)
            raise GradientCheckError(f"{exc}; {culprit}") from exc
        result.compared += directions + (analytic.size if elementwise else 0)
    if report:
        result.edges = _edge_checks(net, prog, params, inputs, rng, rtol, directions, max_elements)
    return result


def _frozen(
    net: Network, prog: Program, params: Mapping[Any, Any], inputs: Mapping[Any, Any]
) -> Program:
    """``prog``, or, when the network has ops that stop the gradient (``Op.stops_gradient``),
    the program whose loss holds each such node's value fixed at ``params`` and ``inputs``:
    the function whose derivative the gradient is, for central differences to compare with."""
    from graphbp.graph import Network

    needed = nx.ancestors(net.graph, net.loss)
    stops = [n for n in net.order if n in needed and n in net.ops and net.ops[n].stops_gradient]
    if not stops:
        return prog
    values = prog.forward(params, inputs, stops)
    g = net.graph.copy()
    for node in stops:
        g.remove_edges_from(list(g.in_edges(node)))
        g.nodes[node].clear()
        g.nodes[node].update(op="const", value=np.asarray(prog.backend.to_numpy(values[node])))
    # a parameter or input whose every path runs through a stopped node stays, unused
    return Network(g, loss=net.loss).compile(prog.backend.name, "float64")


# ------------------------------------------------------------------ the report, edge by edge

ONE_SIDED_STEP = 1e-7
"""Step of the one-sided differences that tell a kink (relu at 0) from a wrong rule where
central differences and the vjp disagree."""
EDGE_ELEMENTS = 64
"""An operand of at most this many elements (and ``max_elements``) is compared element by
element in a report, besides the random directions that any larger one is compared along."""


def _edge_checks(
    net: Network,
    prog: Program,
    params: Mapping[Any, Any],
    inputs: Mapping[Any, Any],
    rng: np.random.Generator,
    rtol: float,
    directions: int,
    max_elements: int,
) -> dict[Edge, EdgeCheck]:
    """Every operand edge's verdict: its op's vjp for that operand, at the operand values
    of the network's forward pass, against central differences of the op's forward and
    (where jax is installed and the op runs on it) against ``jax.vjp``."""
    edges = [Edge(s, n, k) for n in net.order for k, s in enumerate(net.operands[n])]
    values, missing = _forward_values(net, prog, params, inputs)
    checked: dict[Hashable, tuple[list[EdgeCheck], list[Any], _Probe | None]] = {
        node: (
            [EdgeCheck("unchecked", note=note, reason=FAILED)] * len(net.operands[node]),
            [],
            None,
        )
        for node, note in missing.items()
    }
    for node in (n for n in net.order if n in net.ops and n not in missing):
        xs = [np.asarray(prog.backend.to_numpy(values[a]), np.float64) for a in net.operands[node]]
        elements = min(max_elements, EDGE_ELEMENTS)
        verdicts, probe = _node_checks(
            net.ops[node], net.attrs[node], xs, prog.backend, rng, rtol, directions, elements
        )
        checked[node] = verdicts, xs, probe
    at = {
        n: (xs, None if p is None else p.g) for n, (_, xs, p) in checked.items() if n not in missing
    }
    errors = _autodiff_errors(net, at)
    checks = {}
    for node, (verdicts, _, probe) in checked.items():
        node_errors = errors.get(node, [None] * len(verdicts))
        verdicts = [
            _with_autodiff_error(v, e, probe, i, rtol)
            for i, (v, e) in enumerate(zip(verdicts, node_errors, strict=True))
        ]
        if any(v.status == "wrong" for v in verdicts):
            culprit = _inner_culprit(net.attrs[node], prog.backend.name)
            verdicts = [replace(v, culprit=culprit) if v.status == "wrong" else v for v in verdicts]
        for position, source in enumerate(net.operands[node]):
            checks[Edge(source, node, position)] = verdicts[position]
    return {edge: checks[edge] for edge in edges}


def _forward_values(
    net: Network, prog: Program, params: Mapping[Any, Any], inputs: Mapping[Any, Any]
) -> tuple[dict[Hashable, Any], dict[Hashable, str]]:
    """Every node's value in the forward pass, and for op nodes without one, why: the
    loss's ancestors first, then the others (a prediction off the loss's path), which may
    need inputs the loss does not."""
    needed = nx.ancestors(net.graph, net.loss) | {net.loss}
    values: dict[Hashable, Any] = {**params, **inputs}
    missing: dict[Hashable, str] = {}
    for part in (needed, set(net.order) - needed):
        nodes = [n for n in net.order if n in part and (n in net.consts or n in net.ops)]
        try:
            values.update(prog.forward(params, inputs, nodes) if nodes else {})
        except GraphbpError as exc:
            note = f"the forward pass to it failed: {exc_text(exc, 200)}"
            missing.update({n: note for n in nodes if n in net.ops})
    return values, missing


def _with_autodiff_error(
    check: EdgeCheck,
    found: tuple[float, np.ndarray[Any, Any]] | None,
    probe: _Probe | None,
    i: int,
    rtol: float,
) -> EdgeCheck:
    """``check`` of operand ``i`` with the vjp's difference from ``jax.vjp`` (its relative
    error and the difference): where central differences agree, wrong if over ``rtol``,
    unless the forward has a kink at every element where they differ (``_kinked``: |x| at
    0, whose rule may pick any slope between the two sides); a non-smooth or gradient-free
    edge stays unchecked."""
    if found is None or (check.status == "unchecked" and check.differences is None):
        return check
    error, difference = found
    if check.status != "agree" or error <= rtol:
        return replace(check, autodiff=error)
    kink = None if probe is None else _kink_at(probe, i, difference, rtol)
    if kink is None:
        note = f"jax.vjp differs by {error:.2g}"
        return replace(check, status="wrong", autodiff=error, note=note)
    note = f"not smooth here, ∂/∂operand {i}{index_text(kink)}: jax.vjp differs by {error:.2g}"
    return replace(check, status="unchecked", autodiff=error, note=note, reason=NOT_SMOOTH)


def _kink_at(
    probe: _Probe, i: int, difference: np.ndarray[Any, Any], rtol: float
) -> tuple[int, ...] | None:
    """The element of operand ``i`` where its vjp differs most from ``jax.vjp``, if the
    forward has a kink at each of the (at most ``EDGE_ELEMENTS``) elements where they
    differ most, beyond ``rtol`` of the largest difference; else None."""
    size = np.abs(difference).ravel()
    order = np.argsort(-size, kind="stable")[:EDGE_ELEMENTS]
    order = order[size[order] > rtol * size[order[0]]]
    for flat in order:
        bump = np.zeros(difference.shape)
        bump.flat[flat] = 1.0
        if not _kinked(probe, i, bump, rtol):
            return None
    return tuple(int(k) for k in np.unravel_index(int(order[0]), difference.shape))


def _inner_culprit(attrs: Mapping[str, Any], backend: str) -> tuple[str, str] | None:
    """The attribute and op a node's attributes name (dense's activation) whose rule fails
    ``check_op`` on its own examples: the rule to fix for a wrong edge of that node."""
    for key, inner in _ops_named_by(attrs):
        try:
            check_op(inner, backend)
        except GraphbpError:
            return visible(key), inner.name
    return None


def _node_checks(
    op: Op,
    attrs: Mapping[str, Any],
    xs: list[np.ndarray[Any, Any]],
    be: Backend,
    rng: np.random.Generator,
    rtol: float,
    directions: int,
    max_elements: int,
) -> tuple[list[EdgeCheck], _Probe | None]:
    """The verdict on each operand of one op node, whose operands have the values ``xs``,
    against central differences; and the probe of its forward they used, with the random
    cotangent of its output (None if its forward failed)."""
    free = gradient_free(op, attrs)
    shapes = [x.shape for x in xs]
    with be.precision("float64"):  # uncompiled: JAX compiles each primitive once by shape
        forward, vjp = _op_rules(op, be, dict(attrs), shapes, compiled=False)
        try:
            out = forward(*xs)
        except GraphbpError as exc:
            note = f"its forward failed on these operands: {exc_text(exc, 200)}"
            return [EdgeCheck("unchecked", note=note, reason=FAILED)] * len(xs), None
        probe = _Probe(op, be, forward, xs, out, rng, rtol, free)
        try:
            cts = vjp(be.asarray(probe.g, "float64"), *_as_engine_passes(op, out, xs))
        except GraphbpError as exc:
            note = f"its vjp failed on these operands: {exc_text(exc, 200)}"
            return [EdgeCheck("wrong", note=note)] * len(xs), None
        verdicts = []
        for i, ct in enumerate(cts):
            if i < len(free) and free[i]:
                note = 'its local derivative is declared "0": no gradient flows here'
                verdicts.append(EdgeCheck("unchecked", note=note, reason=NO_GRADIENT))
                continue
            analytic = np.asarray(be.to_numpy(ct), np.float64)
            elementwise = analytic.size <= max_elements
            verdicts.append(_judge_edge(probe, i, analytic, rng, directions, elementwise, rtol))
    return verdicts, probe


class _Probe:
    """An op node's forward around its operand values, as a report differences it: the
    derivative of ⟨g, out⟩ over the output entries differences can judge, taken entry by
    entry. The others get a zero cotangent ``g`` and are left out: entries that are not
    finite (a −inf mask's) and entries too large for the step to move by more than their
    round-off allows (a −1e9 or ``finfo.min`` mask's: the step is lost in them, and their
    round-off would swamp every comparison).

    Attributes:
        g: the random cotangent of the output, 0 on the entries left out.
        clean: whether the operands are finite and no output entry is left out (else the
            vjp may be not finite next to them, 0·∞, without being wrong).
    """

    def __init__(
        self,
        op: Op,
        be: Backend,
        forward: Callable[..., Any],
        xs: list[np.ndarray[Any, Any]],
        out: Any,
        rng: np.random.Generator,
        rtol: float,
        free: tuple[bool, ...],
    ) -> None:
        self.be, self.forward, self.xs, self.stops = be, forward, xs, op.stops_gradient
        self.out = np.asarray(be.to_numpy(out), np.float64)
        g = rng.standard_normal(self.out.shape)
        self.judged = np.isfinite(self.out)
        moving = [i for i in range(len(xs)) if not (i < len(free) and free[i])]
        if self.judged.any() and moving and not self.stops:
            steps = {i: STEP * rng.standard_normal(xs[i].shape) for i in moving}
            self.judged &= ~self._lost(steps, rtol)
        self.g = np.where(self.judged, g, 0.0)
        size = float(np.sum(np.abs(self.g * np.where(self.judged, self.out, 0.0))))
        self.roundoff = 10 * float(np.finfo(np.float64).eps) * (1 + size)
        self.clean = bool(self.judged.all()) and all(np.isfinite(x).all() for x in xs)

    def _lost(self, steps: Mapping[int, Any], rtol: float) -> np.ndarray[Any, Any]:
        """The finite output entries so large that their round-off over ``rtol`` exceeds
        the step and that a step of the operands (``steps``) moves by less than that."""
        moved = list(self.xs)
        for i, step in steps.items():
            moved[i] = self.xs[i] + step
        with np.errstate(all="ignore"), self.be.precision("float64"):
            try:
                now = np.asarray(self.be.to_numpy(self.forward(*moved)), np.float64)
            except GraphbpError:  # judged as they are: the comparisons say what fails
                return np.zeros(self.out.shape, bool)
            big = np.abs(np.where(self.judged, self.out, 0.0)) * np.finfo(np.float64).eps / rtol
            return (big > STEP) & ~(np.abs(now - self.out) >= big)

    def derivative(
        self, i: int, v: Any, stencil: Iterable[tuple[int, float]], step: float
    ) -> tuple[float, float]:
        """Σₖ cₖ·⟨g, out(operand i moved by k·step·v)⟩ / step for the stencil's (k, cₖ),
        whose cₖ sum to 0, over the judged entries of the output; and its round-off."""
        total = np.zeros_like(self.out)
        with np.errstate(all="ignore"), self.be.precision("float64"):
            for k, c in stencil:  # Σₖ cₖ = 0: differences from out, exactly 0 where unmoved
                if k != 0 and not self.stops:  # an op that stops the gradient: value held
                    total += c * np.where(self.judged, self._at(i, (k * step) * v) - self.out, 0)
            numeric = float(np.sum(self.g * total)) / step
        return numeric, self.roundoff / step

    def central(self, i: int, v: Any, step: float = STEP) -> tuple[float, float]:
        """The derivative along ``v`` in operand ``i`` by the five-point central difference
        (as ``_central``), and its round-off."""
        return self.derivative(i, v, ((-2, 1 / 12), (-1, -8 / 12), (1, 8 / 12), (2, -1 / 12)), step)

    def _at(self, i: int, delta: Any) -> np.ndarray[Any, Any]:
        moved = list(self.xs)
        moved[i] = self.xs[i] + delta
        return np.asarray(self.be.to_numpy(self.forward(*moved)), np.float64)


def _judge_edge(
    probe: _Probe,
    i: int,
    analytic: np.ndarray[Any, Any],
    rng: np.random.Generator,
    directions: int,
    elementwise: bool,
    rtol: float,
) -> EdgeCheck:
    """The verdict on operand ``i``'s cotangent ``analytic`` against central differences,
    element by element (if ``elementwise``) and along random directions: "wrong" where they
    disagree at a smooth point, "unchecked" where they disagree only where the forward is not
    smooth (a kink: differences cannot judge the rule there) or not finite; with the worst
    relative error and a note on the first disagreement."""
    if not probe.judged.any():  # a zero cotangent: any rule would agree
        note = "no output entry is finite and within reach of a difference step"
        return EdgeCheck("unchecked", note=note, reason=NOT_FINITE)
    worst, wrong = 0.0, ""
    kink: tuple[str, str] | None = None  # the reason and the note
    # next to values that are not finite, a cotangent entry may be 0·∞: not judged
    judged = np.ones(analytic.shape, bool) if probe.clean else np.isfinite(analytic)
    for what, v, j in _directions(analytic.shape, rng, directions, elementwise, i):
        if j is not None and not judged[j]:
            kink = kink or (NOT_FINITE, f"{what}: the vjp is not finite, next to values that are")
            continue
        v = v if j is not None else np.where(judged, v, 0.0)
        value = float(analytic[j]) if j is not None else float(np.sum(analytic * v))
        numeric, atol = probe.central(i, v)
        if not math.isfinite(numeric):
            kink = kink or (NOT_FINITE, f"{what}: the forward is not finite around these values")
            continue
        ok, err = agreement(value, numeric, atol, rtol)
        worst = max(worst, err if math.isfinite(value) else math.inf)
        if ok:
            continue
        text = f"{what}: vjp {value:.6g} vs differences {numeric:.6g}"
        if math.isfinite(value) and _kinked(probe, i, v, rtol):
            kink = kink or (NOT_SMOOTH, f"not smooth here, {text}")
        else:
            wrong = wrong or text
    if wrong:
        return EdgeCheck("wrong", worst, None, wrong)
    if kink:
        return EdgeCheck("unchecked", worst, None, kink[1], reason=kink[0])
    return EdgeCheck("agree", worst)


def _kinked(probe: _Probe, i: int, v: Any, rtol: float) -> bool:
    """Whether the forward is not smooth along ``v`` in operand ``i`` within the reach of
    the central differences (relu at or near 0, max at a tie), so that they cannot judge a
    rule there: its left and right derivatives differ at a tiny step (a kink at the point),
    or central differences at ``STEP`` and at a hundredth of it disagree (a kink nearby)."""
    h = ONE_SIDED_STEP
    right, right_roundoff = probe.derivative(i, v, ((1, 1.0), (0, -1.0)), h)
    left, left_roundoff = probe.derivative(i, v, ((0, 1.0), (-1, -1.0)), h)
    roundoff = max(right_roundoff, left_roundoff)
    if abs(right - left) > roundoff + 1e-4 * max(abs(right), abs(left)):
        return True
    (wide, _), (narrow, _) = probe.central(i, v), probe.central(i, v, STEP / 100)
    return abs(wide - narrow) > roundoff + rtol * max(abs(wide), abs(narrow))


def _autodiff_errors(
    net: Network, at: Mapping[Hashable, tuple[list[Any], Any]]
) -> dict[Hashable, list[tuple[float, np.ndarray[Any, Any]] | None]]:
    """Per op node and operand, its vjp's largest difference from ``jax.vjp`` of its forward
    at the operands and output cotangent ``at[node]``, relative to jax's largest entry, and
    the difference (``_finite_difference``); None without jax, for an op that does not run
    on it or has no vjp of its own (JAX differentiates it itself), or where the forward
    failed. All nodes are compiled as one function: one compilation costs far less than one
    per node."""
    errors: dict[Hashable, list[tuple[float, np.ndarray[Any, Any]] | None]] = {
        n: [None] * len(at[n][0]) for n in at
    }
    try:
        oracle = get_backend("jax")
    except BackendNotInstalledError:
        return errors
    import jax

    nodes = [
        n
        for n, (_, g) in at.items()
        if g is not None and runs_on(net.ops[n], oracle.name) and defines_vjp(net.ops[n])
    ]
    rules = []
    for node in nodes:
        op, shapes = net.ops[node], [x.shape for x in at[node][0]]
        forward, vjp = _op_rules(op, oracle, dict(net.attrs[node]), shapes, compiled=False)
        rules.append(_with_autodiff(op, forward, vjp))

    def every(arguments: list[tuple[Any, list[Any]]]) -> list[tuple[Any, Any]]:
        return [rule(g, *xs) for rule, (g, xs) in zip(rules, arguments, strict=True)]

    with oracle.precision("float64"):
        arguments = [(oracle.asarray(at[n][1], "float64"), at[n][0]) for n in nodes]
        try:
            results: list[tuple[Any, Any] | None] = list(jax.jit(every)(arguments))
        except GraphbpError:  # a rule that cannot be traced (Python branching on values):
            results = [_eager(rule, g, xs) for rule, (g, xs) in zip(rules, arguments, strict=True)]
    for node, result in zip(nodes, results, strict=True):
        if result is not None:
            errors[node] = [
                _finite_difference(np.asarray(oracle.to_numpy(c)), np.asarray(w))
                for c, w in zip(*result, strict=True)
            ]
    return errors


def _finite_difference(got: Any, want: Any) -> tuple[float, np.ndarray[Any, Any]]:
    """``_relative_difference`` over the entries where both are finite (next to an output
    that is not finite, a −inf mask's, both may be 0·∞), and ``got − want`` there (0
    elsewhere)."""
    both = np.isfinite(got) & np.isfinite(want)
    got, want = np.where(both, got, 0.0), np.where(both, want, 0.0)
    return float(_relative_difference(got, want)), got - want


def _eager(rule: Callable[..., tuple[Any, Any]], g: Any, xs: list[Any]) -> tuple[Any, Any] | None:
    """``rule(g, *xs)`` op by op (not compiled), or None if it fails: the differences'
    check says which rule fails, and how."""
    try:
        return rule(g, *xs)
    except GraphbpError:
        return None


def _wrong_rule(
    net: Network,
    prog: Program,
    params: Mapping[Any, Any],
    inputs: Mapping[Any, Any],
    max_elements: int,
) -> str:
    """Which op's rule makes a network's gradient wrong: each op node the loss depends on is
    checked with ``check_op`` at its own operand values (in topological order), and the first
    whose vjp disagrees with central differences of its forward is named."""
    needed = nx.ancestors(net.graph, net.loss) | {net.loss}
    nodes = [n for n in net.order if n in needed and n in net.ops]
    computed = [n for n in net.order if n in needed and n in net.consts] + nodes
    try:
        values: dict[Any, Any] = {**params, **inputs, **prog.forward(params, inputs, computed)}
    except GraphbpError as exc:  # the message says what failed; this is only a hint
        return f"no op was checked alone, as the forward pass failed ({exc})"
    backend = prog.backend.name
    doubtful = ""
    for node in nodes:
        op = net.ops[node]
        operands = tuple(
            np.asarray(prog.backend.to_numpy(values[a]), np.float64) for a in net.operands[node]
        )
        try:
            check_op(op, backend, examples=[(operands, net.attrs[node])], max_elements=max_elements)
            continue
        except GradientCheckError as exc:
            there = str(exc)
        culprit = _failing_alone(op, node, net.attrs[node], backend)
        if culprit is not None:
            wrong, how = culprit
            cls = type(wrong)
            return (
                f"{how} ({there}); fix {cls.__module__}.{cls.__qualname__}.vjp and check it "
                f"alone with `graphbp check --op {wrong.name}`"
            )
        doubtful = doubtful or (
            f"op {op.name!r} at node {show(node)} disagrees with central differences at the "
            f"node's operand values ({there}), though it passes on its own examples: a "
            "non-smooth point (relu at 0) or a rule wrong only for these operands"
        )
    return doubtful or (
        "every op's vjp agrees with central differences at its node's operand values, so "
        "the difference comes from the network as a whole (a non-smooth point such as relu "
        "at 0, or a loss too flat for float64 differences)"
    )


def _failing_alone(
    op: Op, node: Hashable, attrs: Mapping[str, Any], backend: str
) -> tuple[Op, str] | None:
    """The op to blame for a node whose check failed at its values, and how to say it: an op
    its attributes name (dense's activation) or the op itself, whichever fails ``check_op``
    on its own examples; None if both pass (the node's values are the problem)."""
    for key, inner in _ops_named_by(attrs):
        try:
            check_op(inner, backend)
        except GradientCheckError:
            return inner, (
                f"the rule of op {inner.name!r}, the {visible(key)} of node {show(node)} "
                f"(op {op.name!r}), is wrong"
            )
    try:
        check_op(op, backend)
    except GradientCheckError:
        return op, f"the rule of op {op.name!r} at node {show(node)} is wrong"
    return None


def _ops_named_by(attrs: Mapping[str, Any]) -> list[tuple[str, Op]]:
    """The ops a node's attributes name (``activation="tanh"``), with the attribute's key."""
    known = set(ops())
    return [(k, get_op(v)) for k, v in attrs.items() if isinstance(v, str) and v in known]


def check_op_autodiff(
    op: Op | type[Op] | str,
    *,
    examples: Iterable[Example] | None = None,
    seed: int = 0,
    rtol: float = 1e-9,
) -> CheckReport:
    """Check an op's vjp against ``jax.vjp`` of its own forward, in float64 (needs jax).

    A second oracle besides central differences: JAX's autodiff has no step size, so the two
    must agree to round-off. Errors are relative to the cotangent's largest entry.

    Raises:
        GradientCheckError: naming the op, the example, the operand and the element.
        BackendNotInstalledError: jax is not installed.
        PluginError: the op breaks the plugin contract, or its examples are malformed.
    """
    op = as_op(op)
    be = get_backend("jax")
    report = CheckReport(f"op {op.name!r} vs jax.vjp", "jax")
    if not defines_vjp(op):
        return report  # nothing of the plugin's own to check: JAX differentiates it itself
    import jax

    rng = np.random.default_rng(seed)
    with be.precision("float64"):
        for k, (operands, attrs) in enumerate(_op_examples(op, examples, rng)):
            xs = [be.asarray(x, "float64") for x in operands]
            forward, vjp = _op_rules(op, be, attrs, [tuple(x.shape) for x in xs])
            g = rng.standard_normal(np.shape(jax.eval_shape(forward, *xs)))
            cts, wants = jax.jit(_with_autodiff(op, forward, vjp))(g, *xs)
            where = f"op {op.name!r}, example {k} (shapes {[tuple(x.shape) for x in xs]})"
            for i, (ct, want) in enumerate(zip(cts, wants, strict=True)):
                got = np.asarray(be.to_numpy(ct))
                report.worst[f"example {k} operand {i}"] = _close(
                    got, np.asarray(want), rtol, f"{where}, operand {i}: plugin vjp vs jax.vjp"
                )
                report.compared += got.size
    return report


def _with_autodiff(
    op: Op, forward: Callable[..., Any], vjp: Callable[..., Any]
) -> Callable[..., tuple[Any, Any]]:
    """``both(g, *operands)``: the plugin's cotangents and ``jax.vjp``'s of its forward."""
    import jax

    def both(g: Any, *values: Any) -> tuple[Any, Any]:
        out, pullback = jax.vjp(forward, *values)
        if op.stops_gradient:  # held to zero cotangents (see Op.stops_gradient)
            stopped = lambda *v: forward(*map(jax.lax.stop_gradient, v))  # noqa: E731
            _, pullback = jax.vjp(stopped, *values)
        return vjp(g, *_as_engine_passes(op, out, list(values))), pullback(g)

    return both


def check_backends_agree(
    net: Network,
    backends: tuple[str, ...] = ("numpy", "jax"),
    *,
    dtype: str = "float64",
    params: Mapping[Any, Any] | None = None,
    inputs: Mapping[Any, Any] | None = None,
    seed: int = 0,
    rtol: float | None = None,
) -> CheckReport:
    """Check that every backend computes the same loss and gradients for ``net``.

    On JAX, ``jax.grad(prog.loss)`` (the plugins' rules under JAX's own transformation) is
    compared too. Errors are relative to each array's largest entry; the default allowance
    is 1e-10 in float64 and 1e-5 in float32.

    This compares backends with each other, not gradients with the truth: every backend runs
    the same plugin vjp, so a wrong rule gives the same wrong gradient everywhere and passes.
    Only ``check_op`` (central differences), ``check_op_autodiff`` (``jax.vjp``) and
    ``check_network`` can catch a wrong vjp.

    Raises:
        GradientCheckError: naming the backend, the parameter and the element.
    """
    rtol = rtol if rtol is not None else (1e-10 if dtype == "float64" else 1e-5)
    rng = np.random.default_rng(seed)
    progs = [net.compile(b, dtype) for b in backends]
    params = dict(params) if params is not None else progs[0].init(seed)
    inputs = dict(inputs) if inputs is not None else random_inputs(net, rng)
    reference: dict[str, Any] | None = None
    report = CheckReport("network", " = ".join(backends))
    for prog in progs:
        loss, grads = prog.value_and_grad(params, inputs)
        results = {"loss": loss, **{f"∂L/∂{n}": grads[n] for n in net.params}}
        if prog.backend.name == "jax":
            import jax

            auto = jax.grad(prog.loss)(prog.own(params), inputs)
            results.update({f"jax.grad ∂L/∂{n}": auto[n] for n in net.params})
        got = {
            k: np.asarray(prog.backend.to_numpy(v), dtype=np.float64) for k, v in results.items()
        }
        if reference is None:
            reference = got
        for key, value in got.items():
            want = reference[key.removeprefix("jax.grad ")]
            where = f"{key} on {prog.backend.name} vs {backends[0]} ({dtype})"
            report.worst[f"{prog.backend.name} {key}"] = _close(value, want, rtol, where)
            report.compared += value.size
    return report


def _close(got: Any, want: Any, rtol: float, where: str) -> float:
    """The largest difference relative to ``want``'s largest entry, or an error over ``rtol``."""
    err = _relative_difference(got, want)
    if not err <= rtol:
        diff = np.abs(got - want)
        j = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
        raise GradientCheckError(
            f"{where}: {f'element {index_text(j)}' if j else 'value'}: {float(got[j]):.12g} vs "
            f"{float(want[j]):.12g}, a "
            f"difference of {err:.2e} relative to the largest entry (allowed {rtol:.0e})"
        )
    return err


def _relative_difference(got: Any, want: Any) -> float:
    """The largest difference of ``got`` from ``want``, relative to ``want``'s largest entry."""
    scale = max(float(np.max(np.abs(want), initial=0.0)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(got - want), initial=0.0)) / scale


def random_inputs(net: Network, rng: Any, batch: int = 4) -> dict[Hashable, Any]:
    """Standard-normal values for every input of ``net``, None axes of size ``batch``."""
    inputs = {}
    for name in net.inputs:
        shape = net.graph.nodes[name].get("shape")
        if shape is None:
            raise InputError(
                f"input {name!r} (op 'input') has no declared shape, so the check cannot make "
                "up a value for it; declare its shape or pass inputs=... to the check"
            )
        inputs[name] = rng.standard_normal(tuple(batch if d is None else d for d in shape))
    return inputs


# ------------------------------------------------------------------ the textbook oracle


def handwritten_grads(params: Mapping[str, Any], x: Any, y: Any) -> tuple[float, dict[str, Any]]:
    """Loss and gradients of the seed network, backprop written out by hand in NumPy.

    The textbook oracle for ``graphbp.seed_network``: h1 = σ(x·W1 + b1), h2 = σ(h1·W2 + b2),
    ŷ = h2·W3 + b3, L = Σᵢ ‖yᵢ − ŷᵢ‖², each gradient by its formula, owing nothing to graphbp's
    plugins or traversal. The benchmark times it as its baseline.

    Args:
        params: NumPy arrays under the seed network's names W1, b1, W2, b2, W3, b3.
        x: the inputs, one row per example.
        y: the targets, one row per example.

    Returns:
        L and ∂L/∂p for each of the six parameters, by name.
    """
    w1, b1, w2, b2, w3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    h1 = 1 / (1 + np.exp(-(x @ w1 + b1)))
    h2 = 1 / (1 + np.exp(-(h1 @ w2 + b2)))
    d = h2 @ w3 + b3 - y
    loss = float(np.sum(d * d))
    g = 2 * d  # ∂L/∂ŷ, computed once ...
    dz2 = (g @ w3.T) * h2 * (1 - h2)  # ... and reused for W2, b2 and everything below
    dz1 = (dz2 @ w2.T) * h1 * (1 - h1)
    grads = {
        "W3": h2.T @ g,
        "b3": g.sum(0),
        "W2": h1.T @ dz2,
        "b2": dz2.sum(0),
        "W1": x.T @ dz1,
        "b1": dz1.sum(0),
    }
    return loss, grads


def handwritten_step(params: dict[str, Any], x: Any, y: Any, lr: float) -> float:
    """One SGD step of the seed network by hand: ``handwritten_grads``, then W ← W − lr·∇W.

    Args:
        params: as for ``handwritten_grads``; updated in place.
        x: the inputs, one row per example.
        y: the targets, one row per example.
        lr: the learning rate.

    Returns:
        The loss before the step.
    """
    loss, grads = handwritten_grads(params, x, y)
    for k, gk in grads.items():
        params[k] -= lr * gk
    return loss
