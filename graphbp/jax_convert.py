"""The walk over a jaxpr that builds a graphbp graph: inlining, dead code, constant folding,
scopes and source lines; each equation through its rule (``graphbp.jax_rules``) or, without
one, as an opaque node (``graphbp.jax_call``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from jax._src import core as jcore
from jax._src import source_info_util

from graphbp.errors import GraphbpError, InputError, show
from graphbp.graph import name_key
from graphbp.jax_call import JaxCall
from graphbp.jax_rules import (
    ALIASED,
    BROADCASTING,
    RULES,
    Unsupported,
    Val,
    is_float,
    numpy_broadcast,
)
from graphbp.op import defines_shape
from graphbp.registry import get_op, ops

FOLD_LIMIT = 4096
"""The most elements an equation of constant operands may produce to be folded into a
constant at import; a larger result stays an op on const nodes (folded only if no op can
compute it)."""
INLINED = {
    "jit": "jaxpr",
    "pjit": "jaxpr",
    "closed_call": "call_jaxpr",
    "core_call": "call_jaxpr",
    "remat": "jaxpr",
    "remat2": "jaxpr",
    "checkpoint": "jaxpr",
    "custom_jvp_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
}
"""Call-like primitives whose body is inlined, and the parameter holding it."""
CUSTOM = {"relu": ("relu", 1), "relu6": ("relu6", 1), "logaddexp": ("logaddexp", 2)}
CUSTOM["logaddexp2"] = ("logaddexp2", 2)
"""JAX's own custom_jvp functions (by name, defined in the jax package) whose custom rule
differs from their body's derivative (at relu's kink, at logaddexp's tie), and the op
computing the function with that rule, with its number of operands. ``jax.nn.softplus``
and ``log_sigmoid`` call logaddexp. JAX's other custom rules (softmax's) agree with their
bodies' derivatives: those bodies are inlined."""
CUSTOM_RULES = frozenset({"custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"})
"""Calls with a derivative rule of their own. One that is not JAX's own (a straight-through
estimator, a clipped or numerically safe gradient of the user's) is honoured by running the
call as one opaque node, on JAX."""
WRAPPING = frozenset(
    {
        *("add", "add_any", "sub", "mul", "div", "neg", "abs", "square", "integer_pow", "pow"),
        *("dot_general", "reduce_sum", "conv_general_dilated", "reduce_window_sum"),
    }
)
"""Primitives a graphbp op computes in floats whose integer result wraps around in JAX when
it leaves its dtype's range (uint8 200 + 200 is 144): refused on integers of 16 bits or
fewer, whose range is easily left."""
SCOPED = frozenset({"jit", "pjit"})
"""Inlined calls whose name is a scope when the function is the user's (not JAX's own)."""
_JAX_DIR = os.path.dirname(os.path.abspath(jax.__file__))


class Converter:
    """Builds the nodes and edges of one imported network.

    Args:
        taken: node names already given to leaves (by their ``name_key``).
    """

    def __init__(self, taken: set[str]) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[tuple[str, str, int]] = []
        self.taken = set(taken)
        self.counters: dict[str, int] = {}
        self.consts: dict[Any, tuple[Any, Val]] = {}
        """Const nodes by value: a scalar's, or the id of an array held here beside its node
        (so that no later array can take that id while the key is in use)."""
        self.scope: list[str] = []
        self.source: str | None = None
        self.where = ""
        self.closed: dict[int, tuple[Any, Val]] = {}
        self.whole: Any = None
        """A jit equation that is the whole traced function (``from_jax(jax.jit(f))``),
        whose name is no scope: it would hold every node."""
        self.available = frozenset(ops())
        """The ops installed or registered (asking get_op for another costs a search for
        names like it)."""

    # ------------------------------------------------------------------ nodes

    def fresh(self, base: str) -> str:
        """A new node name ``{base}_{k}`` that no other node has."""
        k = self.counters.get(base, 0)
        while True:
            k += 1
            name = f"{base}_{k}"
            if name_key(name) not in self.taken:
                self.counters[base] = k
                self.taken.add(name_key(name))
                return name

    def leaf(self, name: str, kind: str, shape: tuple[int, ...]) -> None:
        """A leaf node (``param`` or ``input``)."""
        self.nodes[name] = {"op": kind, "shape": shape}

    def _attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.scope:
            attrs["scope"] = "/".join(self.scope)
        if self.source:
            attrs["source"] = self.source
        return attrs

    def node_of(self, val: Val) -> str:
        """The node holding ``val``: a const node for a constant (equal scalars share one)."""
        if val.node is not None:
            return val.node
        value = np.asarray(val.value)
        if value.dtype == np.bool_:
            value = value.astype(np.int8)
        if value.dtype.kind not in "iuf":
            raise InputError(
                f"{self.where}: a constant of dtype {value.dtype} cannot be a graphbp value "
                "(values are real numbers); compute it outside the function and pass it in"
            )
        if value.dtype.kind in "iu":
            check_exact_ints(value, f"{self.where}: a constant")
        key: Any = ("scalar", float(value)) if value.ndim == 0 else ("array", id(val.value))
        if key in self.consts:
            return str(self.consts[key][1].node)
        name = self.fresh("const")
        plain = value.item() if value.ndim == 0 else value.astype(np.float64)
        self.nodes[name] = {"op": "const", "value": plain}
        node = Val(val.shape, val.dtype, node=name)
        self.consts[key] = (val.value, node)
        return name

    def closed_over(self, value: Any) -> Val:
        """A constant a jaxpr closes over: one Val (so one const node) per array, however
        often the function closing over it is inlined."""
        key = id(value)
        if key not in self.closed:
            self.closed[key] = (value, self.const(value))  # holds value: its id stays its own
        return self.closed[key][1]

    def const(self, value: Any) -> Val:
        """A constant (see ``Emitter``)."""
        array = np.asarray(value)
        return Val(array.shape, array.dtype, value=array)

    def op(self, name: str, operands: Sequence[Val], attrs: dict[str, Any], like: Val | Any) -> Val:
        """A node of op ``name`` (see ``Emitter``).

        Raises:
            Unsupported: no such op, or its shape rule refuses these operands and
                attributes, or gives another shape than the equation's.
        """
        shape = tuple(int(d) for d in like.shape)
        if name not in self.available:
            raise Unsupported(f"no op {name!r}")
        if name in BROADCASTING:
            operands = _narrowed(operands, shape)
        try:
            op = get_op(name)
        except GraphbpError as exc:  # e.g. a plugin that fails to load
            raise Unsupported(f"op {name!r}: {exc}") from exc
        if defines_shape(op):
            try:
                got = op.shape(*(v.shape for v in operands), **attrs)
            except (ValueError, TypeError) as exc:
                raise Unsupported(f"{name}: {exc}") from exc
            if tuple(got) != shape:
                raise Unsupported(f"{name} gives shape {tuple(got)}, the equation {shape}")
        node = self.fresh(name)
        self.add(node, name, operands, attrs)
        return Val(shape, np.dtype(like.dtype), node=node)

    def add(self, node: str, op: str, operands: Sequence[Val], attrs: dict[str, Any]) -> None:
        """Add op node ``node`` on ``operands`` (const nodes made as needed)."""
        sources = [self.node_of(v) for v in operands]
        self.nodes[node] = {"op": op, **attrs, **self._attrs()}
        self.edges.extend((s, node, i) for i, s in enumerate(sources))

    # ------------------------------------------------------------------ the walk

    def run(
        self, jaxpr: Any, consts: Sequence[Val], args: Sequence[Val], needed: Sequence[bool]
    ) -> list[Val | None]:
        """The values of ``jaxpr``'s outputs that are ``needed``, adding the nodes they need."""
        env: dict[Any, Val] = dict(zip(jaxpr.constvars, consts, strict=True))
        env.update(zip(jaxpr.invars, args, strict=True))
        live, used = _liveness(jaxpr, needed)
        scope, outer = list(self.scope), self.source
        for eqn in (e for e, keep in zip(jaxpr.eqns, live, strict=True) if keep):
            ins = [_read(env, v) for v in eqn.invars]
            wanted = [isinstance(v, jcore.Var) and v in used for v in eqn.outvars]
            self.scope = scope + _name_stack(eqn)
            # a body JAX traced apart (custom_jvp's) has no user frame: its call's line
            self.source = _source(eqn) or outer
            self.where = f"{eqn.primitive.name} at {self.source or 'an unknown line'}"
            outs = self.equation(eqn, ins, wanted)
            for var, out, want in zip(eqn.outvars, outs, wanted, strict=True):
                if want and out is not None:
                    env[var] = out
        self.scope, self.source = scope, outer
        return [_read(env, v) if n else None for v, n in zip(jaxpr.outvars, needed, strict=True)]

    def equation(self, eqn: Any, ins: list[Val], wanted: list[bool]) -> list[Val | None]:
        """The used outputs of one equation."""
        name = eqn.primitive.name
        if name == "custom_jvp_call" and not all(v.is_const for v in ins):
            custom = self.custom(eqn, ins)
            if custom is not None:
                return custom
        if name in INLINED and INLINED[name] in eqn.params:
            if name in CUSTOM_RULES and _jax_function(_body(eqn.params[INLINED[name]])) is None:
                return self.opaque(eqn, ins, wanted)
            return self.inline(eqn, ins, wanted)
        foldable = all(v.is_const for v in ins) and not eqn.effects
        if not foldable:
            self._refuse_complex(eqn)
            self._refuse_wrapping(eqn)
        if name in ALIASED and len(ins) == len(eqn.outvars):
            return list(ins)
        size = sum(math.prod(v.aval.shape) for v in eqn.outvars)
        if foldable and size <= FOLD_LIMIT:
            folded = self.fold(eqn, ins)
            if folded is not None:
                return folded
        rule = RULES.get(name)
        if rule is not None:
            before = (len(self.nodes), len(self.edges), dict(self.counters))
            try:
                return list(rule(self, eqn, ins))
            except Unsupported:
                self._rollback(*before)
        folded = self.fold(eqn, ins) if foldable else None
        return folded if folded is not None else self.opaque(eqn, ins, wanted)

    def _refuse_complex(self, eqn: Any) -> None:
        """Raise InputError if the equation takes or gives a complex value (graphbp values
        are real: an op or opaque node would keep only the real part)."""
        for var in (*eqn.invars, *eqn.outvars):
            dtype = getattr(var.aval, "dtype", None)
            if dtype is not None and not _extended(dtype) and np.dtype(dtype).kind == "c":
                raise InputError(
                    f"{self.where}: the equation computes with complex numbers (dtype "
                    f"{np.dtype(dtype)}), and graphbp values are real; write this part with "
                    "real arithmetic (real and imaginary parts as separate arrays; a DFT as "
                    "products with cos/sin matrices), or compute it outside the function"
                )

    def _refuse_wrapping(self, eqn: Any) -> None:
        """Raise InputError if the equation's integer result could wrap around in JAX (a
        graphbp op computes it in floats, without wrapping): arithmetic on integers of 16 bits
        or fewer, or a conversion to such an integer dtype that cannot hold every operand
        value."""
        name = eqn.primitive.name
        out = _int_dtype(eqn.outvars[0].aval) if len(eqn.outvars) == 1 else None
        if out is None:
            return
        if name == "convert_element_type":
            old = _int_dtype(eqn.invars[0].aval)
            if old is None or np.can_cast(old, out, "safe") or out.itemsize > 2:
                return  # int64 → int32 is JAX's own index conversion (jnp.take)
            what = f"converts {old} to {out}, which wraps values {out} cannot hold"
            fix = f"keep the values in {old} or convert them to a float"
        elif name in WRAPPING and out.itemsize <= 2:
            what = f"computes {out} values, which wrap around past {np.iinfo(out).max}"
            fix = "convert the operands to a wider dtype first (x.astype(jnp.int32) or float32)"
        else:
            return
        raise InputError(
            f"{self.where}: the equation {what} in JAX, while graphbp computes integers as "
            f"floats (no wrapping); {fix}"
        )

    def _rollback(self, nodes: int, edges: int, counters: dict[str, int]) -> None:
        """Drop the nodes and edges added since there were ``nodes`` and ``edges``."""
        for node in list(self.nodes)[nodes:]:
            del self.nodes[node]
            self.taken.discard(name_key(node))
        self.consts = {k: v for k, v in self.consts.items() if v[1].node in self.nodes}
        del self.edges[edges:]
        self.counters = counters

    def custom(self, eqn: Any, ins: list[Val]) -> list[Val | None] | None:
        """One node of the op computing a custom_jvp function of JAX's with its custom rule
        (``CUSTOM``), or None for any other (its body is then inlined)."""
        body = eqn.params.get("call_jaxpr")
        jaxpr = getattr(body, "jaxpr", body)
        found = CUSTOM.get(_jax_function(jaxpr) or "")
        if found is None or len(ins) != found[1] or len(eqn.outvars) != 1:
            return None
        out = eqn.outvars[0].aval
        if not is_float(out.dtype) or any(not is_float(v.dtype) for v in ins):
            return None
        before = (len(self.nodes), len(self.edges), dict(self.counters))
        try:
            return [self.op(found[0], _narrowed(ins, tuple(out.shape)), {}, out)]
        except Unsupported:
            self._rollback(*before)
            return None

    def inline(self, eqn: Any, ins: list[Val], wanted: list[bool]) -> list[Val | None]:
        """The body of a call-like equation, inlined (a user's jit function is a scope)."""
        body = eqn.params[INLINED[eqn.primitive.name]]
        jaxpr = getattr(body, "jaxpr", body)
        consts = [self.closed_over(c) for c in getattr(body, "consts", ())]
        if len(jaxpr.invars) != len(ins):
            raise InputError(f"{self.where}: the body of {eqn.primitive.name} takes other operands")
        outer = self.scope
        name = str(eqn.params.get("name", ""))
        if (
            eqn.primitive.name in SCOPED
            and name.isidentifier()  # not "<lambda>"
            and eqn is not self.whole
            and _is_users(jaxpr)
        ):
            self.scope = [*outer, name]
        try:
            return self.run(jaxpr, consts, ins, wanted)
        finally:
            self.scope = outer

    def fold(self, eqn: Any, ins: list[Val]) -> list[Val | None] | None:
        """The equation evaluated with JAX on its constant operands, or None if it cannot be."""
        try:
            operands = [
                _as_dtype(v.value, var.aval.dtype) for v, var in zip(ins, eqn.invars, strict=True)
            ]
            outs = eqn.primitive.bind(*operands, **eqn.params)
        except Exception:  # whatever JAX refuses to evaluate here stays an op
            return None
        outs = outs if eqn.primitive.multiple_results else [outs]
        vals: list[Val | None] = []
        for var, out in zip(eqn.outvars, outs, strict=True):
            dtype = var.aval.dtype
            value = out if _extended(dtype) else np.asarray(out)
            val = Val(tuple(var.aval.shape), dtype, value=value)
            if eqn.primitive.name == "broadcast_in_dim" and numpy_broadcast(eqn):
                val = replace(val, narrow=ins[0])  # an op may use the constant unbroadcast
            vals.append(val)
        return vals

    def opaque(self, eqn: Any, ins: list[Val], wanted: list[bool]) -> list[Val | None]:
        """One opaque node running the equation with JAX; several used outputs unpacked."""
        used = [i for i, w in enumerate(wanted) if w]
        if not used:
            return [None] * len(wanted)
        keys = [v.aval.dtype for v in [*eqn.invars, *eqn.outvars] if _extended(v.aval.dtype)]
        if keys:
            raise InputError(
                f"{self.where}: the equation computes with a JAX {keys[0]} value (a PRNG key) "
                "made from the function's arguments, which a graphbp value cannot hold; draw "
                "the random numbers outside the function and pass them in as an argument"
            )
        call = JaxCall(
            eqn.primitive,
            dict(eqn.params),
            [(tuple(v.aval.shape), v.aval.dtype) for v in eqn.invars],
            {
                i: _as_dtype(v.value, var.aval.dtype)
                for i, (v, var) in enumerate(zip(ins, eqn.invars, strict=True))
                if v.is_const
            },
            [(tuple(v.aval.shape), v.aval.dtype) for v in eqn.outvars],
            used,
            self.source,
        )
        fed = [ins[i] for i in call.fed]
        if len(fed) != 1:
            fed = [self._pack(fed)]
        node = self.fresh(call.name)
        self.add(node, "opaque", fed, {"primitive": call.name, "call": call})
        if len(used) == 1:
            out = Val(call.out_shape(), call.out_avals[used[0]][1], node=node)
            return [out if i == used[0] else None for i in range(len(wanted))]
        flat = Val(call.out_shape(), np.dtype(np.float64), node=node)  # of mixed dtypes
        outs: list[Val | None] = [None] * len(wanted)
        start = 0
        for i in used:
            shape, dtype = call.out_avals[i]
            size = math.prod(shape)
            attrs = {"start_indices": [start], "limit_indices": [start + size], "strides": None}
            part = self._must("slice", [flat], attrs, Val((size,), dtype))
            outs[i] = self._must("reshape", [part], {"new_sizes": list(shape)}, Val(shape, dtype))
            start += size
        return outs

    def _pack(self, vals: list[Val]) -> Val:
        """Several values flattened and concatenated into one vector."""
        flat = []
        for v in vals:
            size = math.prod(v.shape)
            like = Val((size,), v.dtype)
            flat.append(
                v if len(v.shape) == 1 else self._must("reshape", [v], {"new_sizes": [-1]}, like)
            )
        out = flat[0]
        for v in flat[1:]:
            like = Val((out.shape[0] + v.shape[0],), v.dtype)
            out = self._must("concatenate", [out, v], {"dimension": 0}, like)
        return out

    def _must(self, name: str, operands: Sequence[Val], attrs: dict[str, Any], like: Val) -> Val:
        try:
            return self.op(name, operands, attrs, like)
        except Unsupported as exc:
            raise InputError(
                f"{self.where}: cannot build the {name} node that packs an opaque node's "
                f"operands or results ({exc}); is graphbp's built-in op {name!r} installed?"
            ) from exc

    # ------------------------------------------------------------------ the graph

    def graph(self, loss: Val) -> nx.DiGraph:
        """The graph, its loss node named ``loss``, pruned to what the loss and leaves need."""
        if loss.node is None or self.nodes[loss.node]["op"] in ("param", "input", "const"):
            loss = self.op("sum", [loss], {}, Val((), loss.dtype))
        top = str(loss.node)
        g = nx.DiGraph()
        keep = _ancestors(top, self.edges)
        for name, attrs in self.nodes.items():
            if name in keep or attrs["op"] in ("param", "input"):
                g.add_node("loss" if name == top else name, **attrs)
        for source, target, arg in self.edges:
            if target not in keep:
                continue
            u, v = source, "loss" if target == top else target
            if g.has_edge(u, v):
                old = g.edges[u, v]["arg"]
                g.edges[u, v]["arg"] = (*(old if isinstance(old, tuple) else (old,)), arg)
            else:
                g.add_edge(u, v, arg=arg)
        return g


def _int_dtype(aval: Any) -> np.dtype[Any] | None:
    """An aval's dtype if it is a NumPy integer dtype (not bool), else None."""
    dtype = getattr(aval, "dtype", None)
    if dtype is None or _extended(dtype):
        return None
    found: np.dtype[Any] = np.dtype(dtype)
    return found if found.kind in "iu" else None


def check_exact_ints(value: np.ndarray[Any, Any], what: str) -> None:
    """Raise InputError if an integer array holds a value that the float dtype of the trace
    (float64 in 64-bit mode, else float32) cannot hold exactly (beyond 2**53 or 2**24)."""
    x64 = jax.dtypes.canonicalize_dtype(np.float64) == np.float64
    bits = 53 if x64 else 24
    if value.size and int(np.max(np.abs(value.astype(np.float64)))) > 2**bits:
        raise InputError(
            f"{what} holds integers beyond 2**{bits}, which graphbp's "
            f"{'float64' if x64 else 'float32'} values (integers are computed as floats) "
            "cannot hold exactly; keep such integers out of the function"
            + ("" if x64 else " or trace it with float64 arguments")
        )


def _narrowed(operands: Sequence[Val], shape: tuple[int, ...]) -> list[Val]:
    """The operands of an op that broadcasts as NumPy does, each broadcast_in_dim NumPy
    would do itself undone while the result keeps ``shape`` (``x·W + b``: b, not b
    broadcast to the batch)."""
    out = list(operands)
    for k, v in enumerate(out):
        if v.narrow is None:
            continue
        trial = [*out[:k], v.narrow, *out[k + 1 :]]
        try:
            fits = np.broadcast_shapes(*(t.shape for t in trial)) == shape
        except ValueError:
            fits = False
        if fits:
            out = trial
    return out


def _ancestors(node: Hashable, edges: Sequence[tuple[str, str, int]]) -> set[Hashable]:
    into: dict[Hashable, list[str]] = {}
    for source, target, _ in edges:
        into.setdefault(target, []).append(source)
    seen, stack = {node}, [node]
    while stack:
        for source in into.get(stack.pop(), ()):
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return seen


def _as_dtype(value: Any, dtype: Any) -> Any:
    """A constant in the dtype its equation takes (an aliased conversion may have kept the
    value in its former dtype: a bool where an int32 is taken)."""
    if isinstance(value, np.ndarray | np.generic) and value.dtype != dtype:
        return np.asarray(value).astype(dtype)
    return value


def _extended(dtype: Any) -> bool:
    """Whether ``dtype`` is one of JAX's extended dtypes (a PRNG key), not a NumPy dtype."""
    return bool(jnp.issubdtype(dtype, jax.dtypes.extended))


def _read(env: dict[Any, Val], var: Any) -> Val:
    if isinstance(var, jcore.Literal):
        aval: Any = var.aval
        return Val(tuple(aval.shape), aval.dtype, value=np.asarray(var.val, dtype=aval.dtype))
    return env[var]


def _liveness(jaxpr: Any, needed: Sequence[bool]) -> tuple[list[bool], set[Any]]:
    """Which equations the needed outputs depend on, and every variable they use."""
    used = {v for v, n in zip(jaxpr.outvars, needed, strict=True) if n and isinstance(v, jcore.Var)}
    live = [False] * len(jaxpr.eqns)
    for k in range(len(jaxpr.eqns) - 1, -1, -1):
        eqn = jaxpr.eqns[k]
        if any(v in used for v in eqn.outvars if isinstance(v, jcore.Var)):
            live[k] = True
            used.update(v for v in eqn.invars if isinstance(v, jcore.Var))
    return live, used


def _name_stack(eqn: Any) -> list[str]:
    """The named scopes an equation sits in (relative to its jaxpr), without JAX's
    transformation marks (``vmap``, ``jvp``, ``transpose``); the scopes JAX's ``jnp.einsum``
    names after its subscripts (``bqd,bkd->bqk``) are not the user's. A name holding "/"
    is nested scopes, its empty parts dropped."""
    names = [
        str(entry.name)
        for entry in eqn.source_info.name_stack.stack
        if isinstance(entry, source_info_util.Scope)  # not a Transform (vmap, jvp, ...)
    ]
    kept = [name for name in names if name and not _EINSUM.fullmatch(name)]
    return [part for name in kept for part in name.split("/") if part]  # "a//b/": a, b


_EINSUM = re.compile(r"[\w\s.,]*->[\w\s.]*")


def _source(eqn: Any) -> str | None:
    frame = source_info_util.user_frame(eqn.source_info.traceback)
    if frame is None:
        return None
    return f"{os.path.basename(frame.file_name)}:{frame.start_line}"


def _defined(jaxpr: Any) -> tuple[str, str]:
    """The name of the function ``jaxpr`` was traced from and the file defining it ("" if
    unknown), read from its ``debug_info`` (``"relu at /…/jax/_src/nn/functions.py:71"``)."""
    info = getattr(jaxpr, "debug_info", None)
    src = getattr(info, "func_src_info", None) or ""
    name, _, where = src.partition(" at ")
    return name, where.rpartition(":")[0] or where


def _is_users(jaxpr: Any) -> bool:
    """Whether a jitted function is the user's: defined outside the jax package."""
    _, path = _defined(jaxpr)
    if not path:
        return False
    return not os.path.abspath(path).startswith(_JAX_DIR + os.sep)


def _body(call: Any) -> Any:
    """The jaxpr of a call's body (a closed jaxpr's, or the jaxpr itself)."""
    return getattr(call, "jaxpr", call)


def _jax_function(jaxpr: Any) -> str | None:
    """The name of the function ``jaxpr`` was traced from, if the jax package defines it."""
    name, path = _defined(jaxpr)
    if not path or not os.path.abspath(path).startswith(_JAX_DIR + os.sep):
        return None
    return name


def check_loss(out_shape: Any, name: str) -> None:
    """Raise InputError unless ``fn`` returned one float scalar (``out_shape`` from tracing)."""
    if isinstance(out_shape, jax.ShapeDtypeStruct):
        if out_shape.shape == () and is_float(out_shape.dtype):
            return
        what = (
            f"an array of shape {tuple(out_shape.shape)}"
            if out_shape.shape != ()
            else f"a scalar of dtype {out_shape.dtype}"
        )
    else:
        count = len(jax.tree_util.tree_leaves(out_shape))
        what = f"{show(type(out_shape).__name__)[1:-1]} of {count} array(s)"
    raise InputError(
        f"{name} returned {what}; from_jax needs a function returning its loss, one float "
        "scalar (reduce it with jnp.sum or jnp.mean; return auxiliary values from another "
        "function)"
    )
