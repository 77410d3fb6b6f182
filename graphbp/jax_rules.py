"""How each JAX primitive becomes graphbp op nodes: one rule per primitive, looked up by name.

A rule gets the converter (``Emitter``), the equation and its operands (``Val``: a node of the
network being built, or a constant) and returns one ``Val`` per output of the equation. It
raises ``Unsupported`` for a form no built-in op computes; the converter then draws the
equation as one opaque node instead. Integer and boolean JAX values are integer-valued floats
in a graphbp program (see the issue 12 contract), which is what makes most rules one op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np


class Unsupported(Exception):
    """No built-in op computes this equation (the reason is said in the message)."""


@dataclass(frozen=True, eq=False)
class Val:
    """A value of the traced program: a node of the network, or a constant (``value``)."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    node: str | None = None
    value: Any = None
    narrow: Val | None = None
    """For a ``broadcast_in_dim`` NumPy broadcasting would do itself: its operand, which an
    op that broadcasts (``BROADCASTING``) takes instead."""

    @property
    def is_const(self) -> bool:
        """Whether the value is known at import (a literal, a closed-over or folded array)."""
        return self.node is None


class Emitter(Protocol):
    """What a rule may ask of the converter."""

    def op(self, name: str, operands: Sequence[Val], attrs: dict[str, Any], like: Val | Any) -> Val:
        """A node of op ``name`` on ``operands`` whose result has the shape and dtype of
        ``like`` (a Val or a JAX aval); Unsupported if the op's shape rule refuses it."""
        ...

    def const(self, value: Any) -> Val:
        """A constant value."""
        ...


Rule = Callable[[Emitter, Any, list[Val]], list[Val]]

SAME_NAME_UNARY = (
    *("neg", "exp", "log", "tanh", "square", "sqrt", "rsqrt", "abs", "sign"),
    *("erf", "erfc", "log1p", "expm1", "sin", "cos", "tan", "atan", "exp2"),
    *("floor", "ceil", "is_finite", "stop_gradient"),
)
SAME_NAME_BINARY = ("add", "sub", "mul", "max", "min", "pow", "eq", "ne", "lt", "le", "gt", "ge")
RENAMED = {"logistic": "sigmoid", "add_any": "add"}
BROADCASTING = frozenset({*SAME_NAME_BINARY, "div", "select_n"})
"""Ops that broadcast their operands as NumPy does, so that a broadcast_in_dim before them
can be left out."""
ALIASED = frozenset({"copy", "copy_p", "device_put", "optimization_barrier", "sharding_constraint"})
"""Primitives whose outputs are their operands (each output the operand in its position)."""


def is_float(dtype: Any) -> bool:
    """Whether ``dtype`` is a floating-point dtype (bfloat16 included)."""
    return bool(np.issubdtype(dtype, np.floating)) or np.dtype(dtype).name == "bfloat16"


def _plain(value: Any) -> Any:
    """A primitive's parameter as JSON-plain data: tuples as lists, NumPy ints as int."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def _simple(name: str) -> Rule:
    def rule(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
        return [e.op(name, ins, {}, eqn.outvars[0].aval)]

    return rule


def _extremum(name: str) -> Rule:
    """``max``/``min``; with −∞ (max) or +∞ (min), as softmax's ``max(-inf, m)``, the other
    operand itself (the identity needs no node)."""
    neutral = -np.inf if name == "max" else np.inf

    def rule(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
        aval = eqn.outvars[0].aval
        for k, v in enumerate(ins):
            other = ins[1 - k]
            if (
                v.is_const
                and np.all(np.asarray(v.value) == neutral)
                and other.shape == tuple(aval.shape)
            ):
                return [other]
        return [e.op(name, ins, {}, aval)]

    return rule


def _arith(name: str) -> Rule:
    """``add``/``sub``/``mul``/``div``: on integers, division truncates toward zero."""

    def rule(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
        aval = eqn.outvars[0].aval
        out = e.op(name, ins, {}, aval)
        if name == "div" and not is_float(aval.dtype):
            if np.dtype(aval.dtype) == np.bool_:
                raise Unsupported("boolean division")
            out = e.op(
                "convert_element_type", [out], {"new_dtype": np.dtype(aval.dtype).name}, aval
            )
        return [out]

    return rule


def _logic(name: str) -> Rule:
    """``not``/``and``/``or`` on booleans (0/1 values): 1 − x, x·y, max(x, y)."""

    def rule(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
        aval = eqn.outvars[0].aval
        if np.dtype(aval.dtype) != np.bool_:
            raise Unsupported(f"bitwise {name} on integers")
        if name == "not":
            return [e.op("sub", [e.const(np.ones((), np.bool_)), ins[0]], {}, aval)]
        return [e.op("mul" if name == "and" else "max", ins, {}, aval)]

    return rule


def _reduce(name: str) -> Rule:
    def rule(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
        axes = _plain(eqn.params["axes"])
        if not axes:
            return [ins[0]]
        attrs = {"axis": axes} if name == "sum" else {"axes": axes}
        return [e.op(name, ins, attrs, eqn.outvars[0].aval)]

    return rule


def _dot_general(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    numbers = [[_plain(lc), _plain(rc)], [_plain(lb), _plain(rb)]]
    return [e.op("dot_general", ins, {"dimension_numbers": numbers}, eqn.outvars[0].aval)]


def numpy_broadcast(eqn: Any) -> bool:
    """Whether a ``broadcast_in_dim`` equation broadcasts as NumPy does (operand axes last)."""
    dims, ndim = list(eqn.params["broadcast_dimensions"]), len(eqn.params["shape"])
    return dims == list(range(ndim - len(dims), ndim))


def _broadcast_in_dim(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    shape, dims = _plain(eqn.params["shape"]), _plain(eqn.params["broadcast_dimensions"])
    x = ins[0]
    if len(ins) != 1:
        raise Unsupported("dynamic shapes")
    if list(x.shape) == shape and dims == list(range(len(shape))):
        return [x]
    attrs = {"out_shape": shape, "broadcast_dimensions": dims}
    out = e.op("broadcast_in_dim", [x], attrs, eqn.outvars[0].aval)
    return [replace(out, narrow=x) if numpy_broadcast(eqn) else out]


def _reshape(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    if eqn.params.get("dimensions") is not None or len(ins) != 1:
        raise Unsupported("reshape with dimensions")
    sizes = _plain(eqn.params["new_sizes"])
    if list(ins[0].shape) == sizes:
        return [ins[0]]
    return [e.op("reshape", ins, {"new_sizes": sizes}, eqn.outvars[0].aval)]


def _attrs_rule(name: str, *params: str) -> Rule:
    """A one-op rule whose attributes are the primitive's ``params`` as plain data."""

    def rule(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
        attrs = {p: _plain(eqn.params[p]) for p in params}
        return [e.op(name, ins, attrs, eqn.outvars[0].aval)]

    return rule


def _transpose(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    perm = _plain(eqn.params["permutation"])
    if perm == list(range(len(perm))):
        return [ins[0]]
    return [e.op("transpose", ins, {"permutation": perm}, eqn.outvars[0].aval)]


def _concatenate(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    """n-ary concatenate as a chain of binary ones (the op concatenates two operands)."""
    dim = int(eqn.params["dimension"])
    aval = eqn.outvars[0].aval
    out = ins[0]
    for k, x in enumerate(ins[1:], start=1):
        shape = list(out.shape)
        shape[dim] += x.shape[dim]
        like = aval if k == len(ins) - 1 else Val(tuple(shape), np.dtype(aval.dtype))
        out = e.op("concatenate", [out, x], {"dimension": dim}, like)
    return [out]


def _convert(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    """Conversion between values that are all floats in a program: float→float of one dtype,
    int or bool→float and int→wider int are identities; the rest truncate or test ≠ 0."""
    x, aval = ins[0], eqn.outvars[0].aval
    new, old = np.dtype(aval.dtype), np.dtype(x.dtype)
    if new == old or (is_float(new) and not is_float(old)):
        return [x]
    if (
        np.issubdtype(new, np.integer)
        and (np.issubdtype(old, np.integer) or old == np.bool_)
        and (np.iinfo(new).bits >= (1 if old == np.bool_ else np.iinfo(old).bits))
        and (
            old == np.bool_
            or np.issubdtype(new, np.signedinteger) == np.issubdtype(old, np.signedinteger)
        )
    ):
        return [x]
    return [e.op("convert_element_type", [x], {"new_dtype": new.name}, aval)]


def _select_n(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    pred, cases = ins[0], ins[1:]
    if pred.is_const:
        chosen = np.unique(np.asarray(pred.value).astype(np.int64))
        if chosen.size == 1 and cases[int(chosen[0])].shape == tuple(eqn.outvars[0].aval.shape):
            return [cases[int(chosen[0])]]  # a constant predicate picks one case
    if len(cases) != 2:
        raise Unsupported(f"select_n with {len(cases)} cases")
    return [e.op("select_n", ins, {}, eqn.outvars[0].aval)]


_GATHER_MODES = {"CLIP": "clip", "FILL_OR_DROP": "fill", "PROMISE_IN_BOUNDS": "promise_in_bounds"}


def _gather(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    p = eqn.params
    dn = p["dimension_numbers"]
    numbers = {
        k: _plain(getattr(dn, k))
        for k in (
            "offset_dims",
            "collapsed_slice_dims",
            "start_index_map",
            "operand_batching_dims",
            "start_indices_batching_dims",
        )
    }
    mode = _GATHER_MODES.get(getattr(p["mode"], "name", str(p["mode"])))
    if mode is None:
        raise Unsupported(f"gather mode {p['mode']}")
    fill = p.get("fill_value")
    if fill is not None and np.isnan(fill):
        fill = None  # the op's None is NaN (JSON has no NaN)
    if fill is not None and not np.isfinite(fill):
        raise Unsupported("an infinite fill_value")
    attrs = {
        "dimension_numbers": numbers,
        "slice_sizes": _plain(p["slice_sizes"]),
        "mode": mode,
        "fill_value": None if fill is None else float(fill),
    }
    return [e.op("gather", ins, attrs, eqn.outvars[0].aval)]


def _conv(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    p = eqn.params
    dn = p["dimension_numbers"]
    attrs = {
        "window_strides": _plain(p["window_strides"]),
        "padding": _plain(p["padding"]),
        "lhs_dilation": _plain(p["lhs_dilation"]),
        "rhs_dilation": _plain(p["rhs_dilation"]),
        "dimension_numbers": {
            "lhs_spec": _plain(dn.lhs_spec),
            "rhs_spec": _plain(dn.rhs_spec),
            "out_spec": _plain(dn.out_spec),
        },
        "feature_group_count": int(p["feature_group_count"]),
        "batch_group_count": int(p["batch_group_count"]),
    }
    return [e.op("conv", ins, attrs, eqn.outvars[0].aval)]


_WINDOW = ("window_dimensions", "window_strides", "padding", "base_dilation", "window_dilation")


def _split(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    """``split`` as one ``slice`` per output."""
    axis, x = int(eqn.params["axis"]), ins[0]
    outs, start = [], 0
    for var, size in zip(eqn.outvars, eqn.params["sizes"], strict=True):
        begin = [0] * len(x.shape)
        end = list(x.shape)
        begin[axis], end[axis] = start, start + int(size)
        attrs = {"start_indices": begin, "limit_indices": end, "strides": None}
        outs.append(e.op("slice", [x], attrs, var.aval))
        start += int(size)
    return outs


def _stack(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    """n-ary ``stack`` (``jnp.stack``): each operand gets the new axis, then a chain of
    binary concatenations joins them."""
    axis, aval = int(eqn.params["axis"]), eqn.outvars[0].aval
    dtype = np.dtype(aval.dtype)
    parts = []
    for x in ins:
        shape = (*x.shape[:axis], 1, *x.shape[axis:])
        parts.append(e.op("expand_dims", [x], {"dimensions": [axis]}, Val(shape, dtype)))
    out = parts[0]
    for k, x in enumerate(parts[1:], start=1):
        shape = (*out.shape[:axis], out.shape[axis] + 1, *out.shape[axis + 1 :])
        like = aval if k == len(parts) - 1 else Val(shape, dtype)
        out = e.op("concatenate", [out, x], {"dimension": axis}, like)
    return [out]


def _dynamic_slice(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    """``dynamic_slice`` at constant start indices: a ``slice``, the starts clamped into the
    operand as JAX clamps them."""
    x, starts = ins[0], ins[1:]
    if not all(s.is_const for s in starts):
        raise Unsupported("dynamic_slice at start indices computed at run time")
    sizes = [int(n) for n in eqn.params["slice_sizes"]]
    begin = [
        min(max(int(np.asarray(s.value)), 0), n - size)
        for s, n, size in zip(starts, x.shape, sizes, strict=True)
    ]
    attrs = {
        "start_indices": begin,
        "limit_indices": [b + size for b, size in zip(begin, sizes, strict=True)],
        "strides": None,
    }
    return [e.op("slice", [x], attrs, eqn.outvars[0].aval)]


def _round(e: Emitter, eqn: Any, ins: list[Val]) -> list[Val]:
    method = getattr(eqn.params["rounding_method"], "value", eqn.params["rounding_method"])
    return [e.op("round", ins, {"rounding_method": int(method)}, eqn.outvars[0].aval)]


RULES: dict[str, Rule] = {
    **{n: _simple(n) for n in SAME_NAME_UNARY},
    **{n: _arith(n) if n in ("add", "sub", "mul") else _simple(n) for n in SAME_NAME_BINARY},
    "max": _extremum("max"),
    "min": _extremum("min"),
    **{n: _simple(op) for n, op in RENAMED.items()},
    "div": _arith("div"),
    "not": _logic("not"),
    "and": _logic("and"),
    "or": _logic("or"),
    "reduce_sum": _reduce("sum"),
    "reduce_max": _reduce("reduce_max"),
    "reduce_min": _reduce("reduce_min"),
    "integer_pow": _attrs_rule("integer_pow", "y"),
    "dot_general": _dot_general,
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "transpose": _transpose,
    "squeeze": _attrs_rule("squeeze", "dimensions"),
    "concatenate": _concatenate,
    "slice": _attrs_rule("slice", "start_indices", "limit_indices", "strides"),
    "pad": _attrs_rule("pad", "padding_config"),
    "convert_element_type": _convert,
    "select_n": _select_n,
    "gather": _gather,
    "conv_general_dilated": _conv,
    "reduce_window_max": _attrs_rule("reduce_window_max", *_WINDOW),
    "reduce_window_sum": _attrs_rule("reduce_window_sum", *_WINDOW),
    "split": _split,
    "round": _round,
    "rev": _attrs_rule("rev", "dimensions"),
    "tile": _attrs_rule("tile", "reps"),
    "stack": _stack,
    "dynamic_slice": _dynamic_slice,
}
"""The rule of each primitive graphbp computes with its own ops; every other primitive
becomes an opaque node."""
