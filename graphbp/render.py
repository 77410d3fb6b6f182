"""Graphviz drawings of a network: nodes, local derivatives on the edges, the chain-rule paths
from the loss to a parameter, and the upstream gradients backprop reuses.

``render`` builds a ``graphviz.Digraph`` (shown inline by Jupyter, laid out by ``run_dot`` as
the files are); ``run_dot`` lays DOT source out as SVG, PNG or PDF bytes. Files are
graphbp.diagram's (``write_diagram``).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from graphbp.chain import (
    MAX_PATHS,
    ChainRule,
    Edge,
    Flow,
    Path,
    chain_rule,
    check_max_paths,
    check_top,
    count_text,
    symbol,
)
from graphbp.errors import GraphvizError, InputError, PluginError, exc_text, show, visible
from graphbp.graph import Network
from graphbp.outline import Group, Item, Outline, View

if TYPE_CHECKING:
    import graphviz

Scopes = Literal["auto", "cluster", "collapse", "ignore"]
SCOPES = ("auto", "cluster", "collapse", "ignore")
Engine = Literal["auto", "dot", "sfdp"]
ENGINES = ("auto", "dot", "sfdp")
RANKDIRS = ("LR", "TB", "RL", "BT")
FULL_NODES = 400
"""``scopes="auto"`` draws every node of a network of at most this many nodes whose layout
work (``layout_work``) is at most ``FULL_WORK``, and the outline drawing (scopes collapsed,
repeated blocks folded) of any other."""
FULL_WORK = 20_000
"""The most layout work (``layout_work``) ``scopes="auto"`` draws every node for: a 400-node
chain with a long skip into every second node is 150,000 (11 s in dot, even bounded), the
README's drawings under 200."""
BOXES = 120
"""The outline drawing opens groups, breadth-first, while it has at most this many boxes."""
BOUNDED_DOT = {"splines": "line"}
"""dot's settings for a drawing of more than ``BOUNDED_FROM`` boxes or ``BOUNDED_WORK`` layout
work, besides the bounds ``dot_bounds`` sets: edges are drawn straight. Unbounded, dot spent
20 s placing and 27 s routing a 375-node imported transformer, 60 s on an 85-box outline view
whose links span 13,000 ranks in all."""
BOUNDED_FROM = 100
"""Drawings of at most this many boxes and ``BOUNDED_WORK`` layout work are laid out by dot at
full effort (every small drawing, such as the README's, keeps its curved edges)."""
BOUNDED_WORK = 2_000
"""See ``BOUNDED_FROM``."""
SIMPLEX_BUDGET = 15_000_000
"""dot's network simplex (ranks, then positions) stops after ``nslimit`` × boxes iterations,
each costing about the layout work (70 ns a unit here): bounded drawings get ``nslimit`` =
this budget / (boxes × work), at most 2 — about a second of placing."""
MINCROSS_BUDGET = 10_000
"""dot's crossing reduction runs ``mclimit`` × its default passes, each costing about the
layout work: bounded drawings get ``mclimit`` = this budget / work, at most 1 (about a second
on 140,000 units, where the default took 47 s)."""
SFDP_WORK = 60_000
"""``engine="auto"`` lays out an outline drawing of more layout work with sfdp: dot's own
setup on that many virtual nodes takes seconds whatever its bounds."""
DENSE = 3
"""``engine="auto"`` lays out a drawing of more than ``DENSE`` edges per box (plus 50) with
sfdp: dot took minutes even bounded on 112 boxes and 2,129 links (the outline of an
unscoped 10,000-node random DAG), sfdp a fraction of a second."""
INSTALL_DOT = "install Graphviz: apt-get install graphviz (Debian/Ubuntu) or brew install graphviz"

FONT = "Helvetica,Arial,sans-serif"
"""Graphviz's font for every label. dot measures text with the font fontconfig finds for it
(Liberation Sans on Linux), and a browser showing the SVG resolves ``Helvetica`` to Helvetica,
Arial or Liberation Sans, which share their glyph widths: so text drawn in the browser takes
the width dot gave it, where a font of other metrics (DejaVu Sans) would run into the next."""
SIZES = {"graph": 14.0, "node": 12.0, "edge": 10.0}
"""Font sizes, in points, of the caption and cluster labels, node labels and edge labels."""
SCRIPT = 0.7
"""Subscripts and superscripts are drawn at this fraction of the size of the text around them."""

HIGHLIGHT = "#d62728"
MARK_COLORS = {"agree": "#2ca02c", "wrong": HIGHLIGHT, "unchecked": "#aaaaaa"}
"""The colours of marked edges (``Marks``), by mark: a check report's statuses."""
_MARK_RANK = {"agree": 0, "unchecked": 1, "wrong": 2}
"""Which mark a link of several edges takes: the worst (wrong > unchecked > agree)."""
MARK_LINES = 20
"""The caption lists at most this many of the marks' lines, then counts the rest."""
MARK_LINE = 300
"""Characters of one caption line of the marks; a longer line is cut."""


class Marks(NamedTuple):
    """Edge colours and caption lines from a check (``CheckReport.marks()``).

    Attributes:
        colors: operand edges by mark, each a key of ``MARK_COLORS``; edges left out are
            drawn as usual.
        caption: lines of plain text drawn under the drawing (escaped by ``render``).
    """

    colors: Mapping[Edge, str]
    caption: tuple[str, ...] = ()


_STYLE = {  # node attributes by kind
    "input": {"shape": "ellipse", "style": "filled", "fillcolor": "#e3f2fd"},
    "param": {"shape": "box", "style": "rounded,filled", "fillcolor": "#fff3cd"},
    "const": {"shape": "ellipse", "style": "filled", "fillcolor": "#eeeeee"},
    "op": {"shape": "box", "style": "filled", "fillcolor": "#ffffff"},
    "loss": {"shape": "box", "style": "filled,bold", "fillcolor": "#fde2e1", "peripheries": "2"},
}


def node_id(net: Network, node: Hashable) -> str:
    """The id of ``node`` in the drawing (and in its SVG): ``n`` and its topological index."""
    return f"n{net.index[node]}"


def edge_id(net: Network, edge: Edge) -> str:
    """The id of one operand edge in the drawing: ``e<source>_<target>_<position>``."""
    return f"e{net.index[edge.source]}_{net.index[edge.target]}_{edge.position}"


def render(
    net: Network,
    wrt: Hashable | None = None,
    *,
    values: Mapping[Hashable, Any] | None = None,
    grads: Mapping[Hashable, Any] | None = None,
    max_paths: int = MAX_PATHS,
    scopes: Scopes = "auto",
    rankdir: str = "LR",
    engine: Engine = "auto",
    expanded: Iterable[str] | None = None,
    top: int | None = None,
    marks: Marks | None = None,
) -> graphviz.Digraph:
    """Draw ``net``: every node, the local derivative on every edge, the reuse of ∂L/∂value;
    or, for a large network, its outline: scopes collapsed and repeated blocks folded.

    Args:
        net: the network.
        wrt: a parameter: highlight every path from the loss down to it and caption the
            chain-rule formula (a sum of products when there are several paths).
        values: forward values by node (``prog.forward(params, inputs, net.order)``): each
            node shows a summary, and with ``wrt`` each path its numeric contribution.
        grads: gradients by node (``prog.value_and_grad(...)[1]``), summarised likewise.
        max_paths: the formula lists at most this many paths and says how many it leaves out.
        scopes: ``"auto"``: every node, each scope a cluster, for a network of at most
            ``FULL_NODES`` nodes and ``FULL_WORK`` layout work (``layout_work``: long edges
            cost dot as much as many nodes), else the outline drawing. ``"cluster"``: every
            node, each scope a cluster, whatever the size, by bounded dot (``dot_bounds``;
            about 2 s for the 1,023-node imported transformer, 5 s for a 1,262-node random
            DAG, growing with the layout work). ``"collapse"``: the outline drawing (see
            ``graphbp.outline``): each scope one box (name and node count), consecutive
            identical scopes one box marked "× 12", runs of more than ``outline.WIDTH``
            items in ranges; edges between boxes merged into one link, highlighted if any of
            its edges is on a path. ``"ignore"``: every node, as if unscoped (as
            ``"cluster"`` costs: 3 s for the transformer).
        rankdir: Graphviz's direction, ``"LR"`` (inputs left, loss right) or ``"TB"``.
        engine: the layout engine: ``"dot"`` (layered; its effort bounded above
            ``BOUNDED_FROM`` boxes or ``BOUNDED_WORK`` layout work: ``dot_bounds``),
            ``"sfdp"`` (force-directed, for dense drawings; no clusters) or ``"auto"``: sfdp
            for more than ``DENSE`` edges a box, or an outline drawing of more than
            ``SFDP_WORK`` layout work, else dot. The drawing's ``.engine`` is the one chosen
            (a non-dot one also named in its source, ``layout=sfdp``), and ``write_diagram``
            and Jupyter lay it out with that engine.
        expanded: groups the outline drawing opens, by scope name (``"enc/block1"``) or by
            group id (``"g3"``; scope names first), their enclosing groups with them.
            Default: groups opened breadth-first (scopes and ranges; a fold stays one box)
            while the drawing has at most ``BOXES`` boxes; with ``scopes="collapse"`` the
            innermost scopes stay closed, each one box.
        top: highlight only the ``top`` paths of the largest contribution norm (needs
            ``wrt`` and ``values``; see ``chain_rule``), captioned with their share of
            ‖∂L/∂wrt‖.
        marks: colour edges by a check's verdict (``MARK_COLORS``) and add its caption
            lines (``CheckReport.marks()``); a mark's colour replaces the path highlight's,
            and a link drawn for several edges takes the worst mark of its edges.

    Returns:
        A ``graphviz.Digraph``; Jupyter shows it as the SVG ``write_diagram`` writes
        (laid out by ``run_dot``, its text held to dot's layout), or, without Graphviz's
        ``dot``, as a line saying how to install it.

    Raises:
        GraphError: ``wrt`` is not a parameter with a path to the loss.
        InputError: an option is not one of its values, or ``expanded`` names no group.
        InputError: ``top`` is not from 1 to 10,000, or is given without ``wrt`` or ``values``.
        InputError: ``marks`` names an edge not in ``net`` or a mark not in ``MARK_COLORS``.
        PluginError: an op's ``describe`` raised or returned something other than a label
            and one local-derivative text per operand.
    """
    check_options(max_paths, scopes, rankdir, engine)
    opened = _expanded_names(expanded)
    colors = check_marks(net, marks)
    flow = Flow(net)
    rule = _rule(net, wrt, values, max_paths, flow, top)
    outline = draws_outline(net, scopes)
    boxes = len(net.order)
    graph_attr = {
        "rankdir": rankdir,
        "fontname": FONT,
        "fontsize": f"{SIZES['graph']:g}",
        "nodesep": "0.3",
    }
    dot = _drawing_class()(
        name="graphbp",
        graph_attr=graph_attr,
        node_attr={"fontname": FONT, "fontsize": f"{SIZES['node']:g}", "margin": "0.08,0.04"},
        edge_attr={"fontname": FONT, "fontsize": f"{SIZES['edge']:g}", "color": "#555555"},
    )
    on_path = rule.edges if rule else frozenset()
    if outline:
        shape = Outline(net)
        view = shape.view(_open(shape, opened, scopes == "collapse"))
        boxes = len(view.boxes)
        lines = sum(len(e) if _plain(shape, pair) else 1 for pair, e in view.links.items())
        work = layout_work(view.boxes, _view_links(shape, view))
        _draw_outline(dot, shape, view, flow, rule, values, grads, colors)
    else:
        if opened is not None:  # nothing is closed, but a name that is no scope is a mistake
            _open(Outline(net), opened, False)
        lines = sum(len(operands) for operands in net.operands.values())
        work = _full_work(net)
        groups = _groups(net, scopes)
        _draw_nodes(dot, net, flow, groups, rule, values, grads)
        _draw_edges(dot, net, flow, on_path, colors)
    _choose_engine(dot, engine, boxes, lines, work if outline else 0)
    if dot.engine == "dot":
        dot.attr(**dot_bounds(boxes, work))
    budget = OUTLINE_CAPTION if outline else CAPTION_BUDGET
    captions = [_caption(net, rule, grads, budget)] if rule is not None else []
    if marks is not None and marks.caption:
        captions.append(_marks_caption(marks.caption))
    if captions:
        cells = "".join(f'<TR><TD ALIGN="LEFT">{c}</TD></TR>' for c in captions)
        table = f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0">{cells}</TABLE>'
        caption = captions[0] if len(captions) == 1 else table
        dot.attr(label=_label(caption, "graph"), labelloc="b", labeljust="l")
    return dot


def _rule(
    net: Network,
    wrt: Hashable | None,
    values: Mapping[Hashable, Any] | None,
    max_paths: int,
    flow: Flow,
    top: int | None,
) -> ChainRule | None:
    """The chain rule a drawing highlights: every path to ``wrt``, or its ``top`` strongest.

    Raises:
        InputError: ``top`` is given without ``wrt``, or is out of range, or lacks values.
    """
    top = check_top(top, values is not None)
    if top is not None and wrt is None:
        raise InputError(
            f"top={top} highlights the strongest paths from the loss down to a parameter: "
            "pass wrt=... (a parameter) too"
        )
    return None if wrt is None else chain_rule(net, wrt, values, max_paths, flow, top=top)


@functools.cache
def _drawing_class() -> type[graphviz.Digraph]:
    """``graphviz.Digraph`` shown in Jupyter through ``run_dot`` (graphviz's own display pipes
    dot's SVG as it is, which a browser draws with labels running into each other), made on
    first use so that importing graphbp does not import graphviz."""
    import graphviz

    class Drawing(graphviz.Digraph):  # type: ignore[misc]  # graphviz has no type hints
        """A graphbp drawing: a ``graphviz.Digraph`` that Jupyter shows as ``run_dot`` lays
        it out."""

        def _repr_mimebundle_(
            self, include: Any = None, exclude: Any = None, **kwargs: Any
        ) -> dict[str, Any]:
            try:
                bundle: dict[str, Any] = super()._repr_mimebundle_(include, exclude, **kwargs)
            except GraphvizError as exc:
                return {"text/plain": f"{exc} (.source is the drawing's Graphviz source)"}
            return bundle

        def _repr_image_svg_xml(self) -> str:
            return run_dot(self.source, "svg", self.engine).decode()

        def _repr_image_png(self) -> bytes:
            return run_dot(self.source, "png", self.engine)

        def _repr_image_jpeg(self) -> bytes:
            return run_dot(self.source, "jpeg", self.engine)

    Drawing.__qualname__ = Drawing.__name__
    return Drawing


def _choose_engine(
    dot: graphviz.Digraph, engine: Engine, boxes: int, lines: int, work: int
) -> None:
    """Set the drawing's layout engine (``auto``: sfdp for a dense drawing or one of more than
    ``SFDP_WORK`` layout ``work``, else dot)."""
    if engine == "auto":
        dense = lines > DENSE * boxes + 50 or work > SFDP_WORK
        engine = "sfdp" if dense else "dot"
    dot.engine = engine
    if engine == "sfdp":  # layout: a .dot file given to `dot` lays out with sfdp too
        dot.attr(layout="sfdp", overlap="prism", splines="false", outputorder="edgesfirst")


def dot_bounds(boxes: int, work: int) -> dict[str, str]:
    """dot's effort bounds for a drawing of ``boxes`` boxes and ``work`` layout work: none up
    to ``BOUNDED_FROM`` boxes and ``BOUNDED_WORK`` work, else ``BOUNDED_DOT`` and iteration
    limits that keep network simplex and crossing reduction to about a second each (see
    ``SIMPLEX_BUDGET``, ``MINCROSS_BUDGET``). What is left grows with the work: dot's setup
    on 250,000 virtual nodes (a 1,023-node transformer drawn whole) takes some 5 s."""
    if boxes <= BOUNDED_FROM and work <= BOUNDED_WORK:
        return {}
    simplex = min(2.0, SIMPLEX_BUDGET / (max(boxes, 1) * max(work, 1)))
    mincross = min(1.0, MINCROSS_BUDGET / max(work, 1))
    limits = {
        "nslimit": f"{simplex:.2g}",
        "nslimit1": f"{simplex:.2g}",
        "mclimit": f"{mincross:.2g}",
    }
    return {**limits, **BOUNDED_DOT}


def draws_outline(net: Network, scopes: str) -> bool:
    """Whether ``scopes`` draws ``net``'s outline: always for ``"collapse"``, for ``"auto"``
    above ``FULL_NODES`` nodes or ``FULL_WORK`` layout work."""
    if scopes != "auto":
        return scopes == "collapse"
    return len(net.order) > FULL_NODES or _full_work(net) > FULL_WORK


def _full_work(net: Network) -> int:
    """The layout work of every node drawn (each edge labelled)."""
    return layout_work(net.order, ((s, n, True) for n in net.order for s in net.operands[n]))


def _view_links(outline: Outline, view: View) -> Iterator[tuple[Item, Item, bool]]:
    """A view's drawn links, labelled where they join two nodes (drawn edge by edge)."""
    for pair, edges in view.links.items():
        plain = _plain(outline, pair)
        for _ in edges if plain else edges[:1]:
            yield (pair[0], pair[1], plain)


def layout_work(boxes: Sequence[Hashable], links: Iterable[tuple[Hashable, Hashable, bool]]) -> int:
    """What dot's layout of ``boxes`` (in a topological order) and ``links`` (source,
    target, labelled) costs: the boxes plus the virtual nodes dot puts on links that span
    several ranks, with ranks by longest path (a labelled link spans 2, as dot makes room
    for its label; a link against the order counts 1). Time linear in boxes and links.

    dot's network simplex and crossing reduction cost about this much per iteration: a
    chain with long skips is small in boxes but large in work.
    """
    position = {box: k for k, box in enumerate(boxes)}
    into: list[list[tuple[int, int]]] = [[] for _ in boxes]
    back = 0
    for source, target, labelled in links:
        a, b = position[source], position[target]
        if a < b:
            into[b].append((a, 2 if labelled else 1))
        else:
            back += 1
    rank = [0] * len(into)
    work = len(into) + back
    for b, sources in enumerate(into):
        rank[b] = max((rank[a] + length for a, length in sources), default=0)
        work += sum(rank[b] - rank[a] for a, _ in sources)
    return work


def check_options(max_paths: int, scopes: str, rankdir: str, engine: str = "auto") -> None:
    """Refuse drawing options outside their few values (they reach the DOT source).

    Raises:
        InputError: ``max_paths`` is not from 1 to 10,000, or ``scopes``, ``rankdir`` or
            ``engine`` is not one of its values.
    """
    check_max_paths(max_paths)
    for option, value, allowed in (
        ("scopes", scopes, SCOPES),
        ("rankdir", rankdir, RANKDIRS),
        ("engine", engine, ENGINES),
    ):
        if not isinstance(value, str) or value not in allowed:
            raise InputError(f"{option}={show(value)}: choose one of {', '.join(allowed)}")


def _label(markup: str, kind: Literal["graph", "node", "edge"]) -> str:
    """Graphviz HTML markup as a DOT label: ``<markup>``, its scripts smaller, its backslashes
    doubled.

    Every user text in ``markup`` is escaped already (``&<>"'`` as entities), so it can
    neither end the label nor open a tag; Graphviz then expands ``\\N``, ``\\G``, ``\\l``
    and the like even inside HTML labels, so each backslash is written as two and draws as one.
    """
    markup = scripts_smaller(markup, SIZES[kind])
    return f"<{markup.replace(chr(92), chr(92) * 2)}>"


_TAGS = re.compile(r'<FONT(?: POINT-SIZE="([0-9.]+)")?[^>]*>|</FONT>|<(SUB|SUP)>|</(SUB|SUP)>')


def scripts_smaller(markup: str, size: float) -> str:
    """``markup`` (escaped Graphviz HTML) with every ``<SUB>`` and ``<SUP>`` drawn at
    :data:`SCRIPT` times the size of the text around it (dot draws them at full size).

    Args:
        markup: the label; its ``FONT POINT-SIZE`` tags say where the size changes.
        size: the size of the text outside any ``FONT`` tag, in points.
    """
    sizes, out, start = [size], [], 0
    for match in _TAGS.finditer(markup):
        tag, point_size, opening, closing = match[0], match[1], match[2], match[3]
        if tag.startswith("<FONT"):
            sizes.append(float(point_size) if point_size else sizes[-1])
        elif tag == "</FONT>":
            sizes.pop()
        elif opening:
            tag = f'{tag}<FONT POINT-SIZE="{round(sizes[-1] * SCRIPT, 1):g}">'
        elif closing:
            tag = f"</FONT>{tag}"
        out.append(markup[start : match.start()] + tag)
        start = match.end()
    return "".join(out) + markup[start:]


def _groups(net: Network, scopes: Scopes) -> dict[str, list[Hashable]]:
    """Nodes by scope (in topological order); unscoped nodes are in group ``""``."""
    groups: dict[str, list[Hashable]] = {}
    for node in net.order:
        scope = net.graph.nodes[node].get("scope") if scopes != "ignore" else None
        groups.setdefault("" if scope is None else str(scope), []).append(node)
    return groups


def _kind(net: Network, node: Hashable) -> str:
    return "loss" if node == net.loss else net.kind[node]


def _describe(net: Network, node: Hashable) -> tuple[str, tuple[str, ...]]:
    """The label and local-derivative texts of a node: its op's, or its leaf kind.

    Raises:
        PluginError: the op's ``describe`` raised, or returned something other than a str
            and a tuple of one str per operand.
    """
    if node not in net.ops:
        return net.kind[node], ()
    op = net.ops[node]
    where = f"node {show(node)}: op {op.name!r} ({type(op).__module__}.{type(op).__qualname__})"
    try:
        label, local = op.describe(net.attrs[node])
    except Exception as exc:  # a plugin's bug, in whatever form
        raise PluginError(
            f"{where}: describe() raised {type(exc).__name__}: {exc_text(exc)}; fix the "
            "op's describe (or its label and local_grads, which the default describe returns)"
        ) from exc
    arity = len(net.operands[node])
    if not isinstance(label, str) or not (
        isinstance(local, tuple) and len(local) == arity and all(isinstance(t, str) for t in local)
    ):
        raise PluginError(
            f"{where}: describe() returned label {show(label)} and local derivatives "
            f"{show(local)}; it must return a str and a tuple of {arity} str (one per operand)"
        )
    return label, local


def _draw_nodes(
    dot: graphviz.Digraph,
    net: Network,
    flow: Flow,
    groups: dict[str, list[Hashable]],
    rule: ChainRule | None,
    values: Mapping[Hashable, Any] | None,
    grads: Mapping[Hashable, Any] | None,
) -> None:
    reuse = flow.reuse()

    def draw(target: graphviz.Digraph, nodes: list[Hashable]) -> None:
        for node in nodes:
            _draw_node(target, net, node, rule, reuse.get(node), values, grads)

    for k, (scope, nodes) in enumerate(groups.items()):
        if not scope:
            draw(dot, nodes)
            continue
        with dot.subgraph(name=f"cluster_{k}") as cluster:
            label = _label(_text(scope), "graph")
            cluster.attr(label=label, style="rounded,dashed", color="#888888")
            draw(cluster, nodes)


def _draw_node(
    target: graphviz.Digraph,
    net: Network,
    node: Hashable,
    rule: ChainRule | None,
    reused_by: int | None,
    values: Mapping[Hashable, Any] | None,
    grads: Mapping[Hashable, Any] | None,
) -> None:
    """One node: its kind's style, highlighted on a path, its label and source tooltip."""
    attrs = dict(_STYLE[_kind(net, node)])
    if rule is not None and node in rule.nodes:
        attrs.update(color=HIGHLIGHT, penwidth="2.5")
        if node == rule.wrt:
            attrs["fillcolor"] = "#f8c9c4"
    label = _node_label(net, node, reused_by, values, grads)
    name = node_id(net, node)
    source = net.graph.nodes[node].get("source")
    if source is not None:  # where the node's computation was written
        attrs["tooltip"] = _tooltip(f"{node} ({net.op_name(node)}) — {source}")
    target.node(name, label=_label(label, "node"), id=name, **attrs)


def _draw_edges(
    dot: graphviz.Digraph,
    net: Network,
    flow: Flow,
    on_path: frozenset[Edge],
    colors: Mapping[Edge, str],
    only: Iterable[Edge] | None = None,
) -> None:
    """Every operand edge (or those in ``only``) with its local derivative, coloured by
    its mark if ``colors`` has one."""
    carries = set(flow.edges)
    edges = (
        only
        if only is not None
        else (Edge(s, n, p) for n in net.order for p, s in enumerate(net.operands[n]))
    )
    described: dict[Hashable, tuple[str, ...]] = {}
    for edge in edges:
        source, node, position = edge
        if node not in described:
            described[node] = _describe(net, node)[1]
        factor = f"∂{drawn(node)}/∂{drawn(source)}"
        attrs: dict[str, str] = {}
        if edge in on_path:
            attrs.update(color=HIGHLIGHT, fontcolor=HIGHLIGHT, penwidth="2.5")
        elif edge not in carries:  # backprop never evaluates it: no gradient flows here
            attrs.update(style="dashed", color="#aaaaaa", fontcolor="#888888")
        if edge in colors:
            attrs.update(mark_attrs(colors[edge]))
        dot.edge(
            node_id(net, source),
            node_id(net, node),
            label=_label(_rows(factor, markup(described[node][position])), "edge"),
            id=edge_id(net, edge),
            **attrs,
        )


def check_marks(net: Network, marks: Marks | None) -> Mapping[Edge, str]:
    """The edge colours of ``marks`` (none without marks), checked against ``net``.

    Raises:
        InputError: ``marks`` is not a Marks, a mark is not a key of ``MARK_COLORS``, or
            an edge is not one of ``net``'s operand edges.
    """
    if marks is None:
        return {}
    if not isinstance(marks, Marks) or not isinstance(marks.colors, Mapping):
        raise InputError(
            f"marks={show(marks)}: give a graphbp.render.Marks of edge colours by edge, "
            "such as CheckReport.marks()"
        )
    for edge, mark in marks.colors.items():
        if not isinstance(mark, str) or mark not in MARK_COLORS:
            raise InputError(
                f"marks: edge {show(edge)} has mark {show(mark)}; use one of "
                f"{', '.join(MARK_COLORS)}"
            )
        if not _is_edge_of(net, edge):
            raise InputError(
                f"marks: edge {show(edge)} is not an operand edge of this network; mark the "
                "edges of the network drawn (CheckReport.marks() of a check of it)"
            )
    return marks.colors


def _is_edge_of(net: Network, edge: object) -> bool:
    """Whether ``edge`` is one of ``net``'s operand edges (source, target, position)."""
    if not isinstance(edge, tuple) or len(edge) != 3:
        return False
    source, target, position = edge
    try:
        operands = net.operands.get(target, ())
    except TypeError:  # an unhashable target
        return False
    return (
        isinstance(position, int)
        and 0 <= position < len(operands)
        and (operands[position] == source)
    )


def worst_mark(colors: Mapping[Edge, str], edges: Iterable[Edge]) -> str | None:
    """The mark a link drawn for several edges takes: the worst of theirs (wrong >
    unchecked > agree), or None if none of them is marked."""
    marks = [colors[e] for e in edges if e in colors]
    return max(marks, key=_MARK_RANK.__getitem__, default=None)


def mark_attrs(mark: str) -> dict[str, str]:
    """The DOT attributes of an edge marked ``mark``: its colour, wrong ones thicker."""
    color = MARK_COLORS[mark]
    return {"color": color, "fontcolor": color, "penwidth": "3" if mark == "wrong" else "1.8"}


def mark_lines(lines: tuple[str, ...]) -> list[str]:
    """The marks' caption lines (plain user text) as they are shown, not yet escaped: at
    most ``MARK_LINES`` of them, each cut at ``MARK_LINE`` characters."""
    shown = [visible(str(line)) for line in lines[:MARK_LINES]]
    shown = [t if len(t) <= MARK_LINE else f"{t[: MARK_LINE - 1]}…" for t in shown]
    if len(lines) > MARK_LINES:
        shown.append(f"… and {len(lines) - MARK_LINES:,} more")
    return shown


def _marks_caption(lines: tuple[str, ...]) -> str:
    """The marks' caption lines as escaped markup rows (``mark_lines``)."""
    cells = "".join(f'<TR><TD ALIGN="LEFT">{html.escape(t)}</TD></TR>' for t in mark_lines(lines))
    return f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="3">{cells}</TABLE>'


# ------------------------------------------------------------------------- the outline


def _expanded_names(expanded: Iterable[str] | None) -> tuple[str, ...] | None:
    """``expanded`` as a tuple of str (a single str is one name, not its characters).

    Raises:
        InputError: an item is not a str.
    """
    if expanded is None:
        return None
    names = (expanded,) if isinstance(expanded, str) else tuple(expanded)
    for name in names:
        if not isinstance(name, str):
            raise InputError(
                f"expanded={show(name)}: give scope names or group ids as str, e.g. "
                "expanded=['block0']"
            )
    return names


def _open(outline: Outline, names: tuple[str, ...] | None, innermost: bool) -> frozenset[str]:
    """The groups to open: the ones named and their enclosing groups, or by default
    groups breadth-first (ranges and scopes, never folds; with ``innermost`` no scope that
    holds no other) while the drawing stays within ``BOXES`` boxes.

    Raises:
        InputError: a name is neither a scope nor a group id.
    """
    groups = outline.groups
    if names is not None:
        opened: set[str] = set()
        for name in names:
            gid = outline.find(name) or (name if outline.is_group(name) else None)
            if gid is None:
                scopes = [g.name for g in groups.values() if g.kind == "scope"]
                listed = ", ".join(show(n) for n in scopes[:5]) or "none: no node has a scope"
                more = f" (and {len(scopes) - 5:,} more)" if len(scopes) > 5 else ""
                raise InputError(
                    f"expanded: {show(name)} is neither a scope nor a group id of this "
                    f"network; its scopes are {listed}{more}"
                )
            opened.update((*outline.ancestors(gid), str(gid)))
        return frozenset(opened)
    outer: set[str] = set()  # groups holding a scope or fold
    for group in groups.values():
        if group.kind in ("scope", "fold") and group.parent is not None:
            outer.update(outline.ancestors(group.id))
    opened = {outline.root}
    boxes = len(groups[outline.root].children)
    queue = [str(c) for c in groups[outline.root].children if outline.is_group(c)]
    for gid in queue:  # grows while it is read: breadth-first
        group = groups[gid]
        opens = group.kind == "range" or (group.kind == "scope" and (not innermost or gid in outer))
        if not opens or boxes - 1 + len(group.children) > BOXES:
            continue
        opened.add(gid)
        boxes += len(group.children) - 1
        queue.extend(str(c) for c in group.children if outline.is_group(c))
    return frozenset(opened)


_GROUP_STYLE = {
    "scope": {"shape": "box", "style": "rounded,filled", "fillcolor": "#eef3f8"},
    "fold": {"shape": "box3d", "style": "filled", "fillcolor": "#eef3f8"},
    "range": {"shape": "box", "style": "dashed,filled", "fillcolor": "#f7f7f7"},
}


def _draw_outline(
    dot: graphviz.Digraph,
    outline: Outline,
    view: View,
    flow: Flow,
    rule: ChainRule | None,
    values: Mapping[Hashable, Any] | None,
    grads: Mapping[Hashable, Any] | None,
    colors: Mapping[Edge, str],
) -> None:
    """The outline drawing: open groups as clusters (an open range as none), closed groups as
    one box each, nodes as in the full drawing; edges between two nodes as there, links to
    or from a group merged, highlighted if any of their edges is on a path."""
    net = outline.net
    reuse = flow.reuse()
    on_nodes = rule.nodes if rule is not None else frozenset()

    def draw(target: graphviz.Digraph, gid: str) -> None:
        for child in outline.groups[gid].children:
            if not outline.is_group(child):
                _draw_node(target, net, child, rule, reuse.get(child), values, grads)
                continue
            group = outline.groups[str(child)]
            if group.id not in view.expanded:
                _draw_group_box(target, group, _on_path(outline, group, on_nodes))
            elif group.kind == "range":  # an open range is only a way to count: no frame
                draw(target, group.id)
            else:
                with target.subgraph(name=f"cluster_{group.id}") as cluster:
                    title = _text(group.name)
                    if group.kind == "fold":
                        title = f"{title} (× {group.repeats})"
                    cluster.attr(
                        label=_label(title, "graph"),
                        style="rounded,dashed",
                        color="#888888",
                        id=f"cluster_{group.id}",
                    )
                    draw(cluster, group.id)

    draw(dot, outline.root)
    on_path = rule.edges if rule is not None else frozenset()
    singles: list[Edge] = []
    carries = set(flow.edges)
    for (a, b), edges in view.links.items():
        if _plain(outline, (a, b)):
            singles.extend(edges)
            continue
        ida, idb = _box_id(outline, a), _box_id(outline, b)
        attrs = {"id": f"l{ida}_{idb}"}
        if len(edges) > 1:
            attrs["tooltip"] = f"{len(edges):,} edges"
        if any(e in on_path for e in edges):
            attrs.update(color=HIGHLIGHT, penwidth="2.5")
        elif not any(e in carries for e in edges):
            attrs.update(style="dashed", color="#aaaaaa")
        mark = worst_mark(colors, edges)
        if mark is not None:
            attrs.update(mark_attrs(mark))
        dot.edge(ida, idb, **attrs)
    _draw_edges(dot, net, flow, on_path, colors, singles)


def _plain(outline: Outline, pair: tuple[Hashable, Hashable]) -> bool:
    """Whether a link joins two nodes (its edges are drawn one by one)."""
    return not (outline.is_group(pair[0]) or outline.is_group(pair[1]))


def _box_id(outline: Outline, box: Hashable) -> str:
    """A box's drawing id: a group's own id, a node's ``n<index>``."""
    return str(box) if outline.is_group(box) else node_id(outline.net, box)


def _on_path(outline: Outline, group: Group, on_nodes: frozenset[Hashable]) -> int:
    """How much of a closed group a path runs through: for a fold, the number of its
    blocks holding a node on a path; otherwise 1 if any of its nodes is on one, else 0."""
    if group.kind != "fold":
        return int(any(n in on_nodes for n in group.members))
    return sum(any(n in on_nodes for n in block.members) for block in _blocks(outline, group))


def _blocks(outline: Outline, fold: Group) -> Iterator[Group]:
    """A fold's blocks: its children, through the ranges a long fold is split into."""
    for child in fold.children:
        group = outline.groups[str(child)]
        if group.kind == "range":
            yield from _blocks(outline, group)
        else:
            yield group


def _draw_group_box(target: graphviz.Digraph, group: Group, on_path: int) -> None:
    """A closed group as one box (``group_box``)."""
    target.node(group.id, id=group.id, **group_box(group, on_path))


def group_box(group: Group, on_path: int = 0) -> dict[str, str]:
    """The DOT attributes of a closed group's box, its label among them: its name and node
    count; a fold's "× repeats" (the outline drawing's and the HTML page's views').

    Args:
        group: the closed group.
        on_path: highlighted if not 0; for a fold, how many of its blocks a path runs
            through (see ``_on_path``), which its label says.
    """
    attrs = dict(_GROUP_STYLE[group.kind])
    rows = [f"<B>{_text(group.name)}</B>"]
    if group.kind == "fold":
        each = len(group.members) // group.repeats
        rows.append(f"× {group.repeats} ({each:,} nodes each)")
    else:
        rows.append(f"{len(group.members):,} nodes")
    if on_path:
        attrs.update(color=HIGHLIGHT, penwidth="2.5")
        if group.kind == "fold":
            blocks = "all" if on_path == group.repeats else f"{on_path} of"
            text = f"paths run through {blocks} {group.repeats} blocks"
            rows.append(f'<FONT COLOR="{HIGHLIGHT}">{text}</FONT>')
    return {**attrs, "label": _label(_rows(*rows), "node")}


def _node_label(
    net: Network,
    node: Hashable,
    reused_by: int | None,
    values: Mapping[Hashable, Any] | None,
    grads: Mapping[Hashable, Any] | None,
) -> str:
    """A node's HTML label: name, op label, shape; value, gradient and reuse when known."""
    label, _ = _describe(net, node)
    shape = net.shapes.get(node)
    rows = [f"<B>{drawn(node)}</B>", markup(label)]
    if shape is not None:
        dims = ", ".join("N" if d is None else html.escape(str(d)) for d in shape)
        dims += "," if len(shape) == 1 else ""
        rows.append(f'<FONT POINT-SIZE="9" COLOR="#666666">({dims})</FONT>')
    if values is not None and node in values:
        rows.append(f'<FONT POINT-SIZE="9">value {summary(values[node])}</FONT>')
    if grads is not None and node in grads:
        rows.append(f'<FONT POINT-SIZE="9">∂L/∂{drawn(node)} {summary(grads[node])}</FONT>')
    if not reused_by:
        return _rows(*rows)
    reuse = (
        f'<TR><TD BGCOLOR="#dbe9ff"><FONT POINT-SIZE="9">∂L/∂{drawn(node)} reused '
        f"by {reused_by} params</FONT></TD></TR>"
    )
    return _rows(*rows, extra=reuse)


def _rows(*rows: str, extra: str = "") -> str:
    """Lines of markup as the rows of a borderless table, then ``extra`` rows.

    A table, not ``<BR/>``: dot spaces ``<BR/>`` lines by the font size alone, closer than a
    browser's line boxes; rows get the height of their text, and padding for a subscript's
    drop below the baseline.
    """
    cells = "".join(f"<TR><TD>{row}</TD></TR>" for row in rows) + extra
    return f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">{cells}</TABLE>'


def summary(value: Any) -> str:
    """A short, escaped summary of an array: the number if scalar, else shape and norm."""
    import numpy as np

    array = np.asarray(value, dtype=np.float64)
    if array.size == 1:
        return html.escape(f"{array.item():.4g}")
    largest = float(np.max(np.abs(array))) if array.size else 0.0
    if 0 < largest < np.inf:  # scaled, so that values near 1e300 do not overflow the sum
        return html.escape(f"‖·‖={largest * np.linalg.norm(array / largest):.4g}")
    return html.escape(f"‖·‖={np.linalg.norm(array):.4g}")


DRAWN = 60
"""Names, scopes and plugin texts longer than this many characters are drawn shortened,
their middle elided (Graphviz reads at most 16,384 bytes of one HTML label)."""
CAPTION_BUDGET = 10_000
"""Bytes of markup the caption's formula and path lines may take; the rest is counted."""
OUTLINE_CAPTION = 2_000
"""The outline drawing's ``CAPTION_BUDGET``: it is drawn to be read whole."""
_CAPTION_EXACT_BITS = 200
"""Counts in the caption are exact up to about 60 digits, then ≈m×10^e."""
FACTORS = 12
"""A path with more factors is drawn as its first and last few, the middle counted."""


def _short(text: str) -> str:
    """``text`` (visible already) as escaped markup, its middle elided beyond ``DRAWN``."""
    if len(text) <= DRAWN:
        return html.escape(text)
    return f"{html.escape(text[: DRAWN - 25])}…{html.escape(text[-20:])}"


def drawn(node: Hashable) -> str:
    """How a node's name is drawn: its symbol's markup (W<SUB>1</SUB>), or for a name
    longer than ``DRAWN`` characters its escaped beginning and end around an ellipsis."""
    sym = symbol(node)
    return sym.html if len(sym.text) <= DRAWN else _short(sym.text)


def markup(text: str) -> str:
    """Plugin text as Graphviz HTML: escaped, with ᵀ and ² as superscripts."""
    out = _short(visible(text))
    for plain, sup in (("ᵀ", "T"), ("²", "2"), ("³", "3")):
        out = out.replace(plain, f"<SUP>{sup}</SUP>")
    return out


def _tooltip(text: str) -> str:
    """User text as a Graphviz tooltip (an escString): visible, shortened, and with its
    backslashes doubled so that none starts an escape such as ``\\N``."""
    return _short(visible(text)).replace("\\", "\\\\")


def _text(text: str) -> str:
    """User text (a scope) as Graphviz/HTML text: non-printables as escapes, escaped, and
    shortened beyond ``DRAWN`` characters."""
    return _short(visible(text))


def _factors(net: Network, path: Path) -> str:
    """A path's product of local derivatives as markup (``ChainRule.html``'s, with long
    names shortened); a path of more than ``FACTORS`` factors elided in the middle."""
    edges = path.edges
    shown = edges if len(edges) <= FACTORS else (*edges[: FACTORS - 4], *edges[-3:])
    factors = [
        f"∂{drawn(e.target)}/∂{drawn(e.source)}"
        + (f"[{e.position}]" if net.operands[e.target].count(e.source) > 1 else "")
        for e in shown
    ]
    if len(edges) > FACTORS:
        factors[FACTORS - 4 : FACTORS - 4] = [f"… ({len(edges) - FACTORS + 1:,} more factors) …"]
    return " · ".join(factors)


def _caption(
    net: Network,
    rule: ChainRule,
    grads: Mapping[Hashable, Any] | None,
    budget: int = CAPTION_BUDGET,
) -> str:
    """The formula under the drawing; with values, each path's contribution and their sum.

    Paths are written out while they fit ``budget`` bytes of markup; the rest are counted.
    """
    head = f"∂{drawn(rule.loss)}/∂{drawn(rule.wrt)} = "
    budget -= len(head.encode())
    terms: list[str] = []
    for path in rule.paths:
        term = _factors(net, path)
        cost = len(term.encode()) + term.count("\\") + 3  # backslashes are written twice
        budget -= cost + (80 if path.contribution is not None else 0)
        if budget < 0 and terms:
            break
        terms.append(term)
    rest = rule.path_count - len(terms)
    count = functools.partial(count_text, exact_bits=_CAPTION_EXACT_BITS)
    more = f" + … ({count(rest)} more path{'s' if rest > 1 else ''})" if rest else ""
    lines = [head + " + ".join(terms) + more]
    if rule.top is not None:
        return _caption_table([*lines, *_strongest_lines(rule, len(terms), count)])
    if rest:
        lines.append(
            f"{len(terms):,} of {count(rule.path_count)} paths listed; every path is highlighted"
        )
    if rule.paths and rule.paths[0].contribution is not None:
        for k, path in enumerate(rule.paths[: len(terms)], start=1):
            lines.append(f"path {k}: {summary(path.contribution)}")
        if rule.gradient is not None:
            total = f"sum of the paths: {summary(rule.gradient)}"
            if grads is not None and rule.wrt in grads:
                total += f" (backprop's ∂L/∂{drawn(rule.wrt)}: {summary(grads[rule.wrt])})"
            lines.append(total)
    return _caption_table(lines)


def _caption_table(lines: list[str]) -> str:
    """Lines of caption markup as a left-aligned table."""
    cells = "".join(f'<TR><TD ALIGN="LEFT">{line}</TD></TR>' for line in lines)
    return f'<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="3">{cells}</TABLE>'


def _strongest_lines(rule: ChainRule, shown: int, count: Callable[[int], str]) -> list[str]:
    """The caption's lines for a ``top`` rule: which paths are highlighted, whether they are
    surely the strongest, and each path's share of ‖∂L/∂wrt‖ (``shown`` of them)."""
    wrt = drawn(rule.wrt)
    how = "exact" if rule.exact else "estimated: see chain_rule's exact"
    lines = [
        f"the {len(rule.paths):,} strongest of {count(rule.path_count)} paths by "
        f"‖contribution‖, highlighted ({how})"
    ]
    for k, path in enumerate(rule.paths[:shown], start=1):
        lines.append(f"path {k}: {share_text(path.share)} of ‖∂L/∂{wrt}‖")
    if rule.gradient is not None:
        lines.append(f"backprop's ∂L/∂{wrt}: {summary(rule.gradient)}")
    return lines


def share_text(share: float | None) -> str:
    """A path's share of ‖∂L/∂wrt‖ as a percentage: ``62%``, ``0.31%``, ``1.2e-08%``."""
    if share is None or share != share:  # unknown, or NaN (the path and gradient are 0)
        return "n/a"
    percent = 100 * share
    return f"{percent:.0f}%" if percent >= 9.5 or percent == 0 else f"{percent:.2g}%"


# ------------------------------------------------------------------------------- layout


def run_dot(source: str, fmt: str, engine: str = "dot") -> bytes:
    """DOT ``source`` laid out by Graphviz's ``engine`` ("dot" or "sfdp") in the format
    ``fmt`` ("svg", "png", "pdf").

    Only renders: no file is read or written.

    Raises:
        GraphvizError: the engine is not on PATH, or it failed; the error's ``source`` is
            ``source``.
        InputError: ``engine`` is not "dot" or "sfdp".
        ValueError: ``fmt`` is not a format Graphviz knows.
    """
    import graphviz

    if engine not in ENGINES[1:]:
        raise InputError(f"engine={show(engine)}: choose one of {', '.join(ENGINES[1:])}")
    try:
        data: bytes = graphviz.pipe(engine, fmt, source.encode(), quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizError(
            f"Graphviz's {engine!r} executable is not on PATH; {INSTALL_DOT}", source
        ) from None
    except graphviz.CalledProcessError as exc:
        stderr = (exc.stderr or b"").decode(errors="replace").strip()
        excerpt = stderr if len(stderr) <= 300 else f"{stderr[:300]}…"
        raise GraphvizError(
            f"Graphviz's {engine} failed (exit status {exc.returncode}): {excerpt!r}", source
        ) from None
    return fit_text(data) if fmt == "svg" else data


_SPAN = re.compile(  # the attributes in any order (later Graphviz versions add xml:space)
    rb'<text (?=[^>]*\btext-anchor="start")(?=[^>]*\bx="(-?[0-9.]+)")(?=[^>]*\by="(-?[0-9.]+)")'
)


def fit_text(svg: bytes) -> bytes:
    """dot's SVG with its text held to dot's layout in any browser: every span's spaces kept
    (``xml:space="preserve"``: a browser drops a span's leading space, as in `` reused``
    after a subscript), and every span that another follows on its line drawn at the width dot
    gave it (``textLength``), so that it cannot run into the next.

    dot writes a line of an HTML label as one ``<text>`` per font change (a subscript is one),
    each placed at the width dot measured for the one before; it measures with glyph advances
    rounded to whole pixels (Pango's default), so a span of 20 glyphs can come out 3 points
    narrower than a browser draws it, even in the same font.
    """
    lines = svg.split(b"\n")
    for k, line in enumerate(lines):
        this = _SPAN.match(line)
        if this is None:
            continue
        other = _SPAN.match(lines[k + 1]) if k + 1 < len(lines) else None
        fit = "" if b"xml:space=" in line else 'xml:space="preserve" '
        if other is not None and this[2] == other[2] and float(other[1]) > float(this[1]):
            fit += f'textLength="{float(other[1]) - float(this[1]):.2f}" '
            fit += 'lengthAdjust="spacingAndGlyphs" '
        lines[k] = line.replace(b"<text ", f"<text {fit}".encode(), 1)
    return b"\n".join(lines)
