"""The traversal of one plan written out as straight-line Python, then compiled.

``generate`` walks a plan exactly as ``engine.interpret`` does and writes down what it does:
one line per op application, one per vjp, one per gradient contribution, a ``del`` wherever a
value is no longer read. A run then costs the ops' own calls and little else, and
``Program.source()`` shows the chain rule spelled out for the user's own graph. Node names
appear only in comments; the code itself is made of slot numbers.

The checks of ``call_forward`` and ``call_vjp`` are inlined as a fast path: a result that is
already an array of the program's type, dtype and shape is used as it is; anything else goes
to the very check functions those two call, so both traversals fail and succeed alike. So does
a plugin that raises: the whole body sits in one ``try`` (free in Python 3.11 until something
raises), whose handler finds the failing call by its line and raises what ``call_forward`` or
``call_vjp`` would have raised there.
"""

from __future__ import annotations

import itertools
import linecache
import unicodedata
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import AbstractContextManager
from keyword import iskeyword
from typing import TYPE_CHECKING, Any, NamedTuple

from graphbp.engine import Rules, Run, check_scalar, finite
from graphbp.errors import GraphbpError, InputError
from graphbp.op import (
    Arrays,
    Shape,
    check_cotangent,
    check_count,
    check_output,
    plugin_raised,
    vjp_kwargs,
)

if TYPE_CHECKING:
    from graphbp.plan import BackStep, Plan, Step

_counter = itertools.count()


class Compiled(NamedTuple):
    """A plan as a Python function ``run(params, inputs)`` and its source."""

    run: Run
    source: str


def generate(plan: Plan, arrays: Arrays, rules: Rules, with_grad: bool) -> Compiled:
    """Write the plan's traversal as Python source, compile it and return the function."""
    source, ns = write(plan, arrays, rules, with_grad)
    filename = f"<graphbp plan {next(_counter)}>"
    exec(compile(source, filename, "exec"), ns)  # our own source: slots, not names
    run = ns["run"]
    # Tracebacks show the generated lines for as long as the function lives, and no longer.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    weakref.finalize(run, linecache.cache.pop, filename, None)
    return Compiled(run, source)


def write(plan: Plan, arrays: Arrays, rules: Rules, with_grad: bool) -> tuple[str, dict[str, Any]]:
    """The source of ``run(P, X)`` for ``plan`` and the namespace it runs in (not compiled).

    Forward steps call the plugin's ``forward`` and backward steps its ``vjp``; ``rules``
    supplies the constants, ∂L/∂L and whether to check finiteness.
    """
    w = _Writer(plan, arrays, rules)
    w.leaves()
    w.forward()
    if with_grad:
        w.backward()
    else:
        w.emit(f"return ({''.join(f'v{s}, ' for s in plan.outputs)})")
    w.handler()
    source = "\n".join(w.lines) + "\n"
    w.lines = []  # the namespace keeps the writer (for RAISED), not its lines
    return source, w.ns


class _Writer:
    """Accumulates the source lines of one plan's function and the names they refer to.

    Variables: ``v7`` is the value in slot 7, ``g7`` is ∂L/∂(slot 7), ``s7`` its shape. ``F3``
    and ``B3`` are the forward and vjp of forward step 3 and backward step 3; ``O3`` and
    ``N3`` the op and node of backward step 3. ``SEAL`` (strict programs only) marks an
    array read-only before a plugin sees it.
    """

    def __init__(self, plan: Plan, arrays: Arrays, rules: Rules) -> None:
        self.plan, self.check_finite = plan, rules.check_finite

        def out(step: Step, value: Any) -> Any:
            return check_output(step.op, arrays, step.node, value, step.shape)

        def count(step: BackStep, cts: Any) -> None:
            check_count(step.op, step.node, cts, len(step.args))

        # The names every line uses are bound once as locals, the fastest lookups there are.
        self.lines = ["def run(P, X):", "    xp, exact, dtype, seq = LOCALS", "    try:"]
        self.calls: dict[int, tuple[str, int]] = {}
        """Source line → ("forward" or "vjp", step index) of each line that calls a plugin."""
        self.seal = rules.seal
        self.ns: dict[str, Any] = {
            "LOCALS": (arrays.xp, _exact(arrays), arrays.dtype, (tuple, list)),
            "ONE": rules.one,
            "PLAN": plan,
            "FWD": plan.forward,
            "BWD": plan.backward,
            "OUT": out,
            "ARRAYS": arrays,
            "CT": check_cotangent,  # the slow path: CT(op, ARRAYS, node, i, t, shape, g.ndim)
            "COUNT": count,
            "SCALAR": check_scalar,
            "FINITE": finite,
            "RAISED": self.raised,
            "GRAPHBP_ERROR": GraphbpError,
        }
        if rules.seal is not None:
            self.ns["SEAL"] = rules.seal
        self.name = {s: _label(n) for n, s in plan.slots.items()}
        self.shape = {
            a: _static(plan.shapes[a]) or f"s{a}" for step in plan.backward for _, a in step.targets
        }
        """For each slot whose shape a cotangent may have to be summed back to: its shape as
        source, a literal where it is static, else a variable set when the value is."""
        self.consts = rules.consts

    def emit(self, code: str, comment: str = "") -> None:
        self.lines.append(f"        {code}  # {comment}" if comment else f"        {code}")

    def call(self, kind: str, k: int, code: str, comment: str) -> None:
        """Emit a line that calls a plugin, and remember which step it is."""
        self.emit(code, comment)
        self.calls[len(self.lines)] = (kind, k)  # line numbers count from 1: "def run" is 1

    def handler(self) -> None:
        """Close the body's ``try``: a plugin's own exception becomes the PluginError that
        ``call_forward``/``call_vjp`` raise; graphbp's errors and the rest pass unchanged."""
        self.lines += [
            "    except GRAPHBP_ERROR:",
            "        raise",
            "    except Exception as exc:",
            "        RAISED(exc)",
            "        raise",
        ]

    def raised(self, exc: Exception) -> None:
        """Raise the PluginError for ``exc`` if a plugin call raised it, else return.

        The traceback's first entry is ``run``'s own frame, stopped at the failing line; its
        locals hold the values that call was given.
        """
        tb = exc.__traceback__
        call = None if tb is None else self.calls.get(tb.tb_lineno)
        if tb is None or call is None:
            return
        kind, k = call
        local = tb.tb_frame.f_locals
        if kind == "forward":
            step = self.plan.forward[k]
            operands = [local.get(f"v{a}") for a in step.args]
            raise plugin_raised(step.op, step.node, kind, exc, operands) from exc
        back = self.plan.backward[k]
        operands = [
            local.get(f"v{a}") if read else None
            for a, read in zip(back.args, back.reads[1:], strict=True)
        ]
        g = local.get(f"g{back.out}")
        raise plugin_raised(back.op, back.node, kind, exc, operands, g) from exc

    def free(self, slots: tuple[int, ...]) -> None:
        if slots:
            self.emit("del " + ", ".join(f"v{s}" for s in slots))

    def leaves(self) -> None:
        """Parameters and inputs by position, as the Program admitted them; constants."""
        for given, leaves in (("P", self.plan.params), ("X", self.plan.inputs)):
            if leaves:
                names = ", ".join(self.name[s] for _, s in leaves)
                self.emit(f"{''.join(f'v{s}, ' for _, s in leaves)}= {given}", names)
        for (_, s), value in zip(self.plan.consts, self.consts, strict=True):
            self.ns[f"C{s}"] = value
            self.emit(f"v{s} = C{s}", self.name[s])
        for _, s in (*self.plan.inputs, *self.plan.params, *self.plan.consts):
            if self.shape.get(s) == f"s{s}":
                self.emit(f"s{s} = v{s}.shape")

    def forward(self) -> None:
        """One line per op, in topological order, each result held to the contract."""
        for k, step in enumerate(self.plan.forward):
            self.ns[f"F{k}"] = step.op.forward
            kwargs = _keywords(self.ns, f"K{k}", step.attrs)
            operands = ", ".join(f"v{a}" for a in step.args)
            v = f"v{step.out}"
            self.call(
                "forward", k, f"{v} = F{k}(xp, {operands}{kwargs})", _formula(step, self.name)
            )
            self.emit(
                f"if {v}.__class__ not in exact or {v}.dtype is not dtype"
                f"{_misfits(v, step.shape)}: {v} = OUT(FWD[{k}], {v})"
            )
            if self.seal is not None:
                self.emit(f"{v} = SEAL({v})")
            if self.shape.get(step.out) == f"s{step.out}":
                self.emit(f"s{step.out} = {v}.shape")
            if self.check_finite:
                given = "".join(f"v{a}, " for a in step.args)
                self.emit(f"FINITE(xp, {v}, FWD[{k}], 'value', ({given}))")
            self.free(step.free)

    def backward(self) -> None:
        """The chain rule: one vjp per node, in reverse topological order.

        Every gradient is complete before it is used: all consumers of a value come after it
        in topological order, so they were visited first in reverse.
        """
        plan, name = self.plan, self.name
        loss = plan.outputs[0]
        if plan.shapes[loss] != ():  # a loss of unknown static shape is checked as it runs
            self.emit(f"if getattr(v{loss}, 'shape', ()) != (): SCALAR(PLAN, v{loss})")
        self.emit(f"g{loss} = ONE", f"∂L/∂{name[loss]} = 1")
        known = {loss}
        for k, back in enumerate(plan.backward):
            self.ns[f"B{k}"], self.ns[f"O{k}"], self.ns[f"N{k}"] = back.op.vjp, back.op, back.node
            kwargs = _keywords(self.ns, f"J{k}", vjp_kwargs(back.op, back.attrs, back.needs))
            seen = ", ".join(
                f"v{s}" if read else "None"
                for s, read in zip((back.out, *back.args), back.reads, strict=True)
            )
            g = f"g{back.out}" if self.seal is None else f"SEAL(g{back.out})"
            self.call(
                "vjp", k, f"c = B{k}(xp, {g}, {seen}{kwargs})", f"vjp of {_formula(back, name)}"
            )
            self.emit(
                f"if c.__class__ not in seq or len(c) != {len(back.args)}: COUNT(BWD[{k}], c)"
            )
            for i, a in back.targets:
                # A value with several consumers: their contributions add up (fan-out).
                t, comment = ("t", "") if a in known else (f"g{a}", f"∂L/∂{name[a]}")
                self.emit(f"{t} = c[{i}]", comment)
                self.emit(
                    f"if {t}.__class__ not in exact or {t}.dtype is not dtype or "
                    f"{t}.shape != {self.shape[a]}: "
                    f"{t} = CT(O{k}, ARRAYS, N{k}, {i}, {t}, {self.shape[a]}, g{back.out}.ndim)"
                )
                if self.check_finite:
                    self.emit(f"FINITE(xp, {t}, BWD[{k}], 'gradient')")
                if a in known:
                    self.emit(f"g{a} = g{a} + t", f"∂L/∂{name[a]}, another path")
                known.add(a)
            self.emit(f"del g{back.out}")
            self.free(back.free)
        # A parameter in the plan reaches the loss, but maybe only through operands that get
        # no gradient (a comparison's, a select_n predicate): its gradient is zero.
        for _, s in plan.params:
            if s not in known:
                self.emit(f"g{s} = xp.zeros_like(v{s})", f"∂L/∂{name[s]} = 0: no gradient path")
        self.emit(f"return v{loss}, ({''.join(f'g{s}, ' for _, s in plan.params)})")


def _static(shape: Shape | None) -> str:
    """A fully known shape as source (a tuple of ints: safe), else the empty string."""
    if shape is None or None in shape:
        return ""
    return repr(tuple(int(d) for d in shape if d is not None))


def _misfits(var: str, declared: Shape | None) -> str:
    """Source of `` or <var's shape does not fit declared>`` (None axes take any size)."""
    if declared is None:
        return ""
    if None not in declared:
        return f" or {var}.shape != {_static(declared)}"
    fixed = "".join(
        f" or {var}.shape[{i}] != {int(d)}" for i, d in enumerate(declared) if d is not None
    )
    return f" or {var}.ndim != {len(declared)}{fixed}"


def _keywords(ns: dict[str, Any], prefix: str, kwargs: Any) -> str:
    """The call's keyword arguments as source, their values put in the namespace.

    Plain keywords are cheaper to pass than ``**dict``; a key that is not a plain identifier
    (possible for an op taking ``**attrs``) goes through ``**`` and never into the source. So
    does a key that NFKC normalisation would change: Python's parser normalises identifiers
    in source (``ｘｙ`` would arrive as ``xy``), ``**`` passes the key as it is.
    """
    if not all(_plain_keyword(key) for key in kwargs):
        ns[prefix] = kwargs
        return f", **{prefix}"
    code = ""
    for i, (key, value) in enumerate(kwargs.items()):
        ns[f"{prefix}_{i}"] = value
        code += f", {key}={prefix}_{i}"
    return code


def _plain_keyword(key: Any) -> bool:
    """Whether ``key`` can be written into source as a keyword and arrive unchanged."""
    return (
        isinstance(key, str)
        and key.isidentifier()
        and not iskeyword(key)
        and unicodedata.normalize("NFKC", key) == key
    )


def _label(node: Hashable) -> str:
    """A node name (a str or a 64-bit int, by the name rule) fit for a one-line comment."""
    text = node if isinstance(node, str) else repr(node)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _formula(step: Step | BackStep, name: dict[int, str]) -> str:
    return f"{name[step.out]} = {step.op.name}({', '.join(name[a] for a in step.args)})"


def generate_entry(
    params: Sequence[tuple[Hashable, Shape | None]],
    inputs: Sequence[tuple[Hashable, Shape | None]],
    arrays: Arrays,
    admit: Callable[[str, Hashable, Any, Mapping[Any, Any]], Any],
    core: Callable[..., Any],
    precision: Callable[[], AbstractContextManager[Any]] | None,
) -> Callable[[Mapping[Any, Any], Mapping[Any, Any]], Any]:
    """``entry(params, inputs)``: the values of the leaves (name, declared shape) taken by
    name from the two mappings, in order, then ``core(params, inputs)`` on the two tuples,
    inside ``precision()`` if given. A value not already an array of the program's type,
    dtype and shape goes through ``admit(kind, name, value, given)``, which converts it or
    names the error."""
    ns: dict[str, Any] = {
        "EXACT": _exact(arrays),
        "DTYPE": arrays.dtype,
        "ADMIT": admit,
        "CORE": core,
        "PRECISION": precision,
        "MAPPINGS": _check_mappings,
    }
    lines = [
        "def entry(params, inputs):",
        "    if params.__class__ is not dict or inputs.__class__ is not dict:",
        "        MAPPINGS(params, inputs)",
    ]
    taken = {}
    for kind, given, leaves in (("param", "params", params), ("input", "inputs", inputs)):
        names = []
        for name, shape in leaves:
            i = len(ns)
            ns[f"N{i}"] = name
            lines.append(f"    a{i} = {given}.get(N{i})")
            lines.append(
                f"    if a{i}.__class__ not in EXACT or a{i}.dtype is not DTYPE"
                f"{_misfits(f'a{i}', shape)}: a{i} = ADMIT({kind!r}, N{i}, a{i}, {given})"
            )
            names.append(f"a{i}, ")
        taken[kind] = f"({''.join(names)})"
    call = f"return CORE({taken['param']}, {taken['input']})"
    if precision is None:
        lines.append(f"    {call}")
    else:
        lines += ["    with PRECISION():", f"        {call}"]
    exec(compile("\n".join(lines) + "\n", f"<graphbp entry {next(_counter)}>", "exec"), ns)
    entry: Callable[[Mapping[Any, Any], Mapping[Any, Any]], Any] = ns["entry"]
    return entry


def _check_mappings(params: Any, inputs: Any) -> None:
    """Refuse arguments that are not mappings (a list of parameters, None) with the fix."""
    for what, value in (("params", params), ("inputs", inputs)):
        if not isinstance(value, Mapping):
            raise InputError(
                f"{what} is of type {type(value).__name__}; pass a dict from {what[:-1]} "
                f"node name to array, as prog.init() returns the params"
            )


def _exact(arrays: Arrays) -> tuple[type, ...]:
    """Concrete classes whose instances are arrays of the backend: its array type and the
    dtype's scalar type (NumPy returns ``np.float64`` for a 0-d result)."""
    candidates = (arrays.types[0], arrays.dtype.type)
    return tuple(t for t in candidates if issubclass(t, arrays.types))
