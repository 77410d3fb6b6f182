"""The engine: one generic traversal of a plan that applies the chain rule.

``write_source`` walks a plan's forward steps in topological order, then its backward steps in
reverse, and writes down what it does as straight-line Python: one line per op application,
one per vjp, one per gradient contribution, a ``del`` wherever a value is no longer read. The
result is compiled once per plan, so a run costs the ops' own calls and little else, and
``Program.source()`` shows the chain rule spelled out for the user's own graph. Node names
appear only in comments; the code itself is made of slot numbers.
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable, Hashable, Mapping
from keyword import iskeyword
from typing import Any, NamedTuple

from graphbp.errors import InputError, NonFiniteError, PluginError
from graphbp.graph import Shape
from graphbp.op import Array, sum_to
from graphbp.plan import BackStep, Plan, Step

_counter = itertools.count()


class Feed(NamedTuple):
    """How leaf values enter a run (supplied by the Program that owns the plan)."""

    array_type: type | None
    """Values of this type ..."""
    dtype: Any
    """... and dtype, whose shape fits the declared one, are used as they are."""
    shapes: Mapping[Hashable, Shape | None]
    """Declared leaf shapes (None axes take any size)."""
    admit: Callable[[str, Hashable, Any, Mapping[Any, Any]], Array]
    """Anything else goes through ``admit(kind, name, value, given)``: converted, or an error."""
    consts: Mapping[Hashable, Array]
    one: Array
    """∂L/∂L, the seed of the backward pass: a read-only 1 of the program's dtype."""


class Rules(NamedTuple):
    """What the engine calls for each step: the backend's choice of forward and vjp.

    NumPy calls the plugin's own methods; JAX wraps them (custom_vjp) or supplies JAX's
    autodiff for an op that defines no vjp.
    """

    forward: Callable[[Step], Callable[..., Any]]
    vjp: Callable[[BackStep], Callable[..., Any]]


class Compiled(NamedTuple):
    """A plan as a Python function ``run(xp, params, inputs)`` and its source.

    Without gradient, ``run`` returns the outputs' values; with it, the loss and a dict of the
    gradient of each of the plan's parameters.
    """

    run: Callable[[Any, Mapping[Any, Array], Mapping[Any, Array]], Any]
    source: str


def compile_plan(
    plan: Plan, feed: Feed, rules: Rules, with_grad: bool, check_finite: bool = False
) -> Compiled:
    """Write the plan's traversal as Python source, compile it and return the function."""
    source, namespace = write_source(plan, feed, rules, with_grad, check_finite)
    filename = f"<graphbp plan {next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)  # our own source: slots, not names
    return Compiled(namespace["run"], source)


def write_source(
    plan: Plan, feed: Feed, rules: Rules, with_grad: bool, check_finite: bool
) -> tuple[str, dict[str, Any]]:
    """The source of ``run(xp, params, inputs)`` for ``plan`` and the namespace it runs in.

    Variables: ``v7`` is the value in slot 7, ``g7`` is ∂L/∂(slot 7), ``s7`` its shape. ``F3``
    and ``B3`` are the forward and vjp of forward step 3 and backward step 3; ``N7`` is the
    name of leaf 7, looked up in ``params`` or ``inputs``.
    """
    w = _Writer(plan, check_finite, rules)
    w.leaves(feed)
    w.forward()
    if with_grad:
        w.backward()
    else:
        w.emit(f"return [{', '.join(f'v{s}' for s in plan.outputs)}]")
    return "\n".join(w.lines) + "\n", w.ns


class _Writer:
    """Accumulates the source lines of one plan's function and the names they refer to."""

    def __init__(self, plan: Plan, check_finite: bool, rules: Rules) -> None:
        self.plan, self.check_finite, self.rules = plan, check_finite, rules
        self.lines = ["def run(xp, params, inputs):"]
        self.ns: dict[str, Any] = {
            "fit_cotangent": fit_cotangent,
            "count_error": count_error,
            "_finite": _finite,
            "_not_scalar": _not_scalar,
            "SEQ": (tuple, list),
            "FWD": plan.forward,
            "BWD": plan.backward,
        }
        self.name = {s: _label(n) for n, s in plan.slots.items()}
        self.shaped = {a for step in plan.backward for _, a in step.targets}
        """Slots whose shape a cotangent may have to be summed back to."""

    def emit(self, code: str, comment: str = "") -> None:
        self.lines.append(f"    {code}  # {comment}" if comment else f"    {code}")

    def free(self, slots: tuple[int, ...]) -> None:
        if slots:
            self.emit("del " + ", ".join(f"v{s}" for s in slots))

    def leaves(self, feed: Feed) -> None:
        """Arrays of the right type, dtype and shape are used as they are; others go to ADMIT."""
        plan, ns = self.plan, self.ns
        ns.update(ARRAY=feed.array_type, DTYPE=feed.dtype, ADMIT=feed.admit, ONE=feed.one)
        for kind, given, leaves in (
            ("input", "inputs", plan.inputs),
            ("param", "params", plan.params),
        ):
            for leaf, s in leaves:
                ns[f"N{s}"] = leaf
                self.emit(f"v{s} = {given}.get(N{s})", self.name[s])
                fits = f"v{s}.__class__ is ARRAY and v{s}.dtype is DTYPE"
                fits += _fits(f"v{s}", feed.shapes[leaf])
                self.emit(f"if not ({fits}): v{s} = ADMIT({kind!r}, N{s}, v{s}, {given})")
        for leaf, s in plan.consts:
            ns[f"C{s}"] = feed.consts[leaf]
            self.emit(f"v{s} = C{s}", self.name[s])
        for _, s in (*plan.inputs, *plan.params, *plan.consts):
            if s in self.shaped:
                self.emit(f"s{s} = v{s}.shape")

    def forward(self) -> None:
        """One line per op, in topological order."""
        for k, step in enumerate(self.plan.forward):
            self.ns[f"F{k}"] = self.rules.forward(step)
            kwargs = _keywords(self.ns, f"K{k}", step.attrs)
            operands = ", ".join(f"v{a}" for a in step.args)
            self.emit(f"v{step.out} = F{k}(xp, {operands}{kwargs})", _formula(step, self.name))
            if step.out in self.shaped:
                self.emit(f"s{step.out} = v{step.out}.shape")
            if self.check_finite:
                self.emit(f"_finite(xp, v{step.out}, FWD[{k}], 'value')")
            self.free(step.free)

    def backward(self) -> None:
        """The chain rule: one vjp per node, in reverse topological order.

        Every gradient is complete before it is used: all consumers of a value come after it
        in topological order, so they were visited first in reverse.
        """
        plan, name = self.plan, self.name
        loss = plan.outputs[0]
        self.emit(f"if getattr(v{loss}, 'shape', ()) != (): _not_scalar(LOSS, v{loss})")
        self.ns["LOSS"] = next(n for n, s in plan.slots.items() if s == loss)
        self.emit(f"g{loss} = ONE", f"∂L/∂{name[loss]} = 1")
        known = {loss}
        for k, back in enumerate(plan.backward):
            self.ns[f"B{k}"] = self.rules.vjp(back)
            kwargs = _keywords(self.ns, f"J{k}", back.kwargs)
            seen = ", ".join(
                f"v{s}" if read else "None"
                for s, read in zip((back.out, *back.args), back.reads, strict=True)
            )
            self.emit(
                f"c = B{k}(xp, g{back.out}, {seen}{kwargs})", f"vjp of {_formula(back, name)}"
            )
            self.emit(
                f"if c.__class__ not in SEQ or len(c) != {len(back.args)}: count_error(BWD[{k}], c)"
            )
            self.emit(f"del g{back.out}")
            for i, a in back.targets:
                # A value with several consumers: their contributions add up (fan-out).
                t, comment = ("t", "") if a in known else (f"g{a}", f"∂L/∂{name[a]}")
                self.emit(f"{t} = c[{i}]", comment)
                self.emit(
                    f"if getattr({t}, 'shape', None) != s{a}: "
                    f"{t} = fit_cotangent(xp, {t}, s{a}, BWD[{k}], {i})"
                )
                if self.check_finite:
                    self.emit(f"_finite(xp, {t}, BWD[{k}], 'gradient')")
                if a in known:
                    self.emit(f"g{a} = g{a} + t", f"∂L/∂{name[a]}, another path")
                known.add(a)
            self.free(back.free)
        # Every parameter in the plan is an ancestor of the loss, so each has its gradient now.
        self.emit(f"return v{loss}, {{{', '.join(f'N{s}: g{s}' for _, s in plan.params)}}}")


def _fits(var: str, declared: Shape | None) -> str:
    """Source of `` and <var's shape fits declared>`` (None axes take any size)."""
    if declared is None:
        return ""
    if None not in declared:
        static = tuple(int(d) for d in declared if d is not None)
        return f" and {var}.shape == {static!r}"  # a tuple of ints: safe as source
    fixed = "".join(
        f" and {var}.shape[{i}] == {int(d)}" for i, d in enumerate(declared) if d is not None
    )
    return f" and {var}.ndim == {len(declared)}{fixed}"


def _keywords(ns: dict[str, Any], prefix: str, kwargs: dict[str, Any]) -> str:
    """The call's keyword arguments as source, their values put in the namespace.

    Plain keywords are cheaper to pass than ``**dict``; a key that is not a plain identifier
    (possible for an op taking ``**attrs``) goes through ``**`` and never into the source.
    """
    if not all(key.isidentifier() and not iskeyword(key) for key in kwargs):
        ns[prefix] = kwargs
        return f", **{prefix}"
    code = ""
    for i, (key, value) in enumerate(kwargs.items()):
        ns[f"{prefix}_{i}"] = value
        code += f", {key}={prefix}_{i}"
    return code


def _label(node: Hashable) -> str:
    """A node name fit for a one-line comment."""
    text = node if isinstance(node, str) else repr(node)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _formula(step: Step | BackStep, name: dict[int, str]) -> str:
    return f"{name[step.out]} = {step.op.name}({', '.join(name[a] for a in step.args)})"


# ------------------------------------------------------------------ run-time failure paths


def fit_cotangent(xp: Any, ct: Any, shape: Any, step: Step | BackStep, position: int) -> Array:
    """Sum a broadcast cotangent back to its operand's shape, or name the plugin at fault."""
    if hasattr(ct, "shape"):
        try:
            return sum_to(xp, ct, tuple(shape))
        except ValueError:
            got = f"a cotangent of shape {tuple(ct.shape)} for operand {position}"
    else:
        got = f"{type(ct).__name__} for operand {position}, which needs a gradient"
    raise PluginError(
        f"op {step.op.name!r} at node {step.node!r}: vjp returned {got}; return an array of "
        f"the operand's shape {tuple(shape)} (or a shape it broadcasts to)"
    )


def _not_scalar(node: Hashable, loss: Array) -> None:
    raise InputError(
        f"loss node {node!r} has shape {tuple(loss.shape)} for these inputs; a loss must be a "
        "scalar: reduce it with a sum, mean or sse node"
    )


def count_error(step: Step | BackStep, cts: Any) -> None:
    got = len(cts) if isinstance(cts, tuple | list) else type(cts).__name__
    raise PluginError(
        f"op {step.op.name!r} at node {step.node!r}: vjp returned {got} cotangent(s) but the op "
        f"has {len(step.args)} operand(s); return a tuple with one cotangent per operand"
    )


def _finite(xp: Any, value: Array, step: Step | BackStep, what: str) -> None:
    try:
        finite = bool(xp.all(xp.isfinite(value)))
    except TypeError:  # a traced value (inside a JAX transformation): unknown until it runs
        return
    if not finite:
        raise NonFiniteError(
            f"the {what} at node {step.node!r} (op {step.op.name!r}) is not finite "
            f"(NaN or Inf); check that op's inputs, lower the learning rate or rescale the data"
        )
