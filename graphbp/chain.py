"""The chain rule on a network's graph: the paths from the loss down to a parameter, their
factors, the upstream gradients backprop reuses, and what that reuse saves.

Everything here reads the validated graph only (no backend): paths run through values,
operand by operand, never from weight to weight. Counts are exact, computed by dynamic
programming over the DAG, even where listing every path would be impossible.
"""

from __future__ import annotations

import functools
import html
import math
import numbers
import re
import unicodedata
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import networkx as nx

from graphbp.errors import GraphError, InputError, PluginError, article, show, visible
from graphbp.op import call_forward, call_vjp, defines_vjp, gradient_flows, runs_on
from graphbp.registry import backends, get_backend

if TYPE_CHECKING:
    from graphbp.graph import Network

MAX_PATHS = 16
"""How many paths a formula lists by default; the rest are counted, not written out."""
MAX_PATHS_LIMIT = 10_000
"""The most paths a formula may list (``max_paths``); counts stay exact beyond it."""
MAX_LISTED_FACTORS = 300_000
"""The most factors a formula lists, summed over its listed paths, whatever ``max_paths``:
listing stops at the first path that would pass it (or ``max_paths``), the rest are counted."""
MAX_LISTED_CHARS = 40_000_000
"""The most characters the listed factors may take in the text, markup and LaTeX formulas
together (long node names), a second bound beside ``MAX_LISTED_FACTORS``."""
TOP_EXPANSIONS = 100_000
"""The most local vjps the search for the ``top`` strongest paths runs by default (the
``max_expansions`` of ``chain_rule``); once they are spent the answer is not exact."""
PROBE_LIMIT = 64
"""An edge into a value of at most this many elements gets its exact operator norm as its
gain bound (its local Jacobian probed with every basis cotangent); a larger one an estimate."""
_SLACK = 1e-9
"""Gain bounds are raised by this relative amount, above the round-off of their SVD."""
TIES = 4 * _SLACK
"""Contribution norms within this relative amount of each other are ties for the strongest-path
search (above the bounds' slack and round-off): exact answers are exact up to such ties."""
_EXACT_BITS = 13_000
"""Counts up to this many bits (about 3,900 digits) are written out in full."""


class Symbol(NamedTuple):
    """A node name as plain text, Graphviz/HTML markup and LaTeX: ``W1`` is W₁, ``yhat`` ŷ."""

    text: str
    html: str
    latex: str


@functools.lru_cache(maxsize=4096)
def symbol(node: Hashable) -> Symbol:
    """How ``node`` is written in formulas: a trailing number becomes a subscript, ``hat`` a hat."""
    name = visible(node if isinstance(node, str) else repr(node))  # a str, or a 64-bit int
    match = re.fullmatch(r"([A-Za-z]+?)(hat)?_?(\d+)?", name)
    if match is None:  # anything else is written as it is, escaped
        return Symbol(name, html.escape(name), r"\mathrm{" + _latex_escape(name) + "}")
    base, hat, index = match.groups()
    text = base + ("\u0302" if hat and len(base) == 1 else "hat" if hat else "")
    latex = base if len(base) == 1 else r"\mathrm{" + base + "}"
    if hat:
        latex = r"\hat{" + latex + "}" if len(base) == 1 else r"\mathrm{" + base + "hat}"
    markup = html.escape(text)
    if index:
        text, markup, latex = text + index, f"{markup}<SUB>{index}</SUB>", f"{latex}_{{{index}}}"
    return Symbol(unicodedata.normalize("NFC", text), unicodedata.normalize("NFC", markup), latex)


def count_text(n: int, exact_bits: int = _EXACT_BITS) -> str:
    """An exact count with thousands separators, or ``≈1.23×10^4567`` beyond ``exact_bits``
    bits (by default about 3,900 digits: Python refuses to write longer integers as text)."""
    if n.bit_length() <= exact_bits:
        return f"{n:,}"
    exponent = math.log10(n)
    whole = math.floor(exponent)
    return f"≈{10 ** (exponent - whole):.2f}×10^{whole:,}"


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``1 parameter``, ``1,024 paths``."""
    return f"{count_text(n)} {noun}{'' if n == 1 else 's'}"


LATEX_ESCAPES = {
    **{c: "\\" + c for c in "{}_#$%&"},
    "\\": r"{\backslash}",
    "~": r"{\sim}",
    "^": r"\hat{}",
    " ": "\\ ",
    **{c: "{" + c + "}" for c in "+-*/=<>,;:!|"},
}
r"""How a character of a name is written inside ``\mathrm{}`` so that MathJax, KaTeX and
LaTeX draw it as itself: TeX's special characters escaped (a backslash as ``\backslash``: ``\\``
is a line break), ``~`` and ``^`` as the math glyphs ``\sim`` and ``\hat{}`` (``\~`` and
``\^`` are text accents, errors in math), a space as a control space (math drops spaces),
and operators and punctuation braced, so that they get no operator spacing."""


def _latex_escape(text: str) -> str:
    """``text`` (printable: see ``visible``) as LaTeX math that draws exactly that text."""
    return "".join(LATEX_ESCAPES.get(c, c) for c in text)


class Edge(NamedTuple):
    """Value ``source`` entering node ``target`` as operand ``position``: one local derivative."""

    source: Hashable
    target: Hashable
    position: int


def edge_factor(net: Network, edge: Edge) -> Symbol:
    """The local derivative ∂target/∂source as a symbol, marked with the operand position
    when the source enters the node more than once (h·h)."""
    top, bottom = symbol(edge.target), symbol(edge.source)
    twice = net.operands[edge.target].count(edge.source) > 1
    mark = f"[{edge.position}]" if twice else ""
    return Symbol(
        f"∂{top.text}/∂{bottom.text}{mark}",
        f"∂{top.html}/∂{bottom.html}{html.escape(mark)}",
        rf"\frac{{\partial {top.latex}}}{{\partial {bottom.latex}}}"
        + (rf"_{{[{edge.position}]}}" if twice else ""),
    )


class Flow:
    """Which values carry gradient to the loss, and how many paths lead through each.

    Args:
        net: the validated network.
    """

    def __init__(self, net: Network) -> None:
        self.net = net
        loss = net.loss
        # the operands each node passes gradient to: none through an edge whose op declares
        # that operand gradient-free (local derivative "0": see Op.local_grads)
        passes = {n: _passing(net, n) for n in net.order}
        above = {loss}
        for node in reversed(net.order):  # ancestors of the loss along such edges
            if node in above:
                above.update(a for _, a in passes[node])
        carries = {n: net.kind[n] == "param" for n in net.order}
        for node in net.order:
            carries[node] |= any(carries[a] for _, a in passes[node])
        self.relevant = [n for n in net.order if n in above and carries[n]]
        """Values on some path from a parameter up to the loss, in topological order."""
        on = set(self.relevant)
        self.consumers: dict[Hashable, list[Edge]] = {n: [] for n in self.relevant}
        for node in self.relevant:
            for position, source in passes[node]:
                if source in on:
                    self.consumers[source].append(Edge(source, node, position))
        self.edges = [e for n in self.relevant for e in self.consumers[n]]
        """Every local derivative backprop evaluates: one per operand that needs a gradient
        (none into an operand its op declares gradient-free)."""
        # paths[n]: paths from n up to the loss; lengths[n]: their lengths summed.
        self.paths: dict[Hashable, int] = {}
        self.lengths: dict[Hashable, int] = {}
        for node in reversed(self.relevant):
            out = self.consumers[node]
            self.paths[node] = 1 if node == loss else sum(self.paths[e.target] for e in out)
            self.lengths[node] = sum(self.lengths[e.target] + self.paths[e.target] for e in out)
        self.params = [n for n in self.relevant if net.kind[n] == "param"]

    @functools.cached_property
    def params_below(self) -> dict[Hashable, int]:
        """How many parameters' gradients reuse ∂L/∂n, for each relevant value ``n``.

        Counted with one bit per parameter, a value's mask dropped once its last consumer has
        read it: O(values × parameters / 64) word operations, computed only when asked for
        (``reuse``, ``explain``, drawings), never by ``chain_rule``.
        """
        net = self.net
        below: dict[Hashable, int] = {}
        bit = {p: k for k, p in enumerate(self.params)}  # 1 << k made only when needed
        left = {n: len(self.consumers[n]) for n in self.relevant}
        masks: dict[Hashable, int] = {}
        for node in self.relevant:
            mask = 1 << bit[node] if node in bit else 0
            for source in net.operands[node]:
                if source in left:  # a relevant operand: one of its consumer edges read
                    mask |= masks[source]
                    left[source] -= 1
                    if not left[source]:
                        del masks[source]
            if left[node]:
                masks[node] = mask
            below[node] = mask.bit_count()
        return below

    def reuse(self) -> dict[Hashable, int]:
        """Interior values (the loss excluded) whose ∂L/∂value serves several parameters."""
        return {
            n: self.params_below[n]
            for n in self.relevant
            if n != self.net.loss and n in self.net.ops and self.params_below[n] > 1
        }

    def path_edges(self, wrt: Hashable) -> set[Edge]:
        """Every edge on some path from the loss down to ``wrt`` (exact, nothing listed):
        every edge above ``wrt``, as every relevant value leads to the loss. One search
        upwards from ``wrt``, in time linear in the edges found, not in the graph."""
        found: set[Edge] = set()
        seen, todo = {wrt}, [wrt]
        while todo:
            for edge in self.consumers[todo.pop()]:
                found.add(edge)
                if edge.target not in seen:
                    seen.add(edge.target)
                    todo.append(edge.target)
        return found

    def walk(self, wrt: Hashable, edges: set[Edge]) -> Iterator[tuple[Edge, ...]]:
        """The paths from the loss down to ``wrt`` along ``edges`` (``path_edges(wrt)``),
        each as its edges from the loss downwards."""
        operands: dict[Hashable, list[Edge]] = {}
        for edge in sorted(edges, key=lambda e: e.position):
            operands.setdefault(edge.target, []).append(edge)
        # Depth first, one shared list for the path: each step costs O(1) and each listed
        # path O(its length) to copy out, never O(length²); no recursion, so any depth works.
        path: list[Edge] = []
        stack = [iter(operands[self.net.loss])]
        while stack:
            step = next(stack[-1], None)
            if step is None:  # every operand of this node tried: back up one edge
                stack.pop()
                if path:
                    path.pop()
            elif step.source == wrt:
                yield (*path, step)
            else:
                path.append(step)
                stack.append(iter(operands[step.source]))


def _passing(net: Network, node: Hashable) -> list[tuple[int, Hashable]]:
    """The (position, operand) pairs of ``node`` that gradient flows to."""
    operands = net.operands[node]
    op = net.ops.get(node)
    if op is None:
        return list(enumerate(operands))
    flows = gradient_flows(op, net.attrs[node], len(operands))
    return [(k, a) for k, a in enumerate(operands) if flows[k]]


@dataclass(frozen=True)
class Path:
    """One product of local derivatives from the loss down to the parameter."""

    edges: tuple[Edge, ...]
    """From the loss downwards: ``edges[0].target`` is the loss, ``edges[-1].source`` wrt."""
    factors: tuple[Symbol, ...]
    contribution: Any = None
    """This path's share of ∂L/∂wrt (an array), when values were given."""
    share: float | None = None
    """‖contribution‖ / ‖∂L/∂wrt‖, when values were given and ∂L/∂wrt is known (with
    ``top``, or when every path is listed); NaN where both are 0. Shares need not add up
    to 1: paths may cancel each other."""

    @property
    def nodes(self) -> tuple[Hashable, ...]:
        """The values the path passes through, the loss first."""
        return (self.edges[0].target, *(e.source for e in self.edges))


@dataclass(frozen=True)
class ChainRule:
    """∂L/∂wrt written out by the chain rule: a sum over paths of products of factors."""

    wrt: Hashable
    loss: Hashable
    paths: tuple[Path, ...]
    """The listed paths: at most ``max_paths`` of them, of at most ``max_factors`` factors in
    all (``MAX_LISTED_FACTORS`` by default); none if the first path alone is longer. With
    ``top``, every one of the ``top`` strongest found, strongest first, whatever
    ``max_factors`` (which then bounds only the terms the formulas write out)."""
    path_count: int
    """How many paths there are in all (exact, even when not all are listed)."""
    edges: frozenset[Edge]
    """Every edge on some path (exact); with ``top``, every edge of the listed paths."""
    text: str
    latex: str
    html: str
    """The formula in Graphviz/HTML markup (``<SUB>`` for indices)."""
    gradient: Any = field(default=None)
    """∂L/∂wrt, when values were given and every path is listed (the sum of the paths'
    contributions), or with ``top`` (backprop's, by the same vjps over every path's edges)."""
    exact: bool = True
    """Whether the listed paths are what was asked for: always without ``top``; with it,
    whether they are guaranteed the ``top`` strongest (see ``chain_rule``)."""
    top: int | None = None
    """The ``top`` asked for: the paths are the strongest, strongest first, and ``edges``
    are theirs alone."""

    @property
    def complete(self) -> bool:
        """Whether every path is listed (so the contributions add up to the gradient)."""
        return len(self.paths) == self.path_count

    @property
    def listed_factors(self) -> int:
        """The factors of the listed paths, summed (at most ``max_factors`` without ``top``)."""
        return sum(len(p.edges) for p in self.paths)

    @functools.cached_property
    def nodes(self) -> frozenset[Hashable]:
        """Every value on some path, the loss and wrt included (computed once)."""
        return frozenset({self.wrt, *(e.target for e in self.edges)})

    def _repr_latex_(self) -> str | None:
        """Jupyter's view: the formula (``latex``) typeset, or None (so the text is shown)
        when it is longer than ``DISPLAY_CHARS`` characters, too long to typeset quickly."""
        return None if len(self.latex) > DISPLAY_CHARS else rf"$\displaystyle {self.latex}$"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text view: the formula (``text``), cut at ``DISPLAY_CHARS``."""
        printer.text(_cut(self.text, "rule.text"))


def chain_rule(
    net: Network,
    wrt: Hashable,
    values: Mapping[Hashable, Any] | None = None,
    max_paths: int = MAX_PATHS,
    flow: Flow | None = None,
    *,
    max_factors: int = MAX_LISTED_FACTORS,
    top: int | None = None,
    max_expansions: int = TOP_EXPANSIONS,
) -> ChainRule:
    """∂L/∂wrt as the chain rule writes it for this graph.

    Args:
        net: the network.
        wrt: a parameter node.
        values: every node's forward value (``prog.forward(params, inputs, net.order)``);
            with them each listed path gets its numeric contribution, computed by the
            plugins' vjps in float64 NumPy.
        max_paths: list at most this many paths; the formula says how many it leaves out.
        flow: ``Flow(net)``, when it is already at hand (one per network serves every wrt).
        max_factors: list paths of at most this many factors in all, 0 to
            ``MAX_LISTED_FACTORS`` (and at most ``MAX_LISTED_CHARS`` characters of formula):
            paths are listed in order until the next would pass either bound or
            ``max_paths``, so time and memory stay within the graph's size plus these bounds.
            With ``top`` they bound only the terms the formulas write out: every path found
            is in ``paths``.
        top: list the ``top`` paths (1 to ``MAX_PATHS_LIMIT``) of the largest contribution
            norm, strongest first, in place of the first ``max_paths``; needs ``values``.
            Found by a best-first search from the loss down, never by listing every path
            (see "The strongest paths" below); ``edges`` are then the listed paths' only.
        max_expansions: the most local vjps that search runs (``TOP_EXPANSIONS``).

    The strongest paths: an open path carries its exact cotangent g at its last value v;
    no path through it can end stronger than ‖g‖·B(v), B(v) the largest product of edge gains
    over the paths from v down to wrt (dynamic programming over the DAG), nor, where every
    edge below v was probed, than ‖P(v)ᵀ|g|‖, P(v) the entrywise largest |product of local
    Jacobians| down to wrt. An edge's gain is the operator norm of its local vjp at these
    values (the largest singular value of its Jacobian, probed with every basis cotangent,
    raised by 1e-9 against round-off) when its consumer's value has at most ``PROBE_LIMIT``
    elements (and the Jacobian at most ``REACH_ELEMENTS`` entries). The open path of the
    largest bound is extended first, and a complete path is final once its norm is at least
    every open bound (norms within a relative ``TIES`` of each other are ties: a complete path
    wins a tie, and among open paths the deepest is extended first, so equal paths are found
    one dive at a time). ``ChainRule.exact`` is True, and the paths are the ``top`` strongest
    up to such ties, when every gain was probed so and the search ended within
    ``max_expansions`` (and ``graphbp.strongest.QUEUE_ELEMENTS`` numbers held by its open
    paths). Otherwise it is a heuristic: a larger value's gain is estimated as the factor by
    which the edge scales the cotangent backprop passes through it (at most its operator
    norm), and a search out of budget completes its best open paths greedily. A path whose
    contribution holds NaN counts as the strongest.

    Raises:
        GraphError: ``wrt`` is not a parameter, or no path leads from it to the loss.
        InputError: ``top`` is not an integer from 1 to ``MAX_PATHS_LIMIT``, or is given
            without ``values``; ``max_factors`` or ``max_expansions`` is out of range;
            ``wrt`` is unhashable; ``values`` misses a value on the paths, or holds one that
            is not a real array of the node's inferred shape (checked before any vjp runs).
    """
    check_max_paths(max_paths)
    if (
        isinstance(max_factors, bool)
        or not isinstance(max_factors, int)
        or not 0 <= max_factors <= MAX_LISTED_FACTORS
    ):
        raise InputError(
            f"max_factors={show(max_factors)}: list from 0 to {MAX_LISTED_FACTORS:,} factors"
        )
    top = check_top(top, values is not None)
    if (
        isinstance(max_expansions, bool)
        or not isinstance(max_expansions, int)
        or max_expansions < 1
    ):
        raise InputError(
            f"max_expansions={show(max_expansions)}: the search needs a positive integer "
            f"number of vjps (default {TOP_EXPANSIONS:,})"
        )
    flow = flow or Flow(net)
    _check_wrt(net, flow, wrt)
    edges = flow.path_edges(wrt)
    count = flow.paths[wrt]
    factors: dict[Edge, tuple[Symbol, int]] = {}  # one symbol per edge, shared by its paths

    def factor(edge: Edge) -> tuple[Symbol, int]:
        if edge not in factors:
            f = edge_factor(net, edge)
            factors[edge] = f, len(f.text) + len(f.html) + len(f.latex) + 12  # + separators
        return factors[edge]

    pullback = None if values is None else Pullback(net, values)
    if pullback is not None:  # every value the contributions may read, checked up front
        if not isinstance(values, Mapping):
            raise InputError(
                f"values={show(values)} ({article(type(values).__name__)}) is not a mapping "
                "of node to value: pass values=prog.forward(params, inputs, net.order)"
            )
        read = {n for e in edges for n in (e.target, *net.operands[e.target])}
        for node in sorted(read, key=net.index.__getitem__, reverse=True):  # loss first
            pullback.check(node)
    exact, gradient = True, None
    candidates: Iterator[tuple[tuple[Edge, ...], Any]]
    if top is not None and pullback is not None:
        found, exact, gradient = _strongest(net, wrt, edges, pullback, top, max_expansions)
        candidates = ((f.edges, f.vector) for f in found)
        max_paths = top
    else:
        candidates = ((path, None) for path in flow.walk(wrt, edges))
    listed: list[tuple[tuple[Edge, ...], Any]] = []
    written = used = chars = 0  # the paths the formula writes out, their factors and text
    for path, contribution in candidates:
        if written == len(listed):
            chars += sum(factor(e)[1] for e in path)
            if used + len(path) <= max_factors and chars <= MAX_LISTED_CHARS:
                used += len(path)
                written += 1
            elif top is None:  # listing stops here; the top paths are all kept
                break
        if pullback is not None and contribution is None:
            contribution = _contribution(pullback, path)
        listed.append((path, contribution))
        if len(listed) == max_paths:
            break
    rest = count - written
    if pullback is not None and top is None and not rest:
        gradient = listed[0][1]
        for _, contribution in listed[1:]:
            gradient = gradient + contribution
    paths = tuple(
        Path(path, tuple(factor(e)[0] for e in path), contribution, _share(contribution, gradient))
        for path, contribution in listed
    )
    terms = paths[:written]
    loss, param = symbol(net.loss), symbol(wrt)
    s = "s" if rest > 1 else ""  # the formula says how many paths it leaves out, exactly
    if terms:
        more = f" + … ({count_text(rest)} more path{s})" if rest else ""
        latex_more = rf" + \dots\ (\text{{{count_text(rest)} more}})" if rest else ""
    else:  # even the first path is longer than max_factors
        more = f"… ({count_text(rest)} path{s}, too long to list)"
        latex_more = rf"\dots\ (\text{{{count_text(rest)} path{s}, too long to list}})"
    text = f"∂{loss.text}/∂{param.text} = " + " + ".join(
        " · ".join(f.text for f in p.factors) for p in terms
    )
    markup = f"∂{loss.html}/∂{param.html} = " + " + ".join(
        " · ".join(f.html for f in p.factors) for p in terms
    )
    latex = rf"\frac{{\partial {loss.latex}}}{{\partial {param.latex}}} = " + " + ".join(
        r" \cdot ".join(f.latex for f in p.factors) for p in terms
    )
    on_paths = edges if top is None else {e for p in paths for e in p.edges}
    return ChainRule(
        wrt,
        net.loss,
        paths,
        count,
        frozenset(on_paths),
        text + more,
        latex + latex_more,
        markup + html.escape(more),
        gradient,
        exact,
        top,
    )


def check_top(top: Any, has_values: bool) -> int | None:
    """``top`` as an int (a Python or NumPy integer, not a bool, from 1 to
    ``MAX_PATHS_LIMIT``), or None; refused without values.

    Raises:
        InputError: naming the value and the fix.
    """
    if top is None:
        return None
    # NumPy's integers are integers; bools (NumPy's too) are not
    whole = int(top) if isinstance(top, numbers.Integral) and not isinstance(top, bool) else 0
    if not 1 <= whole <= MAX_PATHS_LIMIT:
        shown = count_text(top) if type(top) is int else show(top)
        raise InputError(
            f"top={shown}: ask for the 1 to {MAX_PATHS_LIMIT:,} strongest paths (an integer)"
        )
    if not has_values:
        raise InputError(
            f"top={whole} ranks paths by the norm of their contribution, which needs the "
            "forward values: pass values=prog.forward(params, inputs, net.order)"
        )
    return whole


def _share(contribution: Any, gradient: Any) -> float | None:
    """‖contribution‖ / ‖gradient‖, None if either is unknown, NaN if both are 0."""
    from graphbp.strongest import norm

    if contribution is None or gradient is None:
        return None
    whole, part = norm(gradient), norm(contribution)
    if whole == 0:
        return math.nan if part == 0 else math.inf
    return part / whole


def _strongest(
    net: Network, wrt: Hashable, edges: set[Edge], pullback: Pullback, top: int, budget: int
) -> tuple[list[Any], bool, Any]:
    """The ``top`` strongest paths from the loss down to ``wrt`` along ``edges``
    (graphbp.strongest's search, gains as ``chain_rule`` states), whether they are exact,
    and ∂L/∂wrt by one backward pass over ``edges``."""
    import numpy as np

    from graphbp.strongest import add_logs, bounds, log_strength, norm, strongest

    down: dict[Hashable, list[Edge]] = {}
    for edge in sorted(edges, key=lambda e: (e.position, net.index[e.source])):
        down.setdefault(edge.target, []).append(edge)
    nodes = sorted({wrt, *down}, key=net.index.__getitem__)  # topological
    # backprop over these edges: ∂L/∂v for every v on a path, and what each edge passes down
    cotangent: dict[Hashable, Any] = {net.loss: np.ones(())}
    passed: dict[Edge, Any] = {}
    for node in reversed(nodes):
        for edge in down.get(node, ()):
            passed[edge] = pullback(edge, cotangent[node])
            below = cotangent.get(edge.source)
            cotangent[edge.source] = passed[edge] if below is None else below + passed[edge]
    log_gain: dict[Edge, float] = {}
    jacobians: dict[Edge, Any] = {}  # |∂target/∂source| of probed edges
    kept = 0  # their entries, at most REACH_ELEMENTS
    estimated = False
    rng = np.random.default_rng(0)
    for edge in sorted(edges, key=lambda e: (net.index[e.target], e.position)):
        out = pullback.value(edge.target)
        if (
            out.size <= PROBE_LIMIT
            and out.size * pullback.value(edge.source).size <= REACH_ELEMENTS
        ):
            jacobian = _jacobian(pullback, edge, out.shape)
            if kept + jacobian.size <= REACH_ELEMENTS:  # else this edge's bound is its gain
                jacobians[edge] = np.abs(jacobian)
                kept += jacobian.size
            gain = _largest_singular_value(jacobian) * (1 + _SLACK)
        else:  # too large to probe: the gain along the cotangent backprop passes
            estimated = True
            g, through = cotangent[edge.target], passed[edge]
            if not 0 < norm(g) < math.inf:
                g = rng.standard_normal(out.shape)
                through = pullback(edge, g)
            gain = norm(through) / norm(g)
        log_gain[edge] = log_strength(gain)
    log_b = bounds(nodes, wrt, down, log_gain)
    reach = _reach(net, wrt, nodes, down, jacobians, pullback)

    def log_bound(node: Hashable, g: Any) -> float:
        scalar = add_logs(log_strength(norm(g)), log_b[node])
        if node not in reach:
            return scalar
        with np.errstate(all="ignore"):
            entrywise = norm(reach[node].T @ np.abs(g).ravel()) * (1 + _SLACK)
        return min(scalar, log_strength(entrywise))

    found, within = strongest(
        net.loss, wrt, np.ones(()), down, pullback, log_bound, top, budget, tolerance=TIES
    )
    return found, within and not estimated, cotangent[wrt]


REACH_ELEMENTS = 10_000_000
"""The most matrix entries the entrywise bounds of the strongest-path search hold, for the
local Jacobians and for the bounds P(v) each (80 MB of float64)."""


def _reach(
    net: Network,
    wrt: Hashable,
    nodes: list[Hashable],
    down: Mapping[Hashable, list[Edge]],
    jacobians: Mapping[Edge, Any],
    pullback: Pullback,
) -> dict[Hashable, Any]:
    """P(v) for the values below which every edge was probed: a nonnegative matrix (v's
    elements × wrt's) at least the absolute value of every path's Jacobian product from v
    down to wrt, entry by entry: P(wrt) = I, P(v) = the entrywise largest |J_e|·P(source)
    over v's edges e. So a path on from v carrying g ends with |c| ≤ P(v)ᵀ|g|: a bound that
    follows each element (tight on elementwise ops, where the operator norm is not); NaN
    where a path below carries NaN. Empty beyond ``REACH_ELEMENTS`` entries in all."""
    import numpy as np

    width = pullback.value(wrt).size
    if width > PROBE_LIMIT or width * sum(pullback.value(n).size for n in nodes) > REACH_ELEMENTS:
        return {}
    reach: dict[Hashable, Any] = {wrt: np.eye(width)}
    for node in nodes:
        edges = down.get(node, ())
        if not edges or not all(e in jacobians and e.source in reach for e in edges):
            continue
        with np.errstate(all="ignore"):
            products = [jacobians[e] @ reach[e.source] for e in edges]
        matrix = products[0]
        for more in products[1:]:
            matrix = np.maximum(matrix, more)  # NaN (a path carrying NaN) propagates
        reach[node] = matrix
    return reach


def _jacobian(pullback: Pullback, edge: Edge, shape: tuple[int, ...]) -> Any:
    """``edge``'s local Jacobian ∂target/∂source (target's elements × source's), its rows
    the vjps of the basis cotangents."""
    import numpy as np

    size = math.prod(shape)
    source = pullback.value(edge.source).size
    rows = []
    for k in range(size):
        basis = np.zeros(size)
        basis[k] = 1.0
        rows.append(pullback(edge, basis.reshape(shape)).ravel())
    return np.stack(rows) if rows else np.zeros((0, source))


def _largest_singular_value(matrix: Any) -> float:
    """The operator 2-norm of ``matrix``; ∞ if it holds NaN or ∞, 0 if it is empty."""
    import numpy as np

    if not matrix.size:
        return 0.0
    if not np.all(np.isfinite(matrix)):
        return math.inf
    return float(np.linalg.norm(matrix, 2))


def check_max_paths(max_paths: Any) -> None:
    """Refuse a ``max_paths`` that is not an integer from 1 to ``MAX_PATHS_LIMIT``.

    Raises:
        InputError: it is not; the message states the range.
    """
    if (
        isinstance(max_paths, bool)
        or not isinstance(max_paths, int)
        or not 1 <= max_paths <= MAX_PATHS_LIMIT
    ):
        shown = (
            count_text(max_paths)
            if isinstance(max_paths, int) and not isinstance(max_paths, bool)
            else repr(max_paths)[:60]
        )
        raise InputError(
            f"max_paths={shown}: list from 1 to {MAX_PATHS_LIMIT:,} paths (the rest "
            "are counted exactly, not listed); pass a smaller max_paths"
        )


def _check_wrt(net: Network, flow: Flow, wrt: Hashable) -> None:
    """Refuse a ``wrt`` that is no parameter with gradient from the loss.

    Raises:
        InputError: it cannot be a node name (unhashable: a list, a dict, an array).
        GraphError: it names no parameter, or one that no gradient reaches.
    """
    try:
        hash(wrt)
    except TypeError:
        raise InputError(
            f"wrt={show(wrt)} ({article(type(wrt).__name__)}) cannot name a node: pass one "
            f"parameter's name, one of {', '.join(map(repr, net.params)) or 'none'}"
        ) from None
    if net.kind.get(wrt) != "param":
        params = ", ".join(map(repr, net.params)) or "none"
        what = f"op {net.op_name(wrt)!r}" if wrt in net.kind else "not in the graph"
        raise GraphError(
            f"wrt={show(wrt)} is not a parameter ({what}); the chain rule runs from the loss to a "
            f"parameter: choose one of {params}"
        )
    if wrt not in flow.paths and nx.has_path(net.graph, wrt, net.loss):
        raise GraphError(
            f"parameter {wrt!r} (op 'param') reaches the loss {net.loss!r} only through "
            "operands that get no gradient (a comparison, a select_n predicate, "
            f"stop_gradient, ...), so ∂L/∂{wrt} is zero; choose one of "
            f"{', '.join(map(repr, flow.params)) or 'none'}"
        )
    if wrt not in flow.paths:
        raise GraphError(
            f"parameter {wrt!r} (op 'param') has no path to the loss {net.loss!r}, so "
            f"∂L/∂{wrt} is zero; connect it or choose one of "
            f"{', '.join(map(repr, flow.params)) or 'none'}"
        )


def _contribution(pullback: Pullback, path: tuple[Edge, ...]) -> Any:
    """One path's share of the gradient: ∂L/∂L = 1 pulled back through its edges only, by
    the plugins' own vjps (``call_vjp``) in float64 NumPy."""
    import numpy as np

    g: Any = np.ones(())
    for edge in path:
        g = pullback(edge, g)
    return g


class Pullback:
    """Local vjps at the given values: a cotangent of an edge's target pulled back to its
    source, by the plugin's vjp (``call_vjp``) in float64 NumPy, else JAX's autodiff.

    Args:
        net: the network.
        values: every node's forward value; each is read (as float64) once.
    """

    def __init__(self, net: Network, values: Mapping[Hashable, Any]) -> None:
        self.net = net
        self.values = values
        self._arrays: dict[Hashable, Any] = {}
        self._compiled: dict[Hashable, Any] = {}

    def value(self, node: Hashable) -> Any:
        """``node``'s value as a float64 array.

        Raises:
            InputError: see ``check``.
        """
        if node not in self._arrays:
            import numpy as np

            self._arrays[node] = np.asarray(self.check(node), dtype=np.float64)
        return self._arrays[node]

    def check(self, node: Hashable) -> Any:
        """``node``'s value as given, as an array (not copied), once it is checked.

        Raises:
            InputError: ``values`` has none for it, or one that is not a real (bool, integer
                or float) array of the node's inferred shape (None axes take any size).
        """
        import numpy as np

        from graphbp.op import shape_fits

        fix = "pass values=prog.forward(params, inputs, net.order)"
        where = f"node {show(node)} (op {self.net.op_name(node)!r})"
        if node not in self.values:
            raise InputError(
                f"values has no value for {where}, which the path contributions read; {fix}"
            )
        given = self.values[node]
        declared = self.net.shapes.get(node)
        shape = "" if declared is None else f" of shape {declared} (None axes take any size)"
        try:
            array = np.asarray(given)
            real = array.dtype.kind in "biuf"
        except (TypeError, ValueError):  # a ragged list, an object that refuses
            real = False
        if not real:
            if isinstance(given, np.ndarray):
                kind = f" ({article(str(given.dtype))} array)"
            else:
                kind = "" if given is None else f" ({article(type(given).__name__)})"
            raise InputError(
                f"values[{show(node)}] = {show(given, 40)}{kind} is not an array of real "
                f"numbers; {where} needs one{shape}: {fix}"
            )
        if not shape_fits(tuple(array.shape), declared):
            raise InputError(
                f"values[{show(node)}] has shape {tuple(array.shape)}; {where} has one{shape}: "
                f"{fix}"
            )
        return array

    def __call__(self, edge: Edge, g: Any) -> Any:
        """∂L/∂source along ``edge`` alone, from ``g`` = ∂L/∂target."""
        import numpy as np

        net, node = self.net, edge.target
        op = net.ops[node]
        operands = [self.value(a) for a in net.operands[node]]
        needs = tuple(i == edge.position for i in range(len(operands)))
        shapes = [x.shape for x in operands]
        if defines_vjp(op) and runs_on(op, "numpy"):
            arrays = get_backend("numpy").arrays("float64")
            with np.errstate(all="ignore"):
                cts = call_vjp(
                    op, arrays, g, self.value(node), operands, net.attrs[node],
                    shapes=shapes, needs=needs, node=node,
                )  # fmt: skip
        else:
            cts = self._autodiff(node, g, operands, needs)
        return np.asarray(cts[edge.position], dtype=np.float64)

    def _autodiff(
        self, node: Hashable, g: Any, operands: list[Any], needs: tuple[bool, ...]
    ) -> tuple[Any, ...]:
        """The cotangents of an op without a NumPy vjp (an opaque node, a plugin without vjp):
        ``jax.vjp`` of its forward on the JAX backend in float64, compiled (``jax.jit``) once
        per node for the many cotangents a search pulls through it.

        Raises:
            PluginError: JAX is not installed, so nothing can differentiate the op.
        """
        op, attrs = self.net.ops[node], self.net.attrs[node]
        missing = PluginError(
            f"op {op.name!r} at node {node!r} defines no vjp NumPy can run, so its path "
            f"contributions need JAX's autodiff: pip install 'graphbp[jax]' (or define "
            f"vjp(...) in {type(op).__qualname__})"
        )
        if "jax" not in backends():
            raise missing
        jax = get_backend("jax")
        arrays = jax.arrays("float64")
        with jax.precision("float64"):
            if node not in self._compiled:
                xs = [jax.asarray(x, "float64") for x in operands]
                rule = jax.autodiff(lambda v: call_forward(op, arrays, v, attrs, node=node))
                if rule is None:  # a JAX backend that cannot differentiate
                    raise missing
                out = call_forward(op, arrays, xs, attrs, node=node)
                pulled = jax.wrap(lambda c: rule(arrays.xp, c, out, *xs, **attrs))
                self._compiled[node] = xs, out, pulled
            xs, out, pulled = self._compiled[node]
            cts = call_vjp(
                op, arrays, jax.asarray(g, "float64"), out, xs, attrs,
                shapes=[x.shape for x in operands], needs=needs, node=node,
                rule=lambda xp, c, *_, **__: pulled(c),
            )  # fmt: skip
            return tuple(None if c is None else jax.to_numpy(c) for c in cts)


# ------------------------------------------------------------------------------- the cost


@dataclass(frozen=True)
class Cost:
    """What ∂L/∂(every parameter) costs with backprop's reuse and without it."""

    nodes: int
    params: int
    backprop: int
    """Local-derivative evaluations of reverse mode: one per edge below the loss."""
    path_by_path: int
    """Evaluations when each parameter's gradient expands every path on its own."""
    paths: int
    """Paths from the loss to all parameters together."""
    per_param: dict[Hashable, tuple[int, int]]
    """Each parameter's number of paths and their summed length."""
    reuse: dict[Hashable, int]
    """Values whose upstream gradient ∂L/∂value serves several parameters."""

    @property
    def _ratio(self) -> str:
        """How many times backprop's evaluations path-by-path expansion takes, as text."""
        if not self.backprop:
            return "nan×"
        if max(self.path_by_path, self.backprop).bit_length() < 1000:
            return f"{self.path_by_path / self.backprop:,.1f}×"
        return f"{count_text(self.path_by_path // self.backprop)}×"  # beyond a float: a count

    @property
    def _headline(self) -> str:
        """The first line of the table: nodes, parameters, paths."""
        return (
            f"{counted(self.nodes, 'node')}, {counted(self.params, 'parameter')}, "
            f"{counted(self.paths, 'path')} from the loss to the "
            f"{'parameter' if self.params == 1 else 'parameters'}"
        )

    def __str__(self) -> str:
        lines = [
            self._headline,
            f"  backprop (reverse mode, each ∂L/∂value computed once and reused): "
            f"{self.backprop:,} local-derivative evaluations",
            f"  path by path (every parameter's gradient expanded alone):       "
            f"{count_text(self.path_by_path)} local-derivative evaluations ({self._ratio})",
        ]
        if self.reuse:
            shared = ", ".join(
                f"∂L/∂{symbol(n).text} by {k}"
                for n, k in sorted(self.reuse.items(), key=lambda kv: -kv[1])
            )
            lines.append(f"  upstream gradients reused: {shared}")
        width = max(len(symbol(p).text) for p in self.per_param) if self.per_param else 0
        lines.append(f"  {'parameter':<{max(width, 9)}}  {'paths':>8}  {'factors':>9}")
        for param, (paths, length) in self.per_param.items():
            lines.append(
                f"  {symbol(param).text:<{max(width, 9)}}  {count_text(paths):>8}  "
                f"{count_text(length):>9}"
            )
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text view: the table ``str`` gives."""
        printer.text(_cut(str(self), "print(cost)"))

    def _repr_html_(self) -> str:
        """Jupyter's view: the table as HTML, every name escaped; at most ``DISPLAY_ROWS``
        parameters and reused values (``print(cost)`` lists them all)."""
        right = ' style="text-align:right"'
        rows = [
            f"<tr><td>{html.escape(what)}</td><td{right}>{count}</td><td{right}>{times}</td></tr>"
            for what, count, times in (
                (
                    "backprop (reverse mode, each ∂L/∂value computed once and reused)",
                    f"{self.backprop:,}",
                    "1.0×" if self.backprop else "nan×",
                ),
                (
                    "path by path (every parameter's gradient expanded alone)",
                    count_text(self.path_by_path),
                    self._ratio,
                ),
            )
        ]
        parts = [
            f"<table><caption>{html.escape(self._headline)}</caption><thead><tr>"
            f"<th>local-derivative evaluations</th><th{right}>count</th><th{right}>ratio</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        ]
        if self.reuse:
            ranked = sorted(self.reuse.items(), key=lambda kv: -kv[1])
            shared = ", ".join(f"∂L/∂{symbol(n).html} by {k:,}" for n, k in ranked[:DISPLAY_ROWS])
            parts.append(f"<p>upstream gradients reused: {shared}{_more(len(ranked))}</p>")
        params = [
            f"<tr><td>{symbol(p).html}</td><td{right}>{count_text(paths)}</td>"
            f"<td{right}>{count_text(length)}</td></tr>"
            for p, (paths, length) in list(self.per_param.items())[:DISPLAY_ROWS]
        ]
        parts.append(
            f"<table><thead><tr><th>parameter</th><th{right}>paths</th><th{right}>factors</th>"
            f"</tr></thead><tbody>{''.join(params)}</tbody></table>{_more(len(self.per_param))}"
        )
        return "\n".join(parts)


DISPLAY_CHARS = 20_000
"""Jupyter shows a formula or table of at most this many characters (typeset, for a
formula); a longer one is cut, its end said to be printable."""
DISPLAY_ROWS = 200
"""Jupyter's table of a ``Cost`` lists at most this many parameters and reused values."""


def _cut(text: str, whole: str) -> str:
    """``text`` for a notebook: cut at ``DISPLAY_CHARS``, saying how to print all of it."""
    if len(text) <= DISPLAY_CHARS:
        return text
    return f"{text[:DISPLAY_CHARS]}… ({len(text):,} characters; print({whole}) shows all)"


def _more(count: int) -> str:
    """The note after a list cut at ``DISPLAY_ROWS`` entries."""
    return (
        f"<p>… and {count - DISPLAY_ROWS:,} more (print(cost) lists all)</p>"
        if count > DISPLAY_ROWS
        else ""
    )


def explain(net: Network, flow: Flow | None = None) -> Cost:
    """Count what backprop computes for ``net`` against path-by-path expansion, exactly."""
    flow = flow or Flow(net)
    per_param = {p: (flow.paths[p], flow.lengths[p]) for p in flow.params}
    return Cost(
        nodes=len(net.order),
        params=len(flow.params),
        backprop=len(flow.edges),
        path_by_path=sum(length for _, length in per_param.values()),
        paths=sum(paths for paths, _ in per_param.values()),
        per_param=per_param,
        reuse=flow.reuse(),
    )
