"""The engine: one generic traversal of a plan that applies the chain rule.

``interpret`` is the traversal itself, a loop over the plan's steps: forward in topological
order, then one vjp per node in reverse, each node's upstream gradient complete before it is
used and summed where a value fans out. ``graphbp.codegen`` writes the same traversal out as
straight-line Python for one plan; both call the rules a ``Rules`` holds (``call_forward`` and
``call_vjp``, or a backend's wrapping of them) and must agree on every graph.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from graphbp.errors import InputError, NonFiniteError
from graphbp.op import Array

if TYPE_CHECKING:
    from graphbp.plan import BackStep, Plan, Step

Run = Callable[[Sequence[Array], Sequence[Array]], Any]
"""``run(params, inputs)`` by position in the plan: the outputs' values, or with gradient
the loss and a tuple of ∂loss/∂param for the plan's parameters."""


class Rules(NamedTuple):
    """What the traversal calls at each step (built by the Program for its backend)."""

    forward: Callable[[Step, Sequence[Array]], Array]
    """(step, operands) → the step's checked output."""
    vjp: Callable[[BackStep, Array, Array, Sequence[Array], Sequence[Any]], Sequence[Any]]
    """(step, g, out, operands, operand shapes) → the step's checked cotangents."""
    consts: Sequence[Array]
    """The values of the plan's const nodes, in plan order."""
    one: Array
    """∂L/∂L, the seed of the backward pass."""
    xp: Any
    check_finite: bool = False
    seal: Callable[[Array], Array] | None = None
    """Strict programs: marks a value read-only before a plugin sees it. ``forward`` and
    ``vjp`` above apply it themselves; the generated traversal applies it inline."""


def interpret(plan: Plan, rules: Rules, with_grad: bool) -> Run:
    """The traversal as a loop over ``plan``: the chain rule in one screen."""

    def run(params: Sequence[Array], inputs: Sequence[Array]) -> Any:
        value: list[Any] = [None] * plan.size
        for leaves, given in ((plan.params, params), (plan.inputs, inputs)):
            for (_, s), v in zip(leaves, given, strict=True):
                value[s] = v
        for (_, s), v in zip(plan.consts, rules.consts, strict=True):
            value[s] = v
        shape = [getattr(v, "shape", None) for v in value]
        forward, vjp = rules.forward, rules.vjp
        for step in plan.forward:
            value[step.out] = out = forward(step, [value[a] for a in step.args])
            shape[step.out] = out.shape
            if rules.check_finite:
                finite(rules.xp, out, step, "value", [value[a] for a in step.args])
            for s in step.free:
                value[s] = None
        if not with_grad:
            return tuple(value[s] for s in plan.outputs)

        loss = plan.outputs[0]
        check_scalar(plan, value[loss])
        grad: list[Any] = [None] * plan.size
        grad[loss] = rules.one  # ∂L/∂L = 1
        for back in plan.backward:
            # Every consumer of back.out came later in topological order, so it was visited
            # first here: ∂L/∂out is complete, computed once, and reused below.
            out, *operands = (
                value[s] if read else None
                for s, read in zip((back.out, *back.args), back.reads, strict=True)
            )
            cts = vjp(back, grad[back.out], out, operands, [shape[a] for a in back.args])
            grad[back.out] = None
            for i, a in back.targets:  # a value with several consumers sums their shares
                if rules.check_finite:
                    finite(rules.xp, cts[i], back, "gradient")
                grad[a] = cts[i] if grad[a] is None else grad[a] + cts[i]
            for s in back.free:
                value[s] = None
        for _, s in plan.params:  # reaching the loss only through operands with no gradient
            grad[s] = rules.xp.zeros_like(value[s]) if grad[s] is None else grad[s]
        return value[loss], tuple(grad[s] for _, s in plan.params)

    return run


# ------------------------------------------------------------------ run-time checks


def check_scalar(plan: Plan, loss: Any) -> None:
    """Raise InputError unless the loss value is a scalar (its static shape may be unknown)."""
    if getattr(loss, "shape", ()) != ():
        raise InputError(
            f"loss node {node_of(plan, plan.outputs[0])!r} has shape {tuple(loss.shape)} for "
            "these inputs; a loss must be a scalar: reduce it with a sum, mean or sse node"
        )


def finite(
    xp: Any, value: Array, step: Step | BackStep, what: str, operands: Sequence[Array] = ()
) -> None:
    """Raise NonFiniteError naming the step's node if ``value`` holds NaN or Inf, except an
    infinity its ``operands`` passed on (a causal mask's ``-inf`` const, selected and shifted
    on its way to an ``exp``): that node did not go non-finite; a NaN always did."""
    try:
        ok = bool(xp.all(xp.isfinite(value)))
        if not ok and operands and not bool(xp.any(xp.isnan(value))):
            ok = not all(bool(xp.all(xp.isfinite(v))) for v in operands)
    except TypeError:  # a traced value (inside a JAX transformation): unknown until it runs
        return
    if not ok:
        raise NonFiniteError(
            f"the {what} at node {step.node!r} (op {step.op.name!r}) is not finite "
            f"(NaN or Inf); check that op's inputs, lower the learning rate or rescale the data"
        )


def node_of(plan: Plan, slot: int) -> Hashable:
    """The node held in ``slot``."""
    return next(n for n, s in plan.slots.items() if s == slot)
