"""Network: a validated nx.DiGraph of op nodes, with shapes inferred and a loss named."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from graphbp.errors import GraphbpError, GraphError, GraphFileError, PluginError
from graphbp.io import write_atomic
from graphbp.memory import gc_paused
from graphbp.op import LEAVES, Arrays, Op, Shape, call_forward, signature_of
from graphbp.registry import get_backend, get_op

if TYPE_CHECKING:
    from graphbp.program import Program, Traversal

RESERVED = frozenset({"op", "shape", "scope"})
"""Node attributes the schema owns; every other one on an op node is passed to the op."""
LEAF_ATTRS = {
    "input": frozenset({"shape"}),
    "param": frozenset({"shape", "init"}),
    "const": frozenset({"value"}),
}
"""What each leaf kind may carry, besides ``scope``."""
OP = "op"
"""The kind of every node that is not a leaf: an op plugin computes it."""
INITS = ("glorot", "he", "normal", "uniform", "zeros", "ones")


class Network:
    """A validated network: the graph, its loss node, and what compile needs to plan a run.

    Args:
        graph: an ``nx.DiGraph`` (or ``nx.MultiDiGraph``) following the graph schema.
        loss: the loss node; defaults to ``graph.graph["loss"]``.

    Raises:
        GraphError: the graph breaks the schema; the message names the node, op and fix.
    """

    @gc_paused()
    def __init__(self, graph: nx.DiGraph, loss: Hashable | None = None) -> None:
        if not isinstance(graph, nx.DiGraph):
            raise GraphError(
                f"a network is an nx.DiGraph, got {type(graph).__name__}; "
                "build it with nx.DiGraph()"
            )
        self._graph: nx.DiGraph = nx.freeze(graph.copy())
        self.loss: Hashable = _check_loss_named(self._graph, loss)
        self.order: list[Hashable] = _topological_order(self._graph)
        self.index: dict[Hashable, int] = {n: i for i, n in enumerate(self.order)}
        """Each node's position in ``order``."""
        self.kind: dict[Hashable, str] = {n: _kind_of(self._graph, n) for n in self.order}
        """Each node's kind: a leaf kind (``input``, ``param``, ``const``) or ``op``."""
        self.ops: dict[Hashable, Op] = {
            n: _op_of(self._graph, n) for n in self.order if self.kind[n] == OP
        }
        """The op plugin of each op node (leaves have none)."""
        edges = _in_edges(self._graph)
        self.operands: dict[Hashable, tuple[Hashable, ...]] = {
            n: _operands(n, self.ops.get(n), edges[n], self._graph) for n in self.order
        }
        self.attrs: dict[Hashable, dict[str, Any]] = {
            n: _attrs(self._graph, n, self.kind[n], self.ops.get(n)) for n in self.order
        }
        """Each node's attributes besides op, shape and scope: an op node's are passed to its
        op as keyword arguments; a leaf's are its ``init`` or ``value``."""
        self.inputs = [n for n in self.order if self.kind[n] == "input"]
        self.params = [n for n in self.order if self.kind[n] == "param"]
        self.consts = [n for n in self.order if self.kind[n] == "const"]
        self.shapes: dict[Hashable, Shape | None] = _infer_shapes(self)
        loss_shape = self.shapes[self.loss]
        if loss_shape is not None and loss_shape != ():
            raise GraphError(
                f"loss node {self.loss!r} (op {self.op_name(self.loss)!r}) has shape "
                f"{loss_shape}; a loss must be a scalar: reduce it with a sum, mean or sse node"
            )

    @property
    def graph(self) -> nx.DiGraph:
        """The (frozen) graph this network was built from."""
        return self._graph

    def op_name(self, node: Hashable) -> str:
        """The ``op`` attribute of ``node``: its op's name, or its leaf kind."""
        return self.ops[node].name if node in self.ops else self.kind[node]

    def compile(
        self,
        backend: str | None = None,
        dtype: str = "float64",
        check_finite: bool = False,
        devices: Any = None,
        traversal: Traversal | None = None,
        strict: bool = False,
    ) -> Program:
        """Plan the network for a backend; see ``Program``.

        Args:
            backend: a backend name (``graphbp.backends()``); default ``$GRAPHBP_BACKEND``
                or ``"numpy"``.
            dtype: ``"float64"`` or ``"float32"``.
            check_finite: name the first node whose value or gradient is NaN or Inf.
            devices: JAX only: a number of devices, a list of devices or a
                ``jax.sharding.Mesh``; each batch is split across them (data parallel).
            traversal: ``"generated"`` or ``"interpreted"``; default: chosen by backend and
                size (see ``Program``).
            strict: hand op plugins read-only arrays (every value, ``out`` and ``g``), so a
                forward or vjp that writes into one (``x *= 2``) raises a PluginError naming
                its op and node instead of silently corrupting another branch's value or
                gradient. For testing plugins: it costs a view per value and step (the
                default is as fast as before). A no-op on JAX, whose arrays are immutable.
        """
        import os

        from graphbp.program import Program

        name = backend or os.environ.get("GRAPHBP_BACKEND") or "numpy"
        return Program(self, get_backend(name), dtype, check_finite, devices, traversal, strict)

    def __repr__(self) -> str:
        return (
            f"<Network {len(self.order)} nodes, loss={self.loss!r}, "
            f"params={self.params!r}, inputs={self.inputs!r}>"
        )

    # ------------------------------------------------------------------ node-link JSON

    def to_dict(self) -> dict[str, Any]:
        """The graph as NetworkX node-link data, with the loss in ``graph["loss"]``."""
        g = self._graph.copy()
        g.graph["loss"] = self.loss
        for _, attrs in g.nodes(data=True):
            if "value" in attrs:
                attrs["value"] = _jsonable(attrs["value"])
        return dict(nx.node_link_data(g, edges="edges"))

    def to_json(self, path: str | Path) -> None:
        """Write the network as node-link JSON, atomically."""
        text = json.dumps(self.to_dict(), indent=1, default=_jsonable)
        write_atomic(Path(path), text.encode())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Network:
        """Build a network from node-link data (as written by ``to_dict``)."""
        data = {"directed": True, "multigraph": False, **data}  # graphbp's defaults
        try:
            g = nx.node_link_graph(data, edges="edges")
        except (AttributeError, KeyError, TypeError, ValueError, nx.NetworkXError) as exc:
            raise GraphFileError(
                f"{source}: not NetworkX node-link data ({type(exc).__name__}: {exc}); "
                "it needs 'nodes' (each with 'id' and 'op') and 'edges' (each with "
                "'source' and 'target')"
            ) from exc
        for _, attrs in g.nodes(data=True):
            if isinstance(attrs.get("shape"), list):
                attrs["shape"] = tuple(attrs["shape"])
        for *_, attrs in g.edges(data=True):
            if isinstance(attrs.get("arg"), list):
                attrs["arg"] = tuple(attrs["arg"])
        try:
            return cls(g)
        except GraphbpError as exc:
            raise GraphFileError(f"{source}: {exc}") from exc

    @classmethod
    def from_json(cls, path: str | Path) -> Network:
        """Load a network from node-link JSON. Loading never executes code.

        Raises:
            GraphFileError: the file is missing, not JSON, or not a valid network.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GraphFileError(f"{path}: cannot read graph file ({exc.strerror})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GraphFileError(
                f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})"
            ) from exc
        if not isinstance(data, dict):
            raise GraphFileError(f"{path}: expected a JSON object with 'nodes' and 'edges'")
        return cls.from_dict(data, source=str(path))


def _jsonable(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _check_loss_named(g: nx.DiGraph, loss: Hashable | None) -> Hashable:
    loss = loss if loss is not None else g.graph.get("loss")
    if loss is None:
        raise GraphError("no loss node named; pass loss=... to Network or set graph['loss']")
    if loss not in g:
        raise GraphError(
            f"loss node {loss!r} is not in the graph; nodes with no consumers are "
            f"{sorted(map(str, (n for n in g if g.out_degree(n) == 0)))}"
        )
    return loss


def _topological_order(g: nx.DiGraph) -> list[Hashable]:
    try:
        return list(nx.topological_sort(g))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, *_ in nx.find_cycle(g)]
        path = " → ".join(map(repr, [*cycle, cycle[0]]))
        raise GraphError(
            f"the graph has a cycle: {path}; a network must be a DAG, so remove one of "
            "these edges (reuse a value by fanning it out instead)"
        ) from None


def _kind_of(g: nx.DiGraph, node: Hashable) -> str:
    """The node's kind, from its ``op`` attribute: a leaf kind or ``op``."""
    name = g.nodes[node].get("op")
    if name is None:
        raise GraphError(
            f"node {node!r} has no 'op' attribute; give it one, e.g. "
            f"g.add_node({node!r}, op='input')"
        )
    return name if isinstance(name, str) and name in LEAVES else OP


def _op_of(g: nx.DiGraph, node: Hashable) -> Op:
    try:
        return get_op(str(g.nodes[node]["op"]))
    except GraphbpError as exc:
        raise type(exc)(f"node {node!r}: {exc}") from exc


def _in_edges(g: nx.DiGraph) -> dict[Hashable, list[tuple[Hashable, Any, dict[str, Any]]]]:
    """Every node's incoming edges as (source, target, data), one per edge of a multigraph."""
    edges: dict[Hashable, list[tuple[Hashable, Any, dict[str, Any]]]] = {n: [] for n in g}
    for source, target, data in g.edges(data=True):
        edges[target].append((source, target, data))
    return edges


def _operands(
    node: Hashable, op: Op | None, edges: list[tuple[Hashable, Any, dict[str, Any]]], g: nx.DiGraph
) -> tuple[Hashable, ...]:
    """The node's operands in argument order, from the ``arg`` attribute of its in-edges."""
    if op is None:
        if edges:
            raise GraphError(
                f"node {node!r} (op {g.nodes[node]['op']!r}) is a leaf but has incoming edges "
                f"from {[u for u, *_ in edges]}; leaves take no operands, so remove those edges"
            )
        return ()
    arity = signature_of(op).arity
    slots: dict[int, Hashable] = {}
    for source, _, data in edges:
        positions = data.get("arg")
        if positions is None:
            if len(edges) != 1 or arity != 1:
                raise GraphError(
                    f"edge {source!r} → {node!r} (op {op.name!r}) has no 'arg'; with "
                    f"{arity} operands every incoming edge needs arg=0..{arity - 1}"
                )
            positions = 0
        for pos in positions if isinstance(positions, tuple) else (positions,):
            if not isinstance(pos, int) or not 0 <= pos < arity:
                raise GraphError(
                    f"edge {source!r} → {node!r} (op {op.name!r}) has arg={pos!r}; "
                    f"{op.name!r} takes operands 0..{arity - 1}"
                )
            if pos in slots:
                raise GraphError(
                    f"node {node!r} (op {op.name!r}): operand {pos} is given twice, by "
                    f"{slots[pos]!r} and {source!r}; give each incoming edge its own arg"
                )
            slots[pos] = source
    missing = [i for i in range(arity) if i not in slots]
    if missing:
        raise GraphError(
            f"node {node!r} (op {op.name!r}) takes {arity} operand(s) but operand(s) "
            f"{missing} have no incoming edge; add g.add_edge(src, {node!r}, arg={missing[0]})"
        )
    return tuple(slots[i] for i in range(arity))


def _attrs(g: nx.DiGraph, node: Hashable, kind: str, op: Op | None) -> dict[str, Any]:
    """The node's attributes besides op, shape and scope, checked against what it takes."""
    given = {k: v for k, v in g.nodes[node].items() if k not in RESERVED}
    if op is None:
        allowed = LEAF_ATTRS[kind]
        _check_leaf(node, kind, g.nodes[node])
    else:
        sig = signature_of(op)
        allowed = sig.attrs if not sig.any_attrs else frozenset(given)
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise GraphError(
            f"node {node!r} (op {op.name if op else kind!r}) has attribute(s) {unknown} that "
            f"it does not take; it accepts {sorted(allowed) or 'none'} (and {sorted(RESERVED)})"
        )
    return given


def _check_leaf(node: Hashable, kind: str, data: Mapping[str, Any]) -> None:
    shape = data.get("shape")
    if kind == "param" and shape is None:
        raise GraphError(
            f"param node {node!r} has no shape; give it one, e.g. shape=(8, 16), so it can "
            "be initialised"
        )
    if shape is not None:
        ok = isinstance(shape, tuple) and all(
            (isinstance(d, int) and d >= 0) or (d is None and kind == "input") for d in shape
        )
        if not ok:
            what = "ints and None" if kind == "input" else "non-negative ints"
            raise GraphError(
                f"node {node!r} (op {kind!r}) has shape={shape!r}; a shape is a tuple of "
                f"{what}, e.g. (None, 8)"
            )
    if kind == "const":
        import numpy as np

        try:
            np.asarray(data["value"], dtype=np.float64)
        except KeyError:
            raise GraphError(
                f"const node {node!r} has no value; give it value=... (a number or list)"
            ) from None
        except (TypeError, ValueError):
            raise GraphError(
                f"const node {node!r} has value={data['value']!r:.60}; give it numbers "
                "(a number, a nested list or an array)"
            ) from None
    init = data.get("init", "glorot")
    if kind == "param" and not (isinstance(init, int | float) or init in INITS):
        raise GraphError(
            f"param node {node!r} has init={init!r}; use a number or one of {', '.join(INITS)}"
        )


def _infer_shapes(net: Network) -> dict[Hashable, Shape | None]:
    """Infer every node's static shape by running forward on probes; None if unknown.

    Inputs' None axes get two different probe sizes; an output axis that follows them is
    None, one that does not is static. A node none of whose operands depends on a None axis
    is probed once. A forward that raises is a shape mismatch.
    """
    import numpy as np

    arrays = get_backend("numpy").arrays("float64")
    probes: dict[Hashable, tuple[Any, Any]] = {}
    shapes: dict[Hashable, Shape | None] = {}
    with np.errstate(all="ignore"):
        for node in net.order:
            kind, data = net.kind[node], net.graph.nodes[node]
            a: Any
            b: Any
            if kind == "const":
                a = b = np.asarray(data["value"], dtype=np.float64)
            elif kind != OP:
                shape = data.get("shape")
                a = b = (
                    None if shape is None else np.ones(tuple(2 if d is None else d for d in shape))
                )
                if shape is not None and None in shape:
                    b = np.ones(tuple(3 if d is None else d for d in shape))
            else:
                pairs = [probes[x] for x in net.operands[node]]
                if any(x is None for x, _ in pairs):
                    a = b = None
                else:
                    a = _probe(net, node, arrays, [x for x, _ in pairs], shapes)
                    same = all(x is y for x, y in pairs)
                    b = a if same else _probe(net, node, arrays, [y for _, y in pairs], shapes)
            probes[node] = a, b
            shapes[node] = None if a is None else _merge_shapes(a.shape, b.shape)
            declared, inferred = data.get("shape"), shapes[node]
            if kind != OP or declared is None or inferred is None:
                continue
            if not _shapes_agree(inferred, declared):
                raise GraphError(
                    f"node {node!r} (op {net.op_name(node)!r}) declares shape {declared} but "
                    f"its operands give {inferred}; fix the declared shape or the operands"
                )
    return shapes


def _probe(
    net: Network, node: Hashable, arrays: Arrays, args: list[Any], shapes: Mapping[Any, Any]
) -> Any:
    op = net.ops[node]
    try:
        try:
            return call_forward(op, arrays, args, net.attrs[node], node=node)
        except PluginError as wrapped:  # a forward that raised comes wrapped: unwrap it
            cause = wrapped.__cause__
            if wrapped.method and isinstance(cause, ValueError | TypeError | IndexError):
                raise cause from None
            raise  # the result breaks the contract: the plugin's fault, named
    except PluginError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        operands = ", ".join(f"{name!r} {shapes[name]}" for name in net.operands[node])
        raise GraphError(
            f"shape mismatch at node {node!r} (op {op.name!r}): operands {operands} do not fit "
            f"({exc}); fix the shapes of those operands"
        ) from None
    except GraphbpError as exc:  # an attribute the op rejects, e.g. an unknown activation
        raise GraphError(f"node {node!r} (op {op.name!r}): {exc}") from None
    except Exception as exc:
        raise PluginError(
            f"op {op.name!r} at node {node!r}: forward raised {type(exc).__name__}: {exc} on "
            f"operands of shapes {[a.shape for a in args]}; fix the plugin {type(op).__qualname__}"
        ) from exc


def _merge_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> Shape:
    if len(a) != len(b):
        return tuple(None for _ in a)
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))


def _shapes_agree(inferred: Shape, declared: Shape) -> bool:
    """Whether two static shapes can describe the same value (None axes match anything)."""
    return len(inferred) == len(declared) and all(
        d is None or a is None or a == d for a, d in zip(inferred, declared, strict=True)
    )
