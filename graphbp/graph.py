"""Network: a validated nx.DiGraph of op nodes, with shapes inferred and a loss named."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import networkx as nx

from graphbp.errors import GraphbpError, GraphError, GraphFileError, article, show
from graphbp.io import dumps_strict, read_json, write_atomic
from graphbp.memory import gc_paused
from graphbp.op import LEAVES, OP, Op, Shape, signature_of
from graphbp.registry import default_backend, get_backend, get_op
from graphbp.shapes import infer_shapes

if TYPE_CHECKING:
    from graphbp.program import Program, Traversal

RESERVED = frozenset({"op", "shape", "scope", "source"})
"""Node attributes the schema owns; every other one on an op node is passed to the op.
``source`` is where the node's computation was written (``model.py:14``, set by
``from_jax``), drawn in its tooltip."""
LEAF_ATTRS = {
    "input": frozenset({"shape"}),
    "param": frozenset({"shape", "init"}),
    "const": frozenset({"value"}),
}
"""What each leaf kind may carry, besides ``scope``."""
INITS = ("glorot", "he", "normal", "uniform", "zeros", "ones")

MAX_NAME = 1000
"""The longest node name, scope or attribute key, in characters."""
TEXT_RULE = (
    f"a str of 1 to {MAX_NAME} characters with no control or format characters (such as "
    "newline or NUL) and no lone surrogates"
)
"""The rule of node names that are text, scopes and attribute keys, as messages state it."""
NAME_RULE = f"a node name is {TEXT_RULE}, or an int (not bool) of at most 64 bits"
"""The node-name rule, as error messages state it."""
GRAPH_FILE_LIMIT = 16 * 2**20
"""The largest graph file ``Network.from_json`` reads, in bytes: some 180,000 nodes as
``to_json`` writes a chain of them (parsed JSON takes up to about 30 times its size)."""
MAX_DEPTH = 64
"""The deepest nesting of lists and objects accepted in node-link data."""


class Network:
    """A validated network: the graph, its loss node, and what compile needs to plan a run.

    Validation costs what the graph costs to describe: shapes are inferred from the ops'
    shape rules, never by making arrays of the declared sizes.

    What it holds the graph to, besides the schema: every node name follows ``NAME_RULE`` (a
    str of 1 to 1000 characters without control or format characters or lone surrogates, or
    an int of at most 64 bits, not bool), and so do scopes and attribute keys (as text); no
    two names read alike (equal as text after Unicode NFKC normalisation: the int 5 and the
    str "5", "é" composed and decomposed, "x" and the full-width "ｘ");
    every shape, declared or inferred, has at most ``MAX_RANK`` axes and ``MAX_ELEMENTS``
    elements; a const's value is real numbers, NaN and ±inf allowed (a number, a rectangular
    nested list or an int/float array) that agrees with its declared shape;
    ``graph["output"]``, if given, names an op node.

    The network holds its own copy of the graph, attribute values made plain as JSON holds
    them (``plain_attrs``): NumPy int, float and bool scalars as Python numbers, tuples as
    lists (a shape stays a tuple), const arrays copied.

    Args:
        graph: an ``nx.DiGraph`` (or ``nx.MultiDiGraph``) following the graph schema.
        loss: the loss node; defaults to ``graph.graph["loss"]``.

    Raises:
        GraphError: the graph breaks the schema; the message names the node, op and fix.
        PluginError: an op's shape rule (or probed forward) breaks the plugin contract.
    """

    @gc_paused()
    def __init__(self, graph: nx.DiGraph, loss: Hashable | None = None) -> None:
        if not isinstance(graph, nx.DiGraph):
            raise GraphError(
                f"a network is an nx.DiGraph, got {type(graph).__name__}; "
                "build it with nx.DiGraph()"
            )
        copy = graph.copy()
        for _, data in copy.nodes(data=True):
            plain_attrs(data)
        self._graph: nx.DiGraph = nx.freeze(copy)
        _check_names(self._graph)
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
        _check_output_named(self._graph, self.kind)
        edges = _in_edges(self._graph)
        self.operands: dict[Hashable, tuple[Hashable, ...]] = {
            n: _operands(n, self.ops.get(n), edges[n], self._graph) for n in self.order
        }
        self.attrs: dict[Hashable, dict[str, Any]] = {
            n: checked_attrs(self._graph, n, self.kind[n], self.ops.get(n)) for n in self.order
        }
        """Each node's attributes besides op, shape and scope: an op node's are passed to its
        op as keyword arguments; a leaf's are its ``init`` or ``value``."""
        self.inputs = [n for n in self.order if self.kind[n] == "input"]
        self.params = [n for n in self.order if self.kind[n] == "param"]
        self.consts = [n for n in self.order if self.kind[n] == "const"]
        self.shapes: dict[Hashable, Shape | None] = infer_shapes(
            self, {n: const_array(n, self._graph.nodes[n]["value"]) for n in self.consts}
        )
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

    @property
    def output(self) -> Hashable | None:
        """The prediction node (whose value is compared with the target): ``graph["output"]``
        if set, else the first operand of a loss of op sse, mse or softmax_cross_entropy
        (:data:`LOSSES`) when that is an op node; None if neither names one."""
        loss = self.loss
        return output_node(
            self._graph.graph.get("output"), self.op_name(loss), self.operands[loss], self.kind
        )

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
        from graphbp.program import Program

        name = backend or default_backend() or "numpy"
        return Program(self, get_backend(name), dtype, check_finite, devices, traversal, strict)

    _display: ClassVar[Callable[[Network], dict[str, str]] | None] = None
    """How Jupyter shows a network (its diagram), set by graphbp.display: that module draws
    with graphbp.render, which imports this one, so this one cannot import it."""

    def __repr__(self) -> str:
        return (
            f"<Network {len(self.order)} nodes, loss={self.loss!r}, "
            f"params={_names(self.params)}, inputs={_names(self.inputs)}>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter's view: the diagram as SVG, or a note saying how to draw it (no Graphviz,
        or too large to lay out quickly); ``repr`` as plain text."""
        draw = Network._display
        return {"text/plain": repr(self)} if draw is None else draw(self)

    # ------------------------------------------------------------------ node-link JSON

    def to_dict(self) -> dict[str, Any]:
        """The graph as NetworkX node-link data, with the loss in ``graph["loss"]``; a NaN or
        infinity in a const's value as the text ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``
        (JSON has no such numbers)."""
        g = self._graph.copy()
        g.graph["loss"] = self.loss
        for node, attrs in g.nodes(data=True):
            _check_saveable(node, attrs)
            if hasattr(attrs.get("value"), "tolist"):  # an array (or NumPy scalar) as lists
                attrs["value"] = attrs["value"].tolist()
            if attrs.get("op") == "const" and "value" in attrs:
                attrs["value"] = _non_finite_as_text(attrs["value"])
        return dict(nx.node_link_data(g, edges="edges"))

    def to_json(self, path: str | Path) -> None:
        """Write the network as node-link JSON (:meth:`to_json_bytes`), atomically."""
        write_atomic(Path(path), self.to_json_bytes())

    def to_json_bytes(self) -> bytes:
        """The network as node-link JSON, as :meth:`to_json` writes it.

        Raises:
            GraphError: a graph, node or edge attribute JSON cannot hold (an object, NaN).
        """
        try:
            text = dumps_strict(self.to_dict(), default=_jsonable)
        except (TypeError, ValueError, RecursionError) as exc:  # e.g. a graph attribute
            raise GraphError(
                f"cannot save the network as JSON ({exc}); graph, node and edge attributes "
                "must be finite numbers, strings, lists or dicts of them"
            ) from None
        return text.encode()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Network:
        """Build a network from node-link data (as written by ``to_dict``): in a const's
        value, and nowhere else, the texts ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` are
        those numbers.

        Raises:
            GraphFileError: naming ``source``: the data is not node-link data of a valid
                network (not an object, nodes or edges not lists of objects, an id that breaks
                the node-name rule or is given twice, an edge to a missing node, ...).
        """
        try:
            if not isinstance(data, Mapping):
                raise GraphError(
                    f"expected a JSON object with 'nodes' and 'edges', got {_kind(data)}"
                )
            g = _node_link_graph(data)
        except GraphError as exc:
            raise GraphFileError(f"{source}: not NetworkX node-link data: {exc}") from None
        try:
            return cls(g)
        except GraphbpError as exc:
            raise GraphFileError(f"{source}: {exc}") from exc

    @classmethod
    def from_json(cls, path: str | Path) -> Network:
        """Load a network from node-link JSON. Loading never executes code.

        The file is read only if it is a regular file of at most ``GRAPH_FILE_LIMIT`` bytes
        (a FIFO, device or folder is refused before a byte is read).

        Raises:
            GraphFileError: naming the file (and the line and column where JSON gives one):
                the file is missing, not a regular file, too large, not UTF-8, not strict
                JSON (NaN or Infinity, a key twice in an object), nested too deeply, or not a
                valid network.
        """
        path = Path(path)
        data = read_json(
            path,
            what="graph file",
            limit=GRAPH_FILE_LIMIT,
            fix="a graph file is node-link JSON as Network.to_json writes it",
        )
        if not isinstance(data, dict):
            raise GraphFileError(
                f"{path}: expected a JSON object with 'nodes' and 'edges', got {_kind(data)}"
            )
        return cls.from_dict(data, source=str(path))


def _check_saveable(node: Hashable, attrs: Mapping[str, Any]) -> None:
    """Raise GraphError if a node attribute is an object that says it is not data (has a
    ``not_data`` reason, as an opaque node's JAX ``call`` does)."""
    for key, value in attrs.items():
        why = getattr(value, "not_data", None)
        if not isinstance(why, str):
            continue
        what = f"node {node!r} (op {attrs.get('op')!r}"
        for extra in ("primitive", "source"):
            if isinstance(attrs.get(extra), str):
                what += f", {extra} {attrs[extra]}"
        raise GraphError(
            f"cannot save the network: {what}) has attribute {key!r}, {show(value)}, and "
            f"{why}; keep the network in memory (or rewrite that part of the function with "
            "operations graphbp has ops for, `graphbp ops`)"
        )


def _names(nodes: list[Hashable], shown: int = 8) -> str:
    """A list of node names for a repr: the first ``shown`` (long ones cut), how many more."""
    more = f", … {len(nodes) - shown:,} more" if len(nodes) > shown else ""
    return f"[{', '.join(show(n) for n in nodes[:shown])}{more}]"


def _jsonable(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _kind(value: Any) -> str:
    """What a JSON value is, for messages: 'a list', 'an int', ..."""
    if value is None:
        return "null"
    names: dict[type, str] = {dict: "object", list: "list", str: "string"}
    return article(names.get(type(value), type(value).__name__))


def text_problem(text: str) -> str | None:
    """Why ``text`` breaks ``TEXT_RULE``, the rule of text names, scopes and attribute keys
    (as "a str of 1,001 characters"); None if it does not."""
    if not 1 <= len(text) <= MAX_NAME:
        return f"a str of {len(text):,} characters"
    if text.isascii() and text.isprintable():
        return None
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            what = "a lone surrogate" if "\ud800" <= ch <= "\udfff" else "a control character"
            if unicodedata.category(ch) == "Cf":
                what = "a format character"
            return f"a str with {what} (U+{ord(ch):04X}) at position {i}"
    return None


def scope_fix(scope: str) -> str | None:
    """How to fix a scope with an empty part (a leading, trailing or doubled "/": its group
    would have no name), as "write 'a/b'"; None if every part has a name."""
    parts = scope.split("/")
    if all(parts):
        return None
    kept = "/".join(p for p in parts if p)
    return f"scopes nest with '/' between names: write {show(kept)}" if kept else "drop it"


def name_problem(name: Any) -> str | None:
    """Why ``name`` breaks the node-name rule, ``NAME_RULE`` (as "a bool", "a list"); None
    if it does not."""
    if isinstance(name, bool):
        return "a bool"
    if isinstance(name, int):
        return None if -(2**63) <= name < 2**63 else "an int beyond 64 bits"
    if isinstance(name, str):
        return text_problem(name)
    return _kind(name)


def name_key(name: Hashable) -> str:
    """The text a node name reads as: ``str(name)`` in Unicode NFKC normal form. Two names
    with one key read alike (the int 5 and the str "5"; "é" composed and decomposed; "x" and
    the full-width "ｘ"), so a graph may not hold both. Look-alike letters of other scripts
    (Cyrillic "х", Latin "x") are different text and are not caught."""
    text = str(name)
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def plain_attrs(data: dict[str, Any]) -> None:
    """Make a node's attribute values plain, in place, as JSON would give them back: NumPy
    int, float and bool scalars (of at most 64 bits) as Python's, tuples as lists, nested
    lists and dicts copied, arrays copied (a network shares no mutable value with the graph
    it was made from); ``shape`` as a tuple. Anything else is left for validation."""
    for key, value in data.items():
        if value is None or type(value) in (str, int, float, bool):
            continue
        plain = _plain(value, key, 0)
        if key == "shape" and isinstance(plain, list):
            plain = tuple(plain)
        data[key] = plain


def _plain(value: Any, key: str, depth: int) -> Any:
    import numpy as np

    if type(value) in _SCALARS:
        return value
    if depth > MAX_DEPTH:
        raise GraphError(
            f"attribute {key!r} holds lists or dicts nested more than {MAX_DEPTH} levels deep; "
            "a graph file could not hold it"
        )
    if isinstance(value, np.generic) and value.dtype.kind in "biuf" and value.dtype.itemsize <= 8:
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v, key, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, key, depth + 1) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return np.array(value)
    return value


def _check_names(g: nx.DiGraph) -> None:
    """Hold every node name, scope and attribute key to the node-name rule, and names to
    distinct texts (the int 0 and the str "0" would be one key in params.npz, one label)."""
    texts: dict[str, Hashable] = {}
    for node, data in g.nodes(data=True):
        problem = name_problem(node)
        if problem is not None:
            raise GraphError(f"node {show(node)} has a name that is {problem}; {NAME_RULE}")
        text = name_key(node)
        if text in texts:
            raise GraphError(
                f"nodes {texts[text]!r} and {node!r} have names that read alike (equal as text "
                "after Unicode NFKC normalisation); names are saved and shown as text "
                "(params.npz, diagrams), so rename one"
            )
        texts[text] = node
        if "id" in data:
            raise GraphError(
                f"node {node!r} has an attribute 'id', the key node-link JSON gives the node's "
                "name, so it would not survive to_json; rename the attribute"
            )
        for key in data:
            problem = text_problem(key) if isinstance(key, str) else _kind(key)
            if problem is not None:
                raise GraphError(
                    f"node {node!r} has an attribute key {show(key)} that is {problem}; "
                    f"an attribute key is {TEXT_RULE}, as a text node name is"
                )
        for key in ("scope", "source"):
            text = data.get(key)
            if text is None:
                continue
            problem = text_problem(text) if isinstance(text, str) else _kind(text)
            if problem is not None:
                raise GraphError(
                    f"node {node!r} has {key}={show(text)}, {problem}; {article(key)} is "
                    f"{TEXT_RULE}, as a text node name is"
                )
            fix = scope_fix(text) if key == "scope" else None
            if fix is not None:
                raise GraphError(f"node {node!r} has scope={show(text)} with an empty part; {fix}")
    taken = ("source", "target", "key")  # node-link JSON's own keys for an edge
    for source, target, data in g.edges(data=True):
        clash = [k for k in taken if k in data]
        if clash:
            raise GraphError(
                f"edge {source!r} → {target!r} has an attribute {clash[0]!r}, a key node-link "
                "JSON gives the edge itself, so it would not survive to_json; rename the attribute"
            )


LOSSES = ("sse", "mse", "softmax_cross_entropy")
"""Loss ops whose first operand is the prediction (the network's default output)."""


def output_node(
    named: Hashable | None,
    loss_op: str,
    operands: Sequence[Hashable],
    kind: Mapping[Hashable, str],
) -> Hashable | None:
    """The one rule for a network's prediction node: ``named`` (``graph["output"]``) if
    given, else the loss's first operand if the loss's op is in :data:`LOSSES` and that
    operand is an op node; else None.

    Args:
        named: ``graph["output"]``, or None.
        loss_op: the loss node's op name; ``operands``: the loss node's operands.
        kind: each node's kind (``op`` or a leaf kind).
    """
    if named is not None:
        return named
    if loss_op in LOSSES and operands and kind[operands[0]] == OP:
        return operands[0]
    return None


def _check_output_named(g: nx.DiGraph, kind: Mapping[Hashable, str]) -> None:
    """``graph["output"]``, if given, names an op node (the prediction)."""
    output = g.graph.get("output")
    if output is None:
        return
    problem = name_problem(output)
    if problem is not None or output not in g:
        raise GraphError(
            f"graph['output'] is {show(output)}, which is not a node of the graph; name the "
            "prediction node (the op node whose value is compared with the target), or leave "
            "graph['output'] out"
        )
    if kind[output] != OP:
        raise GraphError(
            f"graph['output'] names {output!r}, {article(kind[output])} node; the output is the "
            "prediction, an op node computed from the inputs"
        )


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _check_depth(data: Any, depth: int, where: str) -> None:
    """Raise GraphError if lists and objects in ``data`` (itself at ``depth`` in the document)
    nest deeper than ``MAX_DEPTH``."""
    stack: list[tuple[Any, int]] = [(data, depth)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise GraphError(
                f"{where}: lists and objects nest more than {MAX_DEPTH} levels deep; node-link "
                "data of a network nests a few levels (a const value one more per axis)"
            )
        kind = type(value)
        if kind is str or kind is int or kind is float or value is None:
            continue  # most values: decided without an isinstance of an ABC
        if kind is dict or isinstance(value, Mapping):
            values = value.values()
        elif kind is list or isinstance(value, list | tuple):
            values = value
        else:
            continue
        stack.extend((v, depth + 1) for v in values if type(v) not in _SCALARS)


def _node_link_graph(data: Mapping[str, Any]) -> nx.DiGraph:
    """The graph described by node-link ``data``, each part checked as it is read."""
    directed = data.get("directed", True)
    if directed is not True:
        raise GraphError(
            f'"directed" is {show(directed)}; a network is a directed graph: "directed": true'
        )
    multigraph = data.get("multigraph", False)
    if not isinstance(multigraph, bool):
        raise GraphError(f'"multigraph" is {show(multigraph)}; give true or false')
    attrs = data.get("graph", {})
    if not isinstance(attrs, Mapping):
        raise GraphError(
            f'"graph" is {_kind(attrs)}; it holds the graph\'s attributes as an object, e.g. '
            '{"loss": "L", "output": "yhat"}'
        )
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise GraphError(
            f'"nodes" is {_kind(nodes) if "nodes" in data else "missing"}; give a list of '
            'objects, each with an "id" and an "op"'
        )
    key = "edges" if "edges" in data or "links" not in data else "links"
    edges = data.get(key, [])
    if not isinstance(edges, list):
        raise GraphError(
            f'"{key}" is {_kind(edges)}; give a list of objects, each with a "source" and a '
            '"target" (and an "arg" for ops of several operands)'
        )
    _check_depth(attrs, 2, '"graph"')
    g: nx.DiGraph = nx.MultiDiGraph() if multigraph else nx.DiGraph()
    g.graph.update(attrs)
    for i, item in enumerate(nodes):
        if not isinstance(item, Mapping) or "id" not in item:
            raise GraphError(
                f"nodes[{i}] is {_kind(item)}"
                f"{' without an id' if isinstance(item, Mapping) else ''}; each node is an "
                'object with an "id" and an "op"'
            )
        node = item["id"]
        problem = name_problem(node)
        if problem is not None:
            raise GraphError(f"nodes[{i}] has id {show(node)}, {problem}; {NAME_RULE}")
        if node in g:
            raise GraphError(f"nodes[{i}]: id {node!r} is given twice; node ids are unique")
        _check_depth(item, 3, f"nodes[{i}]")
        g.add_node(node)
        g.nodes[node].update((k, v) for k, v in item.items() if k != "id")
        if item.get("op") == "const" and "value" in item:
            g.nodes[node]["value"] = _non_finite_from_text(item["value"])
        if isinstance(item.get("shape"), list):
            g.nodes[node]["shape"] = tuple(item["shape"])
    for i, item in enumerate(edges):
        if not isinstance(item, Mapping):
            raise GraphError(
                f'{key}[{i}] is {_kind(item)}; each edge is an object with a "source" and a '
                '"target"'
            )
        ends = []
        for end in ("source", "target"):
            if end not in item:
                raise GraphError(f'{key}[{i}] has no "{end}"; give the id of a node')
            if name_problem(item[end]) is not None or item[end] not in g:
                raise GraphError(
                    f"{key}[{i}] has {end} {show(item[end])}, which is not the id of a node"
                )
            ends.append(item[end])
        u, v = ends
        _check_depth(item, 3, f"{key}[{i}]")
        extra = {k: w for k, w in item.items() if k not in ("source", "target", "key")}
        if isinstance(extra.get("arg"), list):
            extra["arg"] = tuple(extra["arg"])
        if multigraph:
            k = item.get("key")
            if k is not None and (name_problem(k) is not None or g.has_edge(u, v, k)):
                raise GraphError(
                    f"{key}[{i}] ({u!r} → {v!r}) has key {show(k)}; an edge key is a str or "
                    "int, unique among the edges between the same two nodes"
                )
            k = g.add_edge(u, v, key=k)
            g.edges[u, v, k].update(extra)
        else:
            if g.has_edge(u, v):
                raise GraphError(
                    f"{key}[{i}]: the edge {u!r} → {v!r} is given twice; a value used in "
                    'several operand positions gets one edge with "arg": [0, 1], or set '
                    '"multigraph": true'
                )
            g.add_edge(u, v)
            g.edges[u, v].update(extra)
    return g


NON_FINITE_TEXT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
"""How node-link data writes a NaN or infinity inside a const's value (JSON has no such
numbers), and the number each text is."""


def _non_finite_as_text(value: Any) -> Any:
    """A const's (plain) value with each NaN or infinite float as its ``NON_FINITE_TEXT``."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        return [_non_finite_as_text(v) for v in value]
    return value


def _non_finite_from_text(value: Any) -> Any:
    """A const's value as read from node-link data, each ``NON_FINITE_TEXT`` as its number
    (any other text is left for validation to refuse; nesting is bounded by ``MAX_DEPTH``)."""
    if isinstance(value, str):
        return NON_FINITE_TEXT.get(value, value)
    if isinstance(value, list):
        return [_non_finite_from_text(v) for v in value]
    return value


def _check_loss_named(g: nx.DiGraph, loss: Hashable | None) -> Hashable:
    loss = loss if loss is not None else g.graph.get("loss")
    if loss is None:
        raise GraphError("no loss node named; pass loss=... to Network or set graph['loss']")
    if name_problem(loss) is not None or loss not in g:
        sinks = sorted(map(str, (n for n in g if g.out_degree(n) == 0)))
        more = f" and {len(sinks) - 10:,} more" if len(sinks) > 10 else ""
        raise GraphError(
            f"loss node {show(loss)} is not in the graph; nodes with no consumers are "
            f"{sinks[:10]}{more}"
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
    if not isinstance(name, str):
        raise GraphError(
            f"node {node!r} has op={show(name)}, {_kind(name)}; op is the name of an op "
            f"(see `graphbp ops`) or a leaf kind ({', '.join(LEAVES)})"
        )
    if not name.isidentifier() or len(name) > 100:
        raise GraphError(
            f"node {node!r}: unknown op {show(name)}; op names are identifiers (see `graphbp "
            f"ops`), or a leaf kind ({', '.join(LEAVES)})"
        )
    return name if name in LEAVES else OP


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
            if not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos < arity:
                raise GraphError(
                    f"edge {source!r} → {node!r} (op {op.name!r}) has arg={show(pos)}; "
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


def checked_attrs(g: nx.DiGraph, node: Hashable, kind: str, op: Op | None) -> dict[str, Any]:
    """The attributes of ``node`` in ``g`` that go to its op (all but op, shape and scope),
    checked against what the op (``op``) or the leaf kind (``kind``) takes.

    Raises:
        GraphError: a leaf lacks what its kind needs, or the node has an attribute its op
            does not take (or one named like an argument graphbp passes the op itself).
    """
    given = {k: v for k, v in g.nodes[node].items() if k not in RESERVED}
    if op is None:
        allowed = LEAF_ATTRS[kind]
        _check_leaf(node, kind, g.nodes[node])
    else:
        sig = signature_of(op)
        allowed = sig.attrs if not sig.any_attrs else frozenset(given)
        clash = sorted(set(given) & sig.taken) if sig.any_attrs else []
        if clash:
            raise GraphError(
                f"node {node!r} (op {op.name!r}) has attribute(s) {clash}, named like the "
                f"arguments graphbp passes the op itself ({', '.join(sorted(sig.taken))}); "
                "rename them"
            )
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise GraphError(
            f"node {node!r} (op {(op.name if op else kind)!r}) has attribute(s) {unknown} that "
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
    if kind == "const" and "value" not in data:
        raise GraphError(f"const node {node!r} has no value; give it value=... (a number or list)")
    init = data.get("init", "glorot")
    if kind == "param" and not (
        (_is_number(init) and math.isfinite(init)) or (isinstance(init, str) and init in INITS)
    ):
        raise GraphError(
            f"param node {node!r} has init={show(init)}; use a finite number or one of "
            f"{', '.join(INITS)}"
        )


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a number JSON holds exactly: an int or a float (Python's or a
    NumPy scalar of at most 64 bits) that converts to a float; not a bool, a Fraction or a
    long double, which ``to_json`` could not write back."""
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, np.integer | np.floating) and value.dtype.itemsize > 8:
        return False
    if not isinstance(value, int | float | np.integer | np.floating):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def const_array(node: Hashable, value: Any, subject: str | None = None) -> Any:
    """A const's value as a float64 NumPy array, or a GraphError naming the node (or what
    ``subject`` says, such as "operand 1 of 'add1' (op 'add') is VALUE").

    The value is a real number (not a bool), a (nested, rectangular) list of them, or a NumPy
    array of ints or floats; NaN and ±inf are allowed (a causal mask's ``-inf``; graph files
    write them as text, see ``Network.to_dict``).
    """
    import numpy as np

    subject = subject or f"const node {node!r} has value={show(value)}"
    fix = (
        "give it numbers: a number, a rectangular nested list of them or an array of ints or floats"
    )
    bad = None
    if isinstance(value, np.ndarray | np.generic):
        if value.dtype.kind not in "iuf" or value.dtype.itemsize > 8:
            what = "a NumPy scalar" if isinstance(value, np.generic) else "an array"
            bad = f"{what} of dtype {value.dtype}"
    elif isinstance(value, list | tuple):
        stack: list[Any] = [value]
        while stack and bad is None:
            item = stack.pop()
            if isinstance(item, list | tuple):
                stack.extend(item)
            elif not _is_number(item) and not (
                isinstance(item, np.ndarray)
                and item.dtype.kind in "iuf"
                and item.dtype.itemsize <= 8
            ):
                bad = f"a list holding {_kind(item)} ({show(item, 30)})"
    elif not _is_number(value):
        bad = _kind(value)
    if bad is not None:
        raise GraphError(f"{subject}; {fix} (not {bad})")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        problem = "a ragged list" if "inhomogeneous" in str(exc) else str(exc)
        raise GraphError(f"{subject}; {fix} (not {problem})") from None
    if 0 in array.shape[:-1] and array.shape.index(0) < array.ndim - 1:
        raise GraphError(
            f"{subject}, of shape {array.shape}, which saves as the list "
            f"{show(array.tolist())} and would load back with another shape; a const with no "
            "elements may have a zero-length axis only last"
        )
    return array
