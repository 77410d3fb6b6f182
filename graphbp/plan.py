"""The plan: a network scheduled for a run, with slots instead of names and no networkx."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from graphbp.memory import gc_paused
from graphbp.op import Op, Shape, gradient_flows, signature_of

if TYPE_CHECKING:
    from graphbp.graph import Network


class Step(NamedTuple):
    """One op application: ``value[out] = op.forward(xp, *value[args], **attrs)``."""

    node: Hashable
    op: Op
    out: int
    args: tuple[int, ...]
    attrs: dict[str, Any]
    shape: Shape | None
    """The output's static shape, as inferred when the network was built."""
    free: tuple[int, ...]
    """Slots whose values no later step reads once this step has run."""


class BackStep(NamedTuple):
    """One chain-rule application: ∂L/∂out through the op's vjp to its operands."""

    node: Hashable
    op: Op
    out: int
    args: tuple[int, ...]
    attrs: dict[str, Any]
    needs: tuple[bool, ...]
    """Which operands need a cotangent: those on a path down to a parameter."""
    reads: tuple[bool, ...]
    """Whether the vjp reads the output and each operand (the rest are passed as None)."""
    targets: tuple[tuple[int, int], ...]
    """(position, slot) of each operand on a path to a parameter: its cotangent is kept."""
    free: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """What to compute, in order: leaves, forward steps, then backward steps."""

    outputs: tuple[int, ...]
    slots: dict[Hashable, int]
    inputs: tuple[tuple[Hashable, int], ...]
    params: tuple[tuple[Hashable, int], ...]
    consts: tuple[tuple[Hashable, int], ...]
    forward: tuple[Step, ...]
    backward: tuple[BackStep, ...]
    """Empty unless the plan differentiates its first output (the loss)."""
    shapes: tuple[Shape | None, ...]
    """The static shape of each slot's value, as inferred when the network was built."""

    @property
    def size(self) -> int:
        """The number of slots."""
        return len(self.slots)


@gc_paused()
def build_plan(net: Network, outputs: Iterable[Hashable], with_grad: bool) -> Plan:
    """Schedule ``net`` to compute ``outputs`` (and, with_grad, the gradient of the first).

    The plan keeps only ancestors of the outputs, in topological order. The backward part
    visits, in reverse order, only nodes that depend on a parameter, and every value is freed
    right after the last step that reads it (a vjp reads what its op's ``vjp_reads`` says).
    """
    outputs = tuple(outputs)
    needed = set(outputs)
    for node in outputs:
        needed |= _ancestors(net, node)
    order = [n for n in net.order if n in needed]
    slots = {n: i for i, n in enumerate(order)}
    kinds = net.kind

    # gradient flows to an operand unless its op declares it gradient-free (Op.local_grads)
    passes = {
        n: gradient_flows(net.ops[n], net.attrs[n], len(net.operands[n]))
        for n in order
        if n in net.ops
    }
    on_param_path: dict[Hashable, bool] = {}
    for n in order:
        on_param_path[n] = kinds[n] == "param" or any(
            on_param_path[a] and p for a, p in zip(net.operands[n], passes.get(n, ()), strict=True)
        )
    # ... and only from a value that gets gradient from the loss itself (not one feeding
    # only stop_gradient or a comparison)
    receives = {outputs[0]} if outputs else set()
    for n in reversed(order):
        if n in receives and n in passes:
            receives.update(a for a, p in zip(net.operands[n], passes[n], strict=True) if p)
    interior = [n for n in order if n in net.ops]
    back_nodes = (
        [n for n in reversed(interior) if on_param_path[n] and n in receives] if with_grad else []
    )

    # The last step (forward steps first, then backward steps) that reads each value.
    last_read: dict[Hashable, int] = {}
    for i, n in enumerate(interior):
        for a in net.operands[n]:
            last_read[a] = i
    for j, n in enumerate(back_nodes, start=len(interior)):
        for a, read in zip((n, *net.operands[n]), signature_of(net.ops[n]).reads, strict=True):
            if read:
                last_read[a] = j
    keep = set(outputs) | {n for n in order if n not in net.ops}
    frees: dict[int, list[int]] = {}
    for n, i in last_read.items():
        if n not in keep:
            frees.setdefault(i, []).append(slots[n])

    args = {n: tuple(map(slots.__getitem__, net.operands[n])) for n in interior}
    forward = tuple(
        Step(
            n,
            net.ops[n],
            slots[n],
            args[n],
            net.attrs[n],
            net.shapes[n],
            tuple(frees.get(i, ())),
        )
        for i, n in enumerate(interior)
    )
    backward = []
    for j, n in enumerate(back_nodes, start=len(interior)):
        flows = zip(net.operands[n], passes[n], strict=True)
        needs = tuple(on_param_path[a] and p for a, p in flows)
        reads = signature_of(net.ops[n]).reads
        targets = tuple((i, a) for i, a in enumerate(args[n]) if needs[i])
        free = tuple(frees.get(j, ()))
        step = BackStep(n, net.ops[n], slots[n], args[n], net.attrs[n], needs, reads, targets, free)
        backward.append(step)
    return Plan(
        outputs=tuple(slots[n] for n in outputs),
        slots=slots,
        inputs=tuple((n, slots[n]) for n in order if kinds[n] == "input"),
        params=tuple((n, slots[n]) for n in order if kinds[n] == "param"),
        consts=tuple((n, slots[n]) for n in order if kinds[n] == "const"),
        forward=forward,
        backward=tuple(backward),
        shapes=tuple(net.shapes[n] for n in order),
    )


def _ancestors(net: Network, node: Hashable) -> set[Hashable]:
    seen: set[Hashable] = set()
    stack = [node]
    while stack:
        for a in net.operands[stack.pop()]:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return seen
