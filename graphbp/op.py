"""The op plugin contract — a forward function and its local derivative as a VJP — and the
only code that calls a plugin: ``call_forward`` and ``call_vjp``, which hold every result to
the contract and name the op, the node and the operand when one breaks it.
"""

from __future__ import annotations

import inspect
import unicodedata
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from graphbp.errors import GraphbpError, PluginError, article, exc_text, show
from graphbp.frames import in_library

Array = Any
"""An array of the active backend (numpy.ndarray, jax.Array, ...)."""

Example = tuple[tuple[Any, ...], dict[str, Any]]
"""Operands (float64 NumPy arrays) and attributes on which an op's gradient is checked."""

Shape = tuple[int | None, ...]
"""A static shape; None marks an axis of any size (such as the batch)."""

LEAVES = ("input", "param", "const")
"""Node kinds that are values entering the graph, not ops: they belong to the core and no
plugin can take their names."""
OP = "op"
"""The kind of every node that is not a leaf: an op plugin computes it."""


class Op:
    """Base class of every op plugin.

    Required (``register_op`` and entry-point loading refuse an op without them):

    - ``name``: an identifier, the ``op`` attribute graphs use (not a leaf kind).
    - ``forward(self, xp, *operands, **attrs)``: the output, computed with ``xp``, the
      backend's array namespace (numpy or jax.numpy), which plugins never import. Node
      attributes other than ``op``, ``shape`` and ``scope`` arrive as keyword arguments.
      It returns an array of the backend in the operands' dtype.
    - ``local_grads``: one text of ∂out/∂operandᵢ per operand, drawn on the edges into the
      node and listed by ``graphbp ops``. The text ``"0"`` declares that the operand gets
      no gradient (a comparison's operands, ``select_n``'s predicate, gather's indices,
      ``sign``, ``floor``): its edge is on no chain-rule path (``graphbp.chain.Flow``
      counts, lists and highlights none through it), and ``graphbp.testing.check_op``
      holds the vjp to returning zeros there. ``describe(attrs)`` may declare it for some
      attributes only (``convert_element_type`` to an integer dtype).

    Optional:

    - ``label`` (default: ``name``): how a node is drawn. Either a function name (``"σ"``,
      ``"tanh"``), drawn applied to its operand (``σ(x·W+b)`` inside ``dense``), or an
      expression in its operand, written ``x`` or ``z`` (``"x·σ(x)"``, ``"x³"``), drawn with
      the operand in its place (``(x·W+b)·σ(x·W+b)``); see ``apply_label``. A one-operand
      op writes its ``local_grads`` in the same variable; ``dense`` shows them in
      ``z = x·W+b``.
    - ``vjp(self, xp, g, out, *operands, **attrs)`` gets ``g = ∂L/∂out`` and returns one
      cotangent per operand. It may return a cotangent of the broadcast (output) shape: the
      engine sums it back to the operand's shape. A vjp that also takes ``needs`` (a tuple of
      bools, one per operand) may return None where ``needs`` is False, to skip work nobody
      uses. Without a vjp, JAX differentiates the forward itself; on NumPy compiling a network
      that needs its gradient is an error naming the op.
    - ``stops_gradient`` (default False): True for an op that passes no gradient by
      definition, though its forward is smooth (``stop_gradient``): the gradient checks then
      hold its vjp to zero cotangents instead of to its forward's derivative.
    - ``vjp_reads``: which forward values the vjp reads, operand positions and/or ``"out"``
      (σ's rule reads only ``out``). The engine frees the others as soon as the forward pass
      is done with them and passes None in their place. None (the default) means the vjp may
      read everything. The gradient checker holds ops to their declaration.
    - ``shape(*shapes, **attrs)`` (every built-in op has one): given each operand's shape as
      a tuple of ints and the node's attributes, the shape of forward's result, or
      ``ValueError`` (or ``TypeError``) when the operands do not fit, exactly where forward
      would. ``Network()`` infers every node's shape with it without allocating an array. An
      op without one is probed instead: its forward is run on arrays of the operands'
      shapes, but only while each has at most ``PROBE_LIMIT`` elements; past that,
      ``Network()`` asks for a shape rule. ``graphbp.testing.check_op`` holds the rule to
      forward's results.
    - ``examples(rng)``: (operands, attrs) pairs on which the gradient checks run (default:
      standard normal operands of shape (3, 4) and no attributes, so an op whose forward
      requires an attribute must define it).
    - ``describe(attrs)``: the label and local-derivative texts for a node's attributes
      (default: ``label`` and ``local_grads``).
    - ``backends``: the backends the op runs on (default None: every backend). Compiling a
      network holding it for another backend is a GraphError naming the node.

    Example:
        >>> class Cube(Op):
        ...     name = "cube"
        ...     label = "x³"
        ...     local_grads = ("3x²",)
        ...     def forward(self, xp, x):
        ...         return x**3
        ...     def vjp(self, xp, g, out, x):
        ...         return (3 * g * x**2,)
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    local_grads: ClassVar[tuple[str, ...]] = ()
    vjp_reads: ClassVar[tuple[int | str, ...] | None] = None
    backends: ClassVar[tuple[str, ...] | None] = None
    stops_gradient: ClassVar[bool] = False

    def forward(self, xp: Any, *operands: Array, **attrs: Any) -> Array:
        """Compute the op's output (an array of the backend) from its operands."""
        raise NotImplementedError

    def vjp(self, xp: Any, g: Array, out: Array, *operands: Array, **attrs: Any) -> Any:
        """Map ∂L/∂out to one cotangent ∂L/∂operandᵢ per operand."""
        raise NotImplementedError

    def shape(self, *shapes: Any, **attrs: Any) -> tuple[int, ...]:
        """The shape of forward's result for operands of these shapes (optional).

        Raises:
            ValueError: the operands (or attributes) do not fit, where forward would fail.
        """
        raise NotImplementedError

    def examples(self, rng: Any) -> list[Example]:
        """Operands (and attributes) on which the op is smooth, for gradient checks.

        The default draws standard-normal operands of shape (3, 4); ops with a restricted
        domain (log, div) or particular shapes (matmul) override it.
        """
        return [(tuple(rng.standard_normal((3, 4)) for _ in range(self.arity)), {})]

    def describe(self, attrs: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """The label and local-derivative texts drawn for a node with these attributes.

        The default is the class's ``label`` (or its ``name`` if it has none) and
        ``local_grads``; an op whose attributes change what it computes (``dense``'s
        activation) says so here.
        """
        return self.label or self.name, self.local_grads

    @property
    def arity(self) -> int:
        """The number of operands forward takes."""
        return signature_of(self).arity

    def __repr__(self) -> str:
        return f"<op {self.name!r} ({type(self).__module__}.{type(self).__qualname__})>"


class OpSignature:
    """What the engine needs to know about an op's methods, read once per op class."""

    def __init__(self, op: Op) -> None:
        self.arity, self.attrs, self.any_attrs = _operands_and_attrs(op, op.forward)
        self.required_attrs = tuple(
            p.name
            for p in inspect.signature(op.forward).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty
        )
        """Attributes forward cannot do without (keyword-only, no default)."""
        self.vjp_takes_needs = "needs" in inspect.signature(op.vjp).parameters
        self.taken = _positional_names(op.forward) | _positional_names(op.vjp) | {"self", "needs"}
        """Names taken by what the engine passes (``self``, ``xp``, ``g``, ``out``, the
        operands, ``needs``): an attribute of an op taking ``**attrs`` may not use them."""
        declared = op.vjp_reads
        self.reads = tuple(declared is None or r in declared for r in ("out", *range(self.arity)))
        """Whether the vjp reads the output and each operand (``vjp_reads``)."""


_signatures: dict[type[Op], OpSignature] = {}


def signature_of(op: Op) -> OpSignature:
    """Inspect ``op`` once and cache what its methods accept."""
    cls = type(op)
    if cls not in _signatures:
        _signatures[cls] = OpSignature(op)
    return _signatures[cls]


def _operands_and_attrs(op: Op, forward: Callable[..., Any]) -> tuple[int, frozenset[str], bool]:
    params = list(inspect.signature(forward).parameters.values())
    if not params or params[0].kind not in (
        params[0].POSITIONAL_ONLY,
        params[0].POSITIONAL_OR_KEYWORD,
    ):
        raise PluginError(
            f"op {op.name!r} ({type(op).__qualname__}): forward must be "
            "forward(self, xp, *operands, **attrs); the first argument after self is xp"
        )
    operands = 0
    attrs: set[str] = set()
    any_attrs = False
    for p in params[1:]:
        if p.kind is p.VAR_POSITIONAL:
            raise PluginError(
                f"op {op.name!r} ({type(op).__qualname__}): forward takes *{p.name}; "
                "declare a fixed number of operands"
            )
        if p.kind is p.VAR_KEYWORD:
            any_attrs = True
        elif p.kind is p.KEYWORD_ONLY or p.default is not p.empty:
            attrs.add(p.name)
        else:
            operands += 1
    return operands, frozenset(attrs), any_attrs


def _positional_names(method: Callable[..., Any]) -> frozenset[str]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = inspect.signature(method).parameters.values()
    return frozenset(p.name for p in params if p.kind in kinds and p.default is p.empty)


def defines_vjp(op: Op) -> bool:
    """Whether ``op`` has its own derivative rule (JAX can do without one; NumPy cannot)."""
    return type(op).vjp is not Op.vjp


NO_GRADIENT = "0"
"""The ``local_grads`` text declaring that an operand gets no gradient."""


def gradient_free(op: Op, attrs: Mapping[str, Any]) -> tuple[bool, ...]:
    """Which of ``op``'s operands get no gradient at a node with these attributes: those
    whose local derivative text (``describe(attrs)``, else ``local_grads``) is ``"0"``."""
    try:
        texts = op.describe(attrs)[1]
    except Exception:  # a describe() that fails is reported where the node is drawn
        texts = op.local_grads
    return tuple(isinstance(t, str) and t.strip() == NO_GRADIENT for t in texts)


def gradient_flows(op: Op, attrs: Mapping[str, Any], arity: int) -> tuple[bool, ...]:
    """Whether gradient flows to each of a node's ``arity`` operands: to all but those its
    op declares gradient-free (``gradient_free``)."""
    free = gradient_free(op, attrs)
    return tuple(not (k < len(free) and free[k]) for k in range(arity))


def runs_on(op: Op, backend: str) -> bool:
    """Whether ``op`` runs on the backend named ``backend`` (its ``backends``)."""
    return op.backends is None or backend in op.backends


def defines_shape(op: Op) -> bool:
    """Whether ``op`` has a shape rule (else shape inference probes its forward)."""
    return type(op).shape is not Op.shape


PROBE_LIMIT = 2**20
"""The most elements an operand may have when shape inference probes the forward of an op
that has no shape rule (a larger probe would cost what running the graph costs)."""


def validate_op(op: Op) -> None:
    """Raise PluginError unless ``op`` follows the plugin contract."""
    cls = type(op).__qualname__
    name = op.name
    if not isinstance(name, str) or not name.isidentifier():
        got = "" if isinstance(name, str) and not name else f" (it is {show(name)})"
        raise PluginError(
            f"op class {cls} needs a `name` that is an identifier, e.g. name = 'cube'{got}"
        )
    if name in LEAVES:
        raise PluginError(
            f"op class {cls} is named {name!r}, a leaf kind of the graph schema "
            f"({', '.join(LEAVES)}); leaves belong to graphbp's core, so pick another name"
        )
    runs = op.backends
    if runs is not None and not (
        isinstance(runs, tuple | list) and runs and all(isinstance(b, str) for b in runs)
    ):
        raise PluginError(
            f"op {name!r} ({cls}): backends is {show(runs)}; set it to a tuple of backend "
            "names the op runs on, e.g. backends = ('jax',), or leave it None (every backend)"
        )
    if type(op).forward is Op.forward:
        raise PluginError(f"op {name!r} ({cls}) does not define forward(self, xp, *operands)")
    for method in ("forward", "vjp"):
        if not callable(getattr(op, method)):
            raise PluginError(
                f"op {name!r} ({cls}): {method} is {show(getattr(op, method))}, not a method; "
                f"define def {method}(self, xp, ...) in the class"
            )
    reads = op.vjp_reads
    if reads is not None and not isinstance(reads, tuple | list):
        raise PluginError(
            f"op {name!r} ({cls}): vjp_reads is {show(reads)}; set it to a tuple of operand "
            "positions and/or 'out', the forward values the vjp reads, e.g. vjp_reads = (0, 'out')"
        )
    sig = signature_of(op)
    if reads is not None and not defines_vjp(op):
        raise PluginError(
            f"op {name!r} ({cls}) declares vjp_reads but defines no vjp; define "
            "vjp(self, xp, g, out, *operands) or drop vjp_reads"
        )
    if reads is not None and not all(
        r == "out" or (type(r) is int and 0 <= r < sig.arity) for r in reads
    ):
        raise PluginError(
            f"op {name!r} ({cls}): vjp_reads={reads!r}; list operand positions "
            f"0..{sig.arity - 1} and/or 'out', the forward values the vjp reads"
        )
    if not isinstance(op.stops_gradient, bool):
        raise PluginError(
            f"op {name!r} ({cls}): stops_gradient is {show(op.stops_gradient)}; set it to "
            "True (the op passes no gradient by definition) or leave it out"
        )
    if defines_vjp(op):
        _check_vjp_arguments(op, sig.arity)
    _check_label(op)
    grads = op.local_grads
    texts = ", ".join(f'"∂out/∂operand{i}"' for i in range(sig.arity))
    example = f"local_grads = ({texts}{',' if sig.arity == 1 else ''})"
    if not isinstance(grads, tuple | list):
        raise PluginError(
            f"op {name!r} ({cls}): local_grads must be a tuple of str (one text of "
            f"∂out/∂operandᵢ per operand), got {type(grads).__name__}; e.g. {example}"
        )
    for k, text in enumerate(grads):
        if not isinstance(text, str):
            raise PluginError(
                f"op {name!r} ({cls}): local_grads[{k}] is {show(text)}, not a str; write each "
                f"∂out/∂operandᵢ as text, e.g. {example}"
            )
    if not grads and sig.arity:
        raise PluginError(
            f"op {name!r} ({cls}) has no local_grads, which every op needs: one text of "
            f"∂out/∂operandᵢ per operand, drawn on the edges into its node; add e.g. {example} "
            "to the class"
        )
    if len(grads) != sig.arity:
        raise PluginError(
            f"op {name!r} ({cls}): local_grads has {len(grads)} entries but forward "
            f"takes {sig.arity} operands; give one text of ∂out/∂operandᵢ per operand"
        )


def _check_vjp_arguments(op: Op, arity: int) -> None:
    """Raise PluginError unless the vjp takes what the engine passes: xp, g, out, operands."""
    params = inspect.signature(op.vjp).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in kinds]
    required = [p for p in positional if p.default is p.empty]
    passed = 3 + arity
    takes_all = any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= passed
    if takes_all and len(required) <= passed:
        return
    operands = ", ".join(f"operand{i}" for i in range(arity))
    raise PluginError(
        f"op {op.name!r} ({type(op).__qualname__}): vjp takes {len(positional)} positional "
        f"argument(s) after self, but the engine passes {passed}: define "
        f"vjp(self, xp, g, out, {operands}) (forward takes {arity} operand(s))"
    )


def _check_label(op: Op) -> None:
    """Raise PluginError unless ``op.label`` is a str whose variable can take an operand."""
    label = op.label
    if not isinstance(label, str):
        raise PluginError(
            f"op {op.name!r} ({type(op).__qualname__}): label is {show(label)}, not a str; set "
            "label to a function name such as 'σ' or an expression in x such as 'x·σ(x)'"
        )
    marked = [i for i, kind in _variable_spots(label) if kind == "x" and _mark_after(label, i)]
    if marked:
        raise PluginError(
            f"op {op.name!r} ({type(op).__qualname__}): label {show(label)} puts a combining "
            f"mark on its variable {label[marked[0]]!r}, which cannot be drawn over an operand "
            "such as x·W+b; write it as a function name (e.g. 'mean') or with a modifier "
            "letter after the variable (xᵀ, xᵢ)"
        )


def apply_label(label: str, operand: str) -> str:
    """How a one-operand op's ``label`` reads applied to ``operand`` (text such as ``x·W+b``).

    A label that is an expression in its operand, written ``x`` or ``z`` (an ``x`` or ``z``
    not part of a word: ``x·σ(x)``, ``x³``, ``max(z,0)``), gets the operand in place of each,
    in parentheses unless it already stands alone between them; any other label is a
    function name (``σ``, ``exp``), applied as ``label(operand)``. A modifier letter after the
    variable (``xᵀ``, ``xᵢ``) applies to the whole parenthesised operand, ``(x·W+b)ᵀ``; a
    superscript variable (``eˣ``) is written as a power, ``e^(x·W+b)``. (``validate_op``
    refuses a combining mark on the variable, ``x̄``: it would land on the parenthesis.)

    Example:
        >>> apply_label("σ", "x·W+b"), apply_label("x·σ(x)", "x·W+b")
        ('σ(x·W+b)', '(x·W+b)·σ(x·W+b)')
    """
    spots = _variable_spots(label)
    if not spots:
        return f"{label}({operand})"
    parts, start = [], 0
    for i, kind in spots:
        alone = i > 0 and label[i - 1] in "(,[" and i + 1 < len(label) and label[i + 1] in "),]"
        written = operand if alone else f"({operand})"
        parts += [label[start:i], written if kind == "x" else f"^{written}"]
        start = i + 1
    return "".join([*parts, label[start:]])


_SUPERSCRIPT = {"x": "ˣ", "z": "ᶻ"}
"""The variable written as an exponent (``eˣ``), by its plain letter."""


def rename_variable(text: str, name: str) -> str:
    """``text`` (an expression in ``x`` or ``z``) with that variable renamed ``name``."""
    parts, start = [], 0
    for i, kind in _variable_spots(text):
        parts += [text[start:i], name if kind == "x" else _SUPERSCRIPT.get(name, f"^{name}")]
        start = i + 1
    return "".join([*parts, text[start:]])


def _variable_spots(text: str) -> list[tuple[int, str]]:
    """Positions of the variable, with ``"x"`` for one written plainly (``x`` or ``z`` not
    next to a letter of a word: ``exp`` and ``zeta`` have none, ``x²`` and ``xᵀ`` have one)
    and ``"^"`` for one written as an exponent (``ˣ`` or ``ᶻ`` alone: ``eˣ``)."""
    spots = []
    for i, c in enumerate(text):
        before = text[i - 1] if i > 0 else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if c in "xz" and not _in_word(before) and not _in_word(after):
            spots.append((i, "x"))
        elif c in "ˣᶻ" and not _modifier(before) and not _modifier(after):
            spots.append((i, "^"))
    return spots


def _modifier(c: str) -> bool:
    """Whether ``c`` is a modifier letter (``ᵀ``, ``ᵢ``, ``ˣ``): a sub/superscript."""
    return bool(c) and unicodedata.category(c) == "Lm"


def _in_word(c: str) -> bool:
    """Whether ``c`` is a letter that makes an adjacent x part of a word (not ``ᵀ``, ``ᵢ``)."""
    return c.isalpha() and not _modifier(c)


def _mark_after(text: str, i: int) -> bool:
    """Whether a combining mark (``x̄``, ``ẋ``) follows position ``i``."""
    return i + 1 < len(text) and unicodedata.category(text[i + 1]).startswith("M")


def sum_to(xp: Any, g: Array, shape: tuple[int, ...]) -> Array:
    """Sum a broadcast cotangent ``g`` back down to ``shape`` (un-broadcasting).

    Leading axes that broadcasting added are summed away; axes where ``shape`` has 1 are
    summed and kept. One reduction does both.

    Raises:
        ValueError: when ``g`` cannot come from broadcasting an array of ``shape``.
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    tail = g.shape[lead:]
    if lead > 0 and tail == shape:  # the common case: a bias broadcast over the batch
        return g.sum(axis=0) if lead == 1 else g.sum(axis=tuple(range(lead)))
    if lead < 0 or any(want != 1 and want != have for have, want in zip(tail, shape, strict=True)):
        raise ValueError(f"cotangent of shape {g.shape} cannot be summed to {shape}")
    axes = (
        *range(lead),
        *(lead + i for i, (h, w) in enumerate(zip(tail, shape, strict=True)) if h != w),
    )
    return g.sum(axis=axes).reshape(shape)


def shapes_agree(a: Shape, b: Shape) -> bool:
    """Whether two static shapes can describe the same value (None axes match anything)."""
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=True)
    )


def shape_fits(actual: tuple[int, ...], declared: Shape | None) -> bool:
    """Whether a concrete shape fits a declared one (None, or a None axis, matches any size)."""
    if declared is None or actual == declared:
        return True
    return len(actual) == len(declared) and all(
        d is None or a == d for a, d in zip(actual, declared, strict=True)
    )


# ------------------------------------------------------------------ calling a plugin


class Arrays(NamedTuple):
    """Where a plugin runs: the namespace passed as ``xp``, and what its results must be."""

    xp: Any
    types: tuple[type, ...]
    """The backend's array types (NumPy: ndarray and its scalars; JAX: jax.Array)."""
    dtype: Any
    """The program's dtype, a ``numpy.dtype``."""
    backend: str
    is_array: Callable[[Any], bool]
    """Whether a value is an array of the backend (``Backend.is_array``)."""


def call_forward(
    op: Op,
    arrays: Arrays,
    operands: Sequence[Array],
    attrs: Mapping[str, Any],
    *,
    node: Hashable = None,
    shape: Shape | None = None,
) -> Array:
    """``op.forward`` on ``operands``, its result checked: an array of the backend, of the
    program's dtype and of a shape that fits ``shape``.

    Raises:
        PluginError: the result breaks the contract, or forward raised (a bug in the plugin:
            the original exception is chained as ``__cause__``); the message names op, node
            and fix. A GraphbpError the plugin raises passes unchanged.
    """
    try:
        out = op.forward(arrays.xp, *operands, **attrs)
    except GraphbpError:
        raise
    except Exception as exc:
        raise plugin_raised(op, node, "forward", exc, operands) from exc
    return check_output(op, arrays, node, out, shape)


def call_vjp(
    op: Op,
    arrays: Arrays,
    g: Array,
    out: Array,
    operands: Sequence[Array],
    attrs: Mapping[str, Any],
    *,
    shapes: Sequence[tuple[int, ...]],
    needs: Sequence[bool] | None = None,
    node: Hashable = None,
    rule: Callable[..., Any] | None = None,
) -> tuple[Array | None, ...]:
    """The cotangents ∂L/∂operandᵢ from ``g = ∂L/∂out``: the plugin's vjp (or ``rule``, the
    backend's autodiff of an op without one), checked and summed back to each operand's shape.

    Args:
        op: the op.
        arrays: the backend and dtype the cotangents must have.
        g: ∂L/∂out.
        out: the forward value, or None if the op's ``vjp_reads`` leaves it out.
        operands: the operands' values (None for those ``vjp_reads`` leaves out).
        attrs: the node's attributes.
        shapes: each operand's shape, which its cotangent is summed back to.
        needs: which operands need a cotangent (default all); passed to a vjp that takes it.
        node: the node, for error messages.
        rule: called in place of ``op.vjp``, with the same arguments.

    Returns:
        One cotangent per operand, None where ``needs`` is False.

    Raises:
        PluginError: wrong count, a missing, foreign, wrongly typed or shaped cotangent; or
            the vjp raised (the original exception chained, as for ``call_forward``).
    """
    needs = (True,) * len(operands) if needs is None else tuple(needs)
    vjp = op.vjp if rule is None else rule
    try:
        cts = vjp(arrays.xp, g, out, *operands, **vjp_kwargs(op, attrs, needs))
    except GraphbpError:
        raise
    except Exception as exc:
        raise plugin_raised(op, node, "vjp", exc, operands, g) from exc
    check_count(op, node, cts, len(operands))
    out_ndim = g.ndim
    return tuple(
        [
            check_cotangent(op, arrays, node, i, cts[i], shapes[i], out_ndim) if need else None
            for i, need in enumerate(needs)
        ]
    )


def vjp_kwargs(op: Op, attrs: Mapping[str, Any], needs: tuple[bool, ...]) -> Mapping[str, Any]:
    """The keyword arguments of ``op``'s vjp: the node's attributes, and ``needs`` if it
    takes them."""
    return {**attrs, "needs": needs} if signature_of(op).vjp_takes_needs else attrs


def check_output(op: Op, arrays: Arrays, node: Hashable, out: Any, shape: Shape | None) -> Array:
    """``out`` if it is a forward result the program can use, else a PluginError."""
    array: Any = out
    if (
        out.__class__ is arrays.types[0]  # the common case, decided at once
        and array.dtype is arrays.dtype
        and (shape is None or array.shape == shape)
    ):
        return array
    if not arrays.is_array(out):
        problem = (
            f"{type(out).__name__}; return an array of the {arrays.backend} backend computed "
            "with xp (e.g. xp.asarray(value, dtype=operand.dtype))"
        )
    elif array.dtype is not arrays.dtype and array.dtype != arrays.dtype:
        problem = (
            f"{article(str(array.dtype))} array in {article(str(arrays.dtype))} program; "
            "compute in the operands' dtype (plain Python numbers keep it, "
            "xp.asarray(..., x.dtype) sets it)"
        )
    elif not shape_fits(tuple(array.shape), shape):
        problem = (
            f"shape {tuple(array.shape)}, but its shape was inferred as {shape} from the same "
            "operand shapes; the output shape must depend on shapes only"
        )
    else:
        return array
    raise PluginError(f"{_where(op, node)}: forward returned {problem}")


def check_count(op: Op, node: Hashable, cts: Any, arity: int) -> None:
    """Raise PluginError unless ``cts`` is a tuple or list of ``arity`` cotangents."""
    if isinstance(cts, tuple | list) and len(cts) == arity:
        return
    got = len(cts) if isinstance(cts, tuple | list) else type(cts).__name__
    raise PluginError(
        f"{_where(op, node)}: vjp returned {got} cotangent(s) but the op "
        f"has {arity} operand(s); return a tuple with one cotangent per operand"
    )


def check_cotangent(
    op: Op,
    arrays: Arrays,
    node: Hashable,
    position: int,
    ct: Any,
    shape: tuple[int, ...],
    out_ndim: int,
) -> Array:
    """A needed cotangent summed back to its operand's ``shape``, or a PluginError.

    A cotangent has the operand's shape, or a shape the operand broadcasts to within the
    output's ``out_ndim`` axes (an elementwise rule may return g's shape); never more axes.
    """
    array: Any = ct
    exact = ct.__class__ is arrays.types[0] and array.dtype is arrays.dtype
    if exact and array.shape == shape:
        return array  # the common case, decided at once
    if not exact and not arrays.is_array(ct):
        problem = (
            f"{type(ct).__name__} for operand {position}, which needs a gradient; return an "
            f"array of the {arrays.backend} backend, computed with xp"
        )
    elif not exact and array.dtype != arrays.dtype:
        problem = (
            f"{article(str(array.dtype))} cotangent for operand {position} in "
            f"{article(str(arrays.dtype))} program; compute it in the dtype of g"
        )
    else:  # of the backend and dtype: summed back over the axes the operand was broadcast
        shape = shape if shape.__class__ is tuple else tuple(shape)
        if array.ndim <= out_ndim or array.ndim <= len(shape):  # no axes beyond both
            try:
                summed = sum_to(arrays.xp, array, shape)
                if exact or summed.shape == shape:  # an ndarray itself sums as sum_to says
                    return summed
            except ValueError:
                pass
        problem = (
            f"a cotangent of shape {tuple(array.shape)} for operand {position}; return an "
            f"array of the operand's shape {tuple(shape)} (or the shape it broadcasts to in "
            "the output)"
        )
    raise PluginError(f"{_where(op, node)}: vjp returned {problem}")


def is_write(exc: BaseException | None) -> bool:
    """Whether ``exc`` is NumPy refusing a write into a read-only array: the write itself
    ("assignment destination is read-only"), or ``setflags(write=True)`` on it."""
    text = str(exc) if isinstance(exc, ValueError) else ""
    return "read-only" in text or "WRITEABLE flag" in text


def plugin_raised(
    op: Op, node: Hashable, method: str, exc: Exception, operands: Sequence[Any], g: Any = None
) -> PluginError:
    """The PluginError for a plugin's ``method`` ("forward" or "vjp") that raised ``exc``.

    It names the op, the node, the method, the exception and the shapes the plugin was called
    with (None for a value the vjp does not read), and the fix. A write into a read-only
    array (the engine's constants, or every value under ``compile(strict=True)``) is named
    as such. When the op called another op's forward or vjp that raised (``dense`` its
    activation), that op is the one named, with the shapes it was called with. Callers
    chain ``exc`` (``raise ... from exc``).
    """
    where = _where(op, node)
    inner = _inner_raiser(op, exc)
    if inner is not None:
        caller = where
        op, method, operands, g = inner
        where = f"op {op.name!r} (called by {caller})"
    shapes = [_shape_of(x) for x in operands]
    given = (
        f"operands of shapes {shapes}"
        if method == "forward"
        else (f"g of shape {_shape_of(g)}, operands of shapes {shapes}")
    )
    cls = type(op)
    plugin = f"{cls.__module__}.{cls.__qualname__}"
    if isinstance(exc, MemoryError):
        fix = "the machine ran out of memory for its result; use smaller shapes or batches"
    elif is_write(exc):
        fix = (
            f"the {method} wrote into an array it was given (an operand, out or g), which "
            f"belongs to the engine and may feed other nodes; in {plugin}.{method}, return "
            "a new array; never write into operands (no x *= ..., x[...] = ..., out=x)"
        )
    else:
        fix = f"this is a bug in the plugin: fix {plugin}.{method}"
    error = PluginError(
        f"{where}: {method} raised {type(exc).__name__}: {exc_text(exc)} "
        f"(called with {given}); {fix}"
    )
    error.method = method
    return error


def _inner_raiser(op: Op, exc: BaseException) -> tuple[Op, str, list[Any], Any] | None:
    """The other op whose forward or vjp ``exc`` was raised in, called by ``op`` (``dense``
    calls its activation's): that op, the method and the operands and g it was given; None
    when it is ``op``'s own. The innermost plugin's method on the traceback is blamed, a
    built-in op's (one whose code is graphbp's, ``graphbp.frames.in_library``) only when no
    plugin's is there (a plugin that calls a built-in op is more likely to have passed it
    something wrong than the built-in is to be wrong)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Op) and tb.tb_frame.f_code.co_name in ("forward", "vjp"):
            frames.append((owner, tb.tb_frame))
        tb = tb.tb_next
    plugins = [f for f in frames if not in_library(f[1].f_code.co_filename)]
    if not frames:
        return None
    inner, frame = (plugins or frames)[-1]
    if type(inner) is type(op):
        return None
    method = frame.f_code.co_name
    names = frame.f_code.co_varnames[: frame.f_code.co_argcount]
    start = 2 if method == "forward" else 4  # after self, xp (and g, out)
    values = frame.f_locals
    try:
        arity = inner.arity
    except Exception:  # an op whose signature cannot be read: shapes unknown
        arity = 0
    operands = [values.get(n) for n in names[start : start + arity]]
    g = values.get(names[2]) if method == "vjp" and len(names) > 2 else None
    return inner, method, operands, g


def _shape_of(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    try:
        return None if shape is None else tuple(shape)
    except TypeError:
        return None


def _where(op: Op, node: Hashable) -> str:
    return f"op {op.name!r}" if node is None else f"op {op.name!r} at node {node!r}"
