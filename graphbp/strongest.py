"""The k strongest paths of a DAG from a start node down to a goal, without listing them all.

A path's strength is the norm of the vector it carries: a seed pulled back edge by edge
(``pull``), as a chain-rule path's contribution is ∂L/∂L = 1 pulled back through its local
vjps. The search is best-first (branch and bound): an open path carries its exact vector g at
its last node v, and nothing below v can make it stronger than ‖g‖·B(v), where B(v) is the
largest product of edge gains (upper bounds of each edge's operator norm) over the paths from
v down to the goal, one dynamic-programming pass over the DAG (``bounds``; the caller may
tighten it, as chain.py does element by element). The open path of the largest bound is
extended first; a complete path taken from the queue is stronger than every bound
left, so the first k complete paths taken are the k strongest — exactly, when every gain
bounds its edge's operator norm and the work budget is not spent, up to ``tolerance``: strengths
within a relative ``tolerance`` of each other count as ties (bounds carry round-off and the
caller's slack), a complete path wins a tie against an open one, and among open ones the deepest
(the newest of equals) goes first, so that paths of equal strength are completed one dive at a
time, not breadth-first. The paths are returned sorted by norm, NaN first.

Graph only: this module knows nodes, edges and vectors, not networks, ops or backends.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

QUEUE_ELEMENTS = 20_000_000
"""The most numbers the open paths' vectors may hold (160 MB of float64): the search stops
there as when its budget is spent."""


class Step(Protocol):
    """An edge the search walks down: from its ``target`` (nearer the start) to ``source``."""

    @property
    def source(self) -> Hashable: ...


E = TypeVar("E", bound=Step)


class Found(NamedTuple):
    """One path the search found, with the vector it carries to the goal."""

    edges: tuple[Any, ...]
    """From the start downwards."""
    vector: Any
    norm: float


def norm(array: Any) -> float:
    """The 2-norm of ``array``, scaled so that values near 1e300 do not overflow its sum of
    squares; NaN if it holds NaN, ∞ if it holds ∞."""
    a = np.asarray(array, dtype=np.float64)
    if a.size == 0:
        return 0.0
    with np.errstate(all="ignore"):
        largest = float(np.max(np.abs(a)))
        if not 0 < largest < math.inf:
            return largest  # 0, ∞ or NaN
        return largest * float(np.linalg.norm(a / largest))


def log_strength(value: float) -> float:
    """A norm or bound as a priority: its log; NaN counts as the strongest (+∞), 0 as −∞."""
    if math.isnan(value):
        return math.inf
    return -math.inf if value <= 0 else math.log(value)


def bounds(
    order: Iterable[Hashable], goal: Hashable, down: Mapping[Hashable, Sequence[E]],
    log_gain: Mapping[E, float],
) -> dict[Hashable, float]:  # fmt: skip
    """log B(v) for every node of ``order`` (topological, the goal's side first): the largest
    sum of log gains over the paths from v down to the goal (0 at the goal, −∞ where every
    path has a gain of 0)."""
    best: dict[Hashable, float] = {}
    for node in order:
        if node == goal:
            best[node] = 0.0
        elif node in down:
            best[node] = max(
                (add_logs(log_gain[e], best[e.source]) for e in down[node]), default=-math.inf
            )
    return best


def add_logs(a: float, b: float) -> float:
    """a + b for log strengths, where +∞ (NaN, the strongest) wins over −∞ (zero)."""
    return math.inf if math.inf in (a, b) else a + b


def strongest(
    start: Hashable,
    goal: Hashable,
    seed: Any,
    down: Mapping[Hashable, Sequence[E]],
    pull: Callable[[E, Any], Any],
    log_bound: Callable[[Hashable, Any], float],
    k: int,
    budget: int,
    tolerance: float = 0.0,
) -> tuple[list[Found], bool]:
    """The ``k`` strongest paths from ``start`` down to ``goal``, strongest first.

    Args:
        start: where every path begins (the loss).
        goal: where every path ends (the parameter).
        seed: the vector at ``start`` (∂L/∂L = 1).
        down: each node's edges towards the goal (every edge's source reaches the goal).
        pull: the vector at an edge's source from the vector at its target (a local vjp).
        log_bound: the log of an upper bound of the norm at the goal of every path on from
            a node that carries a vector there (e.g. ‖g‖·B(v), B from ``bounds``).
        k: how many paths.
        budget: the most ``pull`` calls; once spent (or once the open paths hold more than
            ``QUEUE_ELEMENTS`` numbers), paths are completed greedily (each
            open path of the largest bound extended by its child of the largest bound, its
            other children left open) and the answer is not exact.
        tolerance: strengths within this relative amount of each other are ties (at least
            the relative slack of the bounds, so that a complete path is taken before open
            paths of the same strength); the paths are then the k strongest up to it.

    Returns:
        The paths (fewer than ``k`` only if there are fewer), strongest first (NaN first),
        and whether the budget held, so that they are the k strongest (up to ``tolerance``)
        whenever the bounds are true bounds.
    """
    newest = itertools.count(0, -1)
    width = math.log1p(tolerance)  # ties: log strengths in one bucket of this width
    held = spent = 0  # numbers the queue's vectors hold; pull calls
    # entries: (−bucket, open?, −depth, −age, node, vector, path as a linked list (edge, parent))
    Link = tuple[Any, Any] | None
    queue: list[tuple[float, bool, int, int, Hashable, Any, Link]] = []

    def strength(node: Hashable, vector: Any) -> float:
        return log_strength(norm(vector)) if node == goal else log_bound(node, vector)

    def bucket(value: float, done: bool) -> float:
        """A log strength rounded down to its bucket of ties; a complete path's is raised
        by one bucket, so that it beats open paths of its strength whose bounds carry slack."""
        if width <= 0 or math.isinf(value):
            return value
        return float(math.floor(value / width) + done)

    def push(node: Hashable, vector: Any, link: Link, depth: int) -> None:
        nonlocal held
        held += np.size(vector)
        done = node == goal
        key = bucket(strength(node, vector), done)
        heapq.heappush(queue, (-key, not done, -depth, next(newest), node, vector, link))

    def pop() -> tuple[float, Hashable, Any, Link, int]:
        nonlocal held
        key, _, depth, _, node, vector, link = heapq.heappop(queue)
        held -= np.size(vector)
        return -key, node, vector, link, -depth

    def dive(node: Hashable, vector: Any, link: Link, depth: int) -> Found:
        """Down to the goal along the child of the largest bound, the others left open."""
        nonlocal spent
        while node != goal:
            depth += 1
            children = [(e.source, pull(e, vector), (e, link)) for e in down[node]]
            spent += len(children)
            best = max(range(len(children)), key=lambda i: strength(*children[i][:2]))
            for i, child in enumerate(children):
                if i != best:
                    push(*child, depth)
            node, vector, link = children[best]
        return Found(_edges(link), vector, norm(vector))

    found: list[Found] = []
    push(start, seed, None, 0)
    while queue and len(found) < k and spent < budget and held <= QUEUE_ELEMENTS:
        priority, node, vector, link, depth = pop()
        if node == goal or priority == -math.inf:  # a bound of 0: every path on is 0
            found.append(dive(node, vector, link, depth))
            continue
        for edge in down[node]:
            spent += 1
            push(edge.source, pull(edge, vector), (edge, link), depth + 1)
    exact = len(found) == k or not queue
    while queue and len(found) < k:  # out of budget: dive from the best open paths
        found.append(dive(*pop()[1:]))
    # strongest first, NaN first: greedily completed paths, estimated bounds and ties
    # taken within the tolerance leave them out of order
    found.sort(key=lambda f: -log_strength(f.norm))
    return found, exact


def _edges(link: tuple[Any, Any] | None) -> tuple[Any, ...]:
    """A linked list of edges (the last first) as a tuple from the first."""
    edges = []
    while link is not None:
        edges.append(link[0])
        link = link[1]
    return tuple(reversed(edges))
