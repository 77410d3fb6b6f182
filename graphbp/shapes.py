"""Shape inference: every node's static shape from the ops' shape rules, never from arrays
of the declared size, and the bounds every shape is held to."""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from graphbp.errors import GraphbpError, GraphError, PluginError, exc_text, show
from graphbp.op import OP, PROBE_LIMIT, Op, Shape, call_forward, defines_shape, shapes_agree
from graphbp.registry import get_backend

if TYPE_CHECKING:
    import networkx as nx

    from graphbp.graph import Network

MAX_ELEMENTS = 2**34
"""The most elements any value of a network may have (declared or inferred; a None axis
counts as 1): far above any real model, far below what would exhaust memory by accident."""
MAX_RANK = 32
"""The most axes a value may have."""


def check_shape(node: Hashable, what: str, shape: Any, none_ok: bool) -> Shape:
    """A declared ``shape`` as a tuple, or a GraphError naming the node and the rule.

    A shape is a tuple (a list in JSON) of at most ``MAX_RANK`` non-negative ints (not bool),
    None allowed where ``none_ok``, with at most ``MAX_ELEMENTS`` elements (None counts as 1).
    """
    dims = "non-negative ints and None" if none_ok else "non-negative ints"
    ok = isinstance(shape, tuple) and all(
        (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or (d is None and none_ok)
        for d in shape
    )
    if not ok:
        raise GraphError(
            f"node {node!r} ({what}) has shape={show(shape)}; a shape is a tuple (a list in "
            f"JSON) of {dims}, e.g. {'(None, 8)' if none_ok else '(8, 16)'}"
        )
    check_size(node, what, shape, "declares")
    return tuple(shape)


def check_size(node: Hashable, what: str, shape: Shape, verb: str) -> None:
    """Raise GraphError if a value of ``shape`` has too many axes or elements to be held."""
    if len(shape) > MAX_RANK:
        raise GraphError(
            f"node {node!r} ({what}) {verb} a value of {len(shape)} axes; graphbp holds at "
            f"most {MAX_RANK}"
        )
    count = math.prod(1 if d is None else d for d in shape)
    if count > MAX_ELEMENTS:
        big = f"{count:,}" if count < 10**30 else f"about 2^{count.bit_length() - 1}"
        raise GraphError(
            f"node {node!r} ({what}) {verb} a value of shape {show(shape)}: {big} elements, "
            f"more than the {MAX_ELEMENTS:,} a value may have; make the shape smaller"
        )


Pair = tuple[tuple[int, ...], tuple[int, ...]]
"""A node's shape inferred twice, with every None axis of the inputs set to 2 and to 3."""


class ShapeGraph(Protocol):
    """What shape inference reads of a graph: a ``Network``, or a graph being built."""

    @property
    def graph(self) -> nx.DiGraph: ...

    @property
    def kind(self) -> Mapping[Hashable, str]: ...

    @property
    def ops(self) -> Mapping[Hashable, Op]: ...

    @property
    def operands(self) -> Mapping[Hashable, tuple[Hashable, ...]]: ...

    @property
    def attrs(self) -> Mapping[Hashable, Mapping[str, Any]]: ...

    def op_name(self, node: Hashable) -> str: ...


def infer_shapes(net: Network, values: Mapping[Hashable, Any]) -> dict[Hashable, Shape | None]:
    """Infer every node's static shape from shapes alone; None if unknown.

    Each op's shape rule (``Op.shape``) maps operand shapes to the result's shape: no array
    is made, so a graph that declares huge shapes costs what it takes to describe. Inputs'
    None axes get two different sizes (2 and 3); an output axis that follows them is None, one
    that does not is static. An op without a shape rule is probed instead (its forward run on
    arrays of the operands' shapes), only up to ``PROBE_LIMIT`` elements per operand. Every
    shape, declared or inferred, is held to ``MAX_RANK`` and ``MAX_ELEMENTS``.
    """
    concrete: dict[Hashable, Pair | None] = {}
    shapes: dict[Hashable, Shape | None] = {}
    for node in net.order:
        infer_node(net, node, values, concrete, shapes)
    return shapes


def infer_node(
    net: ShapeGraph,
    node: Hashable,
    values: Mapping[Hashable, Any],
    concrete: dict[Hashable, Pair | None],
    shapes: dict[Hashable, Shape | None],
) -> None:
    """Infer ``node``'s shape (see ``infer_shapes``) once its operands' are in ``concrete``
    and ``shapes``, and add it to both.

    Raises:
        GraphError: a declared shape breaks the rules or disagrees with the inferred one, the
            operands do not fit, or the result is too large to hold.
        PluginError: the op's shape rule (or probed forward) breaks the plugin contract.
    """
    kind, data = net.kind[node], net.graph.nodes[node]
    what = f"op {net.op_name(node)!r}"
    declared = data.get("shape")
    if declared is not None:
        declared = check_shape(node, what, declared, none_ok=kind != "param")
    pair: Pair | None
    if kind == "const":
        pair = (values[node].shape, values[node].shape)
    elif kind != OP:
        pair = None
        if declared is not None:
            pair = (
                tuple(2 if d is None else d for d in declared),
                tuple(3 if d is None else d for d in declared),
            )
    else:
        pairs = [concrete[x] for x in net.operands[node]]
        if any(x is None for x in pairs):
            pair = None
        else:
            firsts = [x[0] for x in pairs if x is not None]
            seconds = [x[1] for x in pairs if x is not None]
            a = _out_shape(net, node, firsts, values, shapes)
            b = a if firsts == seconds else _out_shape(net, node, seconds, values, shapes)
            pair = (a, b)
    concrete[node] = pair
    shapes[node] = None if pair is None else _merge_shapes(*pair)
    inferred = shapes[node]
    if inferred is not None and kind == OP:
        check_size(node, what, inferred, "computes")
    agree = declared is None or inferred is None or shapes_agree(inferred, declared)
    if kind in (OP, "const") and not agree:
        source = "its operands give" if kind == OP else "its value has"
        raise GraphError(
            f"node {node!r} ({what}) declares shape {declared} but {source} {inferred}; "
            f"fix the declared shape or the {'operands' if kind == OP else 'value'}"
        )


def _out_shape(
    net: ShapeGraph,
    node: Hashable,
    operands: list[tuple[int, ...]],
    values: Mapping[Hashable, Any],
    shapes: Mapping[Hashable, Shape | None],
) -> tuple[int, ...]:
    """The shape of ``node``'s result for operands of these concrete shapes."""
    op = net.ops[node]
    if not defines_shape(op):
        return _probe(net, node, operands, values, shapes)
    attrs = net.attrs[node]

    def rule(given: list[tuple[int, ...]]) -> Any:
        return op.shape(*given, **attrs)

    try:
        out = rule(operands)
    except (ValueError, TypeError, IndexError) as exc:
        raise _mismatch(net, node, exc, shapes, operands, rule) from None
    except GraphbpError as exc:  # an attribute the op rejects, e.g. an unknown activation
        raise GraphError(f"node {node!r} (op {op.name!r}): {exc}") from None
    except Exception as exc:
        raise PluginError(
            f"op {op.name!r} at node {node!r}: its shape rule raised {type(exc).__name__}: "
            f"{exc_text(exc)} on operand shapes {operands}; fix {type(op).__qualname__}.shape"
        ) from exc
    ok = isinstance(out, tuple | list) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and int(d) >= 0 for d in out
    )
    if not ok:
        raise PluginError(
            f"op {op.name!r} at node {node!r}: its shape rule returned {show(out)} for "
            f"operand shapes {operands}; return a tuple of non-negative ints"
        )
    return tuple(int(d) for d in out)


Rule = Callable[[list[tuple[int, ...]]], Any]
"""An op's shape rule (or its probed forward) on operands of concrete shapes; it raises
where the operands (or the node's attributes) do not fit."""


def _mismatch(
    net: ShapeGraph,
    node: Hashable,
    exc: BaseException,
    shapes: Mapping[Hashable, Shape | None],
    concrete: list[tuple[int, ...]],
    rule: Rule,
) -> GraphError:
    """The error for a node whose op refused its operands, ``exc``: a shape mismatch, in the
    operands' own shapes (the rule saw each None axis as some size, 2 or 3, which the message
    shows as None again), with a word on None axes when another size of them would fit; or,
    when only the value of an attribute the message names is at fault (a TypeError), that
    attribute."""
    op, attrs, names = net.ops[node], net.attrs[node], net.operands[node]
    listed = ", ".join(f"{name!r} {shapes[name]}" for name in names)
    subject = f"operands {listed} do" if len(names) > 1 else f"operand {listed} does"
    text = exc_text(exc)
    made_up = [str(c) for c in concrete]
    for name, shown in zip(names, made_up, strict=True):
        shape = shapes[name]
        alike = {str(shapes[n]) for n, m in zip(names, made_up, strict=True) if m == shown}
        if shape is not None and None in shape and len(alike) == 1:  # one shape shows so
            text = text.replace(shown, str(shape))
    if _none_axes_fit(rule, [shapes[name] for name in names], concrete):
        text += "; None is an axis of any size, which must fit whatever size it has"
    else:
        words = set(re.findall(r"\w+", text))
        named = [key for key in attrs if key in words]
        if isinstance(exc, TypeError) and named:
            given = ", ".join(f"{key}={show(attrs[key], 40)}" for key in named)
            return GraphError(
                f"node {node!r} (op {op.name!r}) has attribute {given}, which the op refuses "
                f"({text}); fix the attribute"
            )
    return GraphError(
        f"shape mismatch at node {node!r} (op {op.name!r}): {subject} not fit "
        f"({text}); fix the shapes of those operands or the node's attributes"
    )


def _none_axes_fit(
    rule: Rule, declared: list[Shape | None], concrete: list[tuple[int, ...]]
) -> bool:
    """Whether the operands would fit with their None axes of another size: one of the sizes
    the operands have (or 1) for every None axis."""
    if not any(shape is not None and None in shape for shape in declared):
        return False
    for size in sorted({1, *(d for shape in concrete for d in shape)})[:16]:
        trial = [
            concrete[i] if shape is None else tuple(size if d is None else d for d in shape)
            for i, shape in enumerate(declared)
        ]
        try:
            rule(trial)
        except Exception:  # the rule refuses this size too (or fails otherwise): not a fit
            continue
        return True
    return False


def _probe(
    net: ShapeGraph,
    node: Hashable,
    operands: list[tuple[int, ...]],
    values: Mapping[Hashable, Any],
    shapes: Mapping[Hashable, Shape | None],
) -> tuple[int, ...]:
    """The shape of forward's result on arrays of these shapes (an op with no shape rule)."""
    import numpy as np

    op = net.ops[node]
    for name, shape in zip(net.operands[node], operands, strict=True):
        if math.prod(shape) > PROBE_LIMIT:
            raise GraphError(
                f"node {node!r} (op {op.name!r}): operand {name!r} has shape {shapes[name]}; "
                f"op {op.name!r} has no shape rule, so its result's shape is found by running "
                f"its forward, which graphbp does only on operands of at most {PROBE_LIMIT:,} "
                f"elements; give {type(op).__qualname__} a method shape(self, *shapes, "
                "**attrs) that returns the result's shape"
            )
    arrays = get_backend("numpy").arrays("float64")

    def forward(given: list[tuple[int, ...]]) -> Any:
        if any(math.prod(shape) > PROBE_LIMIT for shape in given):
            raise ValueError("too large to probe")
        args = [
            values[name] if name in values else np.ones(shape)
            for name, shape in zip(net.operands[node], given, strict=True)
        ]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call_forward(op, arrays, args, net.attrs[node], node=node)

    try:
        out = forward(operands)
    except PluginError as exc:  # a run-time failure wrapped, or the result breaks the contract
        if exc.method and isinstance(exc.__cause__, ValueError | TypeError | IndexError):
            raise _mismatch(net, node, exc.__cause__, shapes, operands, forward) from None
        raise
    except GraphbpError as exc:  # an attribute the op rejects, e.g. an unknown activation
        raise GraphError(f"node {node!r} (op {op.name!r}): {exc}") from None
    return tuple(out.shape)


def _merge_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> Shape:
    if len(a) != len(b):
        return tuple(None for _ in a)
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))
