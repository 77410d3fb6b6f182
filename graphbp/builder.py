"""Builder: write a network as code (operators, layers, losses) and get the nx.DiGraph of the
graph schema back, node for node what a hand-built one would hold."""

from __future__ import annotations

import numbers
import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import networkx as nx

from graphbp.errors import GraphError, article, show
from graphbp.graph import (
    NAME_RULE,
    TEXT_RULE,
    Network,
    checked_attrs,
    const_array,
    name_key,
    name_problem,
    output_node,
    plain_attrs,
    scope_fix,
    text_problem,
)
from graphbp.op import LEAVES, OP, Op, Shape, signature_of
from graphbp.registry import get_op
from graphbp.shapes import Pair, infer_node

Name = str | int
"""A node name: a str, or an int (see ``graphbp.graph.NAME_RULE``)."""

_TRAILING_NUMBER = re.compile(r"[0-9]+\Z")


class Value:
    """A node of a graph being built: what ``Builder`` methods and operators return.

    Operators make op nodes: ``a + b`` (add), ``a - b`` (sub), ``a * b`` (mul), ``a / b``
    (div), ``a @ b`` (matmul), ``-a`` (neg) and ``a ** 2`` (square), with ``a`` as operand 0.
    A Python number or NumPy array (or an array of another library that converts to one,
    such as a JAX array) on either side becomes a const node. Values compare and hash by
    identity; their attributes are read-only.

    Attributes:
        name: the node's name in the graph.
        op: the node's ``op``: an op name or a leaf kind (input, param, const).
        shape: the inferred shape (None for an axis of any size), or None if unknown.
    """

    __slots__ = ("_builder", "_name", "_op", "_shape")
    __array_ufunc__ = None  # NumPy defers to the reflected operator: array + value works

    def __init__(self, builder: Builder, name: Name, op: str, shape: Shape | None) -> None:
        self._builder = builder
        self._name = name
        self._op = op
        self._shape = shape

    @property
    def name(self) -> Name:
        """The node's name in the graph."""
        return self._name

    @property
    def op(self) -> str:
        """The node's ``op``: an op name or a leaf kind (input, param, const)."""
        return self._op

    @property
    def shape(self) -> Shape | None:
        """The inferred shape (None for an axis of any size), or None if unknown."""
        return self._shape

    def __repr__(self) -> str:
        return f"Value({self.name!r}, op={self.op!r}, shape={self.shape!r})"

    def __bool__(self) -> bool:
        raise GraphError(
            f"value {show(self.name)} (op {self.op!r}) is a node of the graph being built, with "
            "no value yet, so it is neither true nor false; a branch (if, and, or, while) on it "
            "cannot become part of the graph: compute both sides and combine them with ops"
        )

    def __add__(self, other: object) -> Value:
        return self._builder.op("add", self, other)

    def __radd__(self, other: object) -> Value:
        return self._builder.op("add", other, self)

    def __sub__(self, other: object) -> Value:
        return self._builder.op("sub", self, other)

    def __rsub__(self, other: object) -> Value:
        return self._builder.op("sub", other, self)

    def __mul__(self, other: object) -> Value:
        return self._builder.op("mul", self, other)

    def __rmul__(self, other: object) -> Value:
        return self._builder.op("mul", other, self)

    def __truediv__(self, other: object) -> Value:
        return self._builder.op("div", self, other)

    def __rtruediv__(self, other: object) -> Value:
        return self._builder.op("div", other, self)

    def __matmul__(self, other: object) -> Value:
        return self._builder.op("matmul", self, other)

    def __rmatmul__(self, other: object) -> Value:
        return self._builder.op("matmul", other, self)

    def __neg__(self) -> Value:
        return self._builder.op("neg", self)

    def __pow__(self, exponent: object, modulo: object = None) -> Value:
        if modulo is not None:
            raise GraphError(
                f"pow({self.name!r}, {show(exponent)}, {show(modulo)}): no op computes a power "
                "modulo a number; drop the modulus (x ** 2 is op square)"
            )
        if _is_two(exponent):
            return self._builder.op("square", self)
        raise GraphError(
            f"{self.name!r} ** {show(exponent)}: only ** 2 has an op (square); write other "
            "powers as products (x * x * x), or register an op and call b.op(NAME, x)"
        )

    def __rpow__(self, base: object) -> Value:
        raise GraphError(
            f"{show(base)} ** {self.name!r}: no op raises to a value's power; for e ** x use "
            "b.op('exp', x), or register an op and call b.op(NAME, x)"
        )


def _is_two(exponent: object) -> bool:
    """Whether ``exponent`` is the number 2 (a NumPy scalar or 0-d array too), not a bool."""
    import numpy as np

    if isinstance(exponent, np.ndarray) and exponent.ndim == 0 and exponent.dtype.kind in "iuf":
        exponent = exponent.item()
    if isinstance(exponent, bool | np.bool_) or not isinstance(exponent, numbers.Real):
        return False
    return bool(exponent == 2)


class _Draft:
    """The graph being built, with what shape inference reads of it (see ``ShapeGraph``)."""

    def __init__(self) -> None:
        self.graph = nx.DiGraph()
        self.kind: dict[Hashable, str] = {}
        self.ops: dict[Hashable, Op] = {}
        self.operands: dict[Hashable, tuple[Hashable, ...]] = {}
        self.attrs: dict[Hashable, dict[str, Any]] = {}

    def op_name(self, node: Hashable) -> str:
        return self.ops[node].name if node in self.ops else self.kind[node]


class Builder:
    """Build a network as code; ``network(loss)`` returns it as a ``gb.Network``.

    The textbook network, node for node the graph ``gb.seed_network(10, 16, 1)`` returns::

        b = gb.Builder()
        x, y = b.input("x", (None, 10)), b.input("y", (None, 1))
        h1 = b.dense(x, 16, "sigmoid", name="h1")   # creates W1, b1
        h2 = b.dense(h1, 16, "sigmoid", name="h2")  # W2, b2
        yhat = b.dense(h2, 1, None, name="yhat")    # W3, b3
        net = b.network(b.sse(yhat, y, name="L"))

    Every method and operator adds its nodes at once (one for most; ``dense`` adds three, the
    layer and its W and b; a number or array operand adds a const node too) and infers their
    shapes with the ops' shape rules, so a mistake (an unknown op or attribute, operands that
    do not fit) is an error on the line that makes it, naming the node.

    Names. A name given (``name=``) is used as is: it follows the node-name rule and no node
    has it or a name that reads alike (see ``graphbp.graph.name_key``); a clash is an error.
    An unnamed node is named after its op and the first number from 1 whose name is free:
    ``add1``, ``matmul1``, ``const1``, ``sse1``.

    Dense layers. A layer whose name ends in digits (``h1``, ``fc2``, ``h01``, the int 5)
    names its parameters with those digits: ``W1``/``b1``, ``W2``/``b2``, ``W01``/``b01``,
    ``W5``/``b5``, and is layer number int(digits). Any other named layer (``yhat``,
    ``out``) takes the number after the highest an earlier layer took (1 for the first), so
    name layers in order: ``yhat`` before ``h1`` takes W1 and b1 itself, and ``h1`` then
    finds them taken. An unnamed layer takes the first number above the highest so far whose
    ``hn``, ``Wn`` and ``bn`` are all free, and is named ``hn``. ``params=("W_out",
    "b_out")`` names a layer's parameters instead. A layer and its parameters need three
    different names (a layer named ``W1`` would be its own weight: an error). Scopes do not
    change names.

    Scopes. Nodes made inside ``with b.scope("block1"):`` get the attribute
    ``scope="block1"``, which ``gb.render`` draws as a cluster (or one box with
    ``scopes="collapse"``); nested scopes join with ``/`` (``"enc/block1"``).
    """

    def __init__(self) -> None:
        self._draft = _Draft()
        self._concrete: dict[Hashable, Pair | None] = {}
        self._shapes: dict[Hashable, Shape | None] = {}
        self._values: dict[Hashable, Any] = {}
        """Each const's value as a float64 array (what shape inference reads)."""
        self._texts: dict[str, Hashable] = {}
        """Every name by the text it reads as (``name_key``): 1 and "1" cannot both be names."""
        self._next: dict[str, int] = {}
        """Per op, a number below which every automatic name is taken."""
        self._layers = 0
        """The highest number a dense layer has taken."""
        self._scopes: list[str] = []

    # ------------------------------------------------------------------ leaves

    def input(self, name: Name, shape: Sequence[int | None] | None = None) -> Value:
        """An input node, fed at run time; ``shape`` may use None for an axis of any size
        (``(None, 10)``: a batch of rows of 10). Without a shape, what is computed from it
        has no known shape (and ``dense`` cannot read its width)."""
        data = {} if shape is None else {"shape": shape}
        return self._add(self._named(name), "input", (), data)

    def param(self, name: Name, shape: Sequence[int], init: str | float | None = None) -> Value:
        """A trainable parameter of ``shape``; ``init`` is one of glorot (the default for
        matrices), zeros (for vectors), he, normal, uniform, ones, or a finite number."""
        data: dict[str, Any] = {"shape": shape}
        if init is not None:
            data["init"] = init
        return self._add(self._named(name), "param", (), data)

    def const(self, value: Any, name: Name | None = None) -> Value:
        """A constant: a finite number, a (nested, rectangular) list of them or an array of
        ints or floats: a NumPy array, or another library's that converts to one (a JAX
        array), copied: changing the array afterwards changes nothing."""
        node = self._auto("const") if name is None else self._named(name)
        return self._const(node, value)

    # ------------------------------------------------------------------ ops

    def op(
        self,
        op: str,
        /,
        *operands: object,
        name: Name | None = None,
        attrs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Value:
        """A node of the registered op ``op`` (a plugin's too): ``b.op("sum", h, axis=0)``.

        Operands are Values of this builder, numbers or arrays (made const nodes, see
        ``const``); keyword arguments are the node's attributes, passed to the op as keyword
        arguments (``shape=`` declares the result's shape, checked against the inferred one).
        NumPy ints, floats and bools in them are stored as Python's, tuples as lists (as a
        graph file gives them back). An attribute named ``name`` or ``attrs``, which are this
        method's own keywords, goes in ``attrs={"name": ...}``.

        Raises:
            GraphError: an unknown op (``gb.ops()`` lists them), a leaf kind, the wrong
                number of operands, an operand that is none of the above, an attribute the
                op does not take, operands whose shapes do not fit, or a name that is taken.
        """
        if not isinstance(op, str):
            raise GraphError(
                f"b.op({show(op)}): the first argument is an op's name, e.g. b.op('add', a, c)"
            )
        if op in LEAVES:
            raise GraphError(
                f"b.op({op!r}): {op!r} is a leaf kind, not an op; use b.{op}(...) to make one"
            )
        try:
            plugin = get_op(op)
        except GraphError as exc:
            listing = "" if "graphbp ops" in str(exc) else " (`graphbp ops` lists every op)"
            raise GraphError(f"b.op({op!r}, ...): {exc}{listing}") from None
        arity = signature_of(plugin).arity
        if len(operands) != arity:
            raise GraphError(
                f"b.op({op!r}, ...) got {len(operands)} operand(s); op {op!r} takes {arity}"
            )
        if attrs is not None and not isinstance(attrs, Mapping):
            raise GraphError(
                f"b.op({op!r}, ..., attrs={show(attrs)}): attrs is a dict of attributes, e.g. "
                "attrs={'name': 'tag'}"
            )
        given = dict(attrs or {})
        both = sorted(map(str, set(given) & set(kwargs)))
        if both:
            raise GraphError(
                f"b.op({op!r}, ...) got the attribute(s) {both} both in attrs= and as keyword "
                "arguments; give each once"
            )
        given.update(kwargs)
        if "scope" in given or "op" in given:
            raise GraphError(
                f"b.op({op!r}, ...) got an attribute op= or scope=; the op is the first "
                "argument, and the scope is set by `with b.scope(NAME):`"
            )
        node = self._auto(op) if name is None else self._named(name)
        return self._add(node, op, operands, given)

    def dense(
        self,
        x: object,
        units: int,
        activation: str | None = None,
        *,
        name: Name | None = None,
        params: tuple[Name, Name] | None = None,
    ) -> Value:
        """A layer ``activation(x·W + b)`` with new parameters W (width of x by ``units``) and
        b (``units``), as one node: op ``dense`` with attribute ``activation`` (any
        one-operand op, a plugin too), or op ``affine`` (x·W + b) for ``activation=None``.

        The width of ``x`` is the last axis of its inferred shape. Parameter names follow the
        layer's name (see ``Builder``): the layer ``h1`` creates ``W1`` and ``b1``;
        ``params=(w_name, b_name)`` names them instead.

        Raises:
            GraphError: the width of x is unknown, ``units`` is not a positive int, the
                activation is not the name of a one-operand op, or a name is taken (or is
                the layer's own).
        """
        if not isinstance(units, numbers.Integral) or isinstance(units, bool) or units < 1:
            raise GraphError(f"dense: units={show(units)}; give the layer's width, an int ≥ 1")
        units = int(units)
        if activation is not None and not isinstance(activation, str):
            raise GraphError(
                f"dense: activation={show(activation)}; give an op's name (such as 'sigmoid', "
                "'relu') or None for x·W + b"
            )
        if params is not None and (not isinstance(params, tuple | list) or len(params) != 2):
            layer_named = "" if name is None else f" layer {show(name)}"
            raise GraphError(
                f"dense{layer_named}: params={show(params)}; give the names of the weight and "
                "the bias, e.g. params=('W_out', 'b_out')"
            )
        if name is None:
            number = self._free_layer_number(with_params=params is None)
            layer: Name = f"h{number}"
            suffix = str(number)
        else:
            layer = self._named(name)
            found = _TRAILING_NUMBER.search(str(layer))
            number = int(found.group()) if found else self._layers + 1
            suffix = found.group() if found else str(number)
        if params is None:
            w_name: Name = f"W{suffix}"
            b_name: Name = f"b{suffix}"
            for what, own in (("weight", w_name), ("bias", b_name)):
                if name_key(own) == name_key(layer):
                    raise GraphError(
                        f"dense layer {layer!r}: its {what} would be named {own!r} too (a layer "
                        "whose name ends in n creates Wn and bn); rename the layer, e.g. "
                        f"'h{suffix}', or pass params=(W_NAME, B_NAME)"
                    )
            fix = (
                "name the layer with a number of its own (a layer whose name ends in n creates "
                "Wn and bn) or pass params=(W_NAME, B_NAME)"
            )
            self._free(w_name, f"dense layer {layer!r}: its weight", fix)
            self._free(b_name, f"dense layer {layer!r}: its bias", fix)
        else:
            w_name, b_name = self._named(params[0]), self._named(params[1])
            keys = {name_key(w_name), name_key(b_name), name_key(layer)}
            if len(keys) != 3:
                raise GraphError(
                    f"dense layer {layer!r}: params={show(params)} does not give the layer and "
                    "its two parameters three different names; give each its own"
                )
        with self._undo_on_error():
            (x_value,) = self._operands((x,), f"dense layer {layer!r}")
            width = x_value.shape[-1] if x_value.shape else None
            if width is None:
                raise GraphError(
                    f"dense layer {layer!r}: the width of its input {x_value.name!r} is unknown "
                    f"(shape {x_value.shape}); declare it, e.g. b.input({x_value.name!r}, "
                    "(None, 10)), or make W and b with b.param and use b.op('dense', x, W, b)"
                )
            w = self._add(w_name, "param", (), {"shape": (width, units)})
            b = self._add(b_name, "param", (), {"shape": (units,)})
            if activation is None:
                out = self._add(layer, "affine", (x_value, w, b), {})
            else:
                out = self._add(layer, "dense", (x_value, w, b), {"activation": activation})
        self._layers = max(self._layers, number)
        return out

    def sse(self, pred: object, target: object, *, name: Name | None = None) -> Value:
        """The loss Σ‖target − pred‖² (op ``sse``)."""
        return self.op("sse", pred, target, name=name)

    def mse(self, pred: object, target: object, *, name: Name | None = None) -> Value:
        """The loss mean((target − pred)²) (op ``mse``)."""
        return self.op("mse", pred, target, name=name)

    def softmax_cross_entropy(
        self, logits: object, labels: object, *, name: Name | None = None
    ) -> Value:
        """The loss −Σ_c labels_c·log softmax(logits)_c, averaged over the examples, with
        one-hot (or probability) labels (op ``softmax_cross_entropy``)."""
        return self.op("softmax_cross_entropy", logits, labels, name=name)

    # ------------------------------------------------------------------ scopes, the network

    @contextmanager
    def scope(self, name: str) -> Iterator[str]:
        """Give every node made inside ``with b.scope(name):`` the attribute ``scope``
        (nested scopes join with ``/``); yields the full scope."""
        problem = text_problem(name) if isinstance(name, str) else f"not a str ({show(name)})"
        if problem is not None:
            raise GraphError(f"b.scope({show(name)}): a scope is {TEXT_RULE}; this is {problem}")
        fix = scope_fix(name)
        if fix is not None:
            raise GraphError(f"b.scope({show(name)}): a scope with an empty part; {fix}")
        self._scopes.append(name)
        try:
            yield "/".join(self._scopes)
        finally:
            self._scopes.pop()

    def network(self, loss: Value, output: Value | None = None) -> Network:
        """The network of ``loss`` and every node it is computed from, as a ``gb.Network``.

        ``graph["loss"]`` names the loss; ``graph["output"]`` names ``output``, by default
        the prediction (operand 0) of a loss of op sse, mse or softmax_cross_entropy. Nodes
        the loss (and the output) do not depend on are left out. The builder can go on.

        Raises:
            GraphError: the loss or output is not a Value of this builder, or the network
                breaks the schema (a loss that is not a scalar, ...).
        """
        draft = self._draft
        top = self._own(loss, "the loss").name
        named = None if output is None else self._own(output, "the output").name
        out = output_node(named, draft.op_name(top), draft.operands[top], draft.kind)
        keep = {top, *nx.ancestors(draft.graph, top)}
        attrs: dict[str, Any] = {"loss": top}
        if out is not None:
            keep |= {out, *nx.ancestors(draft.graph, out)}
            attrs["output"] = out
        g = nx.DiGraph(**attrs)
        g.add_nodes_from((n, dict(d)) for n, d in draft.graph.nodes(data=True) if n in keep)
        g.add_edges_from((u, v, dict(d)) for u, v, d in draft.graph.edges(data=True) if v in keep)
        return Network(g)

    # ------------------------------------------------------------------ internals

    def _add(self, node: Name, op: str, operands: Sequence[object], data: dict[str, Any]) -> Value:
        """Add ``node`` (its name already checked) with its in-edges, check its attributes and
        infer its shape; on any error the builder is left as it was."""
        draft = self._draft
        if node in draft.graph:  # every caller checks names first; never overwrite a node
            raise GraphError(f"the name {node!r} is taken by an earlier node; choose another")
        with self._undo_on_error():
            values = self._operands(operands, f"{node!r} (op {op!r})")
            data = {"op": op, **data}
            if self._scopes:
                data["scope"] = "/".join(self._scopes)
            plain_attrs(data)
            draft.graph.add_node(node, **data)
            self._texts[name_key(node)] = node
            for i, value in enumerate(values):
                if draft.graph.has_edge(value.name, node):
                    arg = draft.graph.edges[value.name, node]["arg"]
                    arg = (*arg, i) if isinstance(arg, tuple) else (arg, i)
                    draft.graph.edges[value.name, node]["arg"] = arg
                else:
                    draft.graph.add_edge(value.name, node, arg=i)
            kind = op if op in LEAVES else OP
            plugin = None if kind != OP else get_op(op)
            draft.kind[node] = kind
            if plugin is not None:
                draft.ops[node] = plugin
            draft.operands[node] = tuple(v.name for v in values)
            draft.attrs[node] = checked_attrs(draft.graph, node, kind, plugin)
            if kind == "const":
                self._values[node] = const_array(node, data["value"])
            infer_node(draft, node, self._values, self._concrete, self._shapes)
        return Value(self, node, op, self._shapes[node])

    def _const(self, node: Name, value: Any, subject: str | None = None) -> Value:
        """A const node ``node`` of ``value``, checked (``subject`` says what the value is in
        a message, by default the const node)."""
        import numpy as np

        if not isinstance(value, np.ndarray | np.generic) and _converts_to_array(value):
            with suppress(Exception):  # a broken or exotic __array__: refused below as it is
                value = np.asarray(value)
        array = const_array(node, value, subject)  # checked, as a float64 array (a copy)
        stored: Any = array  # as the graph file will hold it:
        if type(value) in (int, float):
            stored = value  # a Python number as given
        elif isinstance(value, np.integer | np.floating):
            stored = value.item()  # a NumPy scalar as the Python number
        elif isinstance(value, np.ndarray):
            stored = np.array(value)  # an array copied in its own dtype
        return self._add(node, "const", (), {"value": stored})

    @contextmanager
    def _undo_on_error(self) -> Iterator[None]:
        """Remove every node added inside the block if it raises (nested blocks undo once)."""
        draft = self._draft
        before = len(draft.graph)
        try:
            yield
        except BaseException:
            added = list(draft.graph)[before:]
            draft.graph.remove_nodes_from(added)
            for node in added:
                for table in (draft.kind, draft.ops, draft.operands, draft.attrs, self._values):
                    table.pop(node, None)
                self._concrete.pop(node, None)
                self._shapes.pop(node, None)
                self._texts.pop(name_key(node), None)
            raise

    def _operands(self, operands: Sequence[object], where: str) -> list[Value]:
        """Operands of ``where`` (the node or layer, for messages) as Values of this builder:
        numbers and arrays become const nodes."""
        import numpy as np

        values = []
        for i, operand in enumerate(operands):
            if isinstance(operand, Value):
                values.append(self._own(operand, f"operand {i} of {where}"))
            elif isinstance(operand, numbers.Number | np.generic | np.ndarray) or (
                _converts_to_array(operand)
            ):
                subject = f"operand {i} of {where} is {show(operand)}"
                values.append(self._const(self._auto("const"), operand, subject))
            else:
                raise GraphError(
                    f"operand {i} of {where} is {show(operand)}, "
                    f"{article(type(operand).__name__)}; an operand is a Value of this builder, "
                    "a number or an array (b.const(LIST) makes a constant of a list)"
                )
        return values

    def _own(self, value: object, what: str) -> Value:
        """``value``, if it is a Value of a node this builder made."""
        if not isinstance(value, Value):
            raise GraphError(f"{what} is {show(value)}; give a Value this builder made")
        if value._builder is not self:
            raise GraphError(
                f"{what}, {value.name!r}, was made by another Builder; build the whole "
                "network with one Builder (a Value belongs to the builder that made it)"
            )
        data = self._draft.graph.nodes.get(value.name) if _hashable(value.name) else None
        if data is None or data["op"] != value.op:
            raise GraphError(
                f"{what}, {show(value)}, is not a node of this builder; use the Values its "
                "methods and operators return (gb.Value(...) makes no node)"
            )
        return value

    def _named(self, name: object) -> Name:
        """``name``, checked against the node-name rule and the names taken."""
        problem = name_problem(name)
        if problem is not None or not isinstance(name, str | int):
            raise GraphError(f"the name {show(name)} is {problem}; {NAME_RULE}")
        self._free(name, "the name")
        return name

    def _free(
        self, name: Name, what: str, fix: str = "choose another (names are unique in a graph)"
    ) -> None:
        """Raise a GraphError if a node has ``name`` (or a name that reads alike)."""
        taken = self._texts.get(name_key(name))
        if taken is None:
            return
        same = "" if taken == name else f" (a name that reads alike, {taken!r})"
        raise GraphError(
            f"{what} {name!r} is taken by an earlier node{same} of op "
            f"{self._draft.op_name(taken)!r}; {fix}"
        )

    def _free_layer_number(self, with_params: bool) -> int:
        """The first number above the highest a layer took whose hn (and Wn, bn) are free."""
        number = self._layers + 1
        prefixes = ("h", "W", "b") if with_params else ("h",)
        while any(name_key(f"{p}{number}") in self._texts for p in prefixes):
            number += 1
        return number

    def _auto(self, prefix: str) -> str:
        """The first free name of ``prefix`` followed by a number from 1."""
        k = self._next.get(prefix, 1)
        while name_key(f"{prefix}{k}") in self._texts:
            k += 1
        self._next[prefix] = k  # every number below k is taken (a name is freed only by undo)
        return f"{prefix}{k}"


def _converts_to_array(value: object) -> bool:
    """Whether ``value`` is another library's array that NumPy converts (it has
    ``__array__``, as JAX arrays do); Values do not."""
    return hasattr(type(value), "__array__") and not isinstance(value, Value)


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
