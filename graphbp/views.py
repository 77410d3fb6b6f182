"""The HTML page's views of a network too large to draw whole: one per group of its outline.

A group's view draws that group opened (its sub-groups as boxes, its own nodes as nodes, in a
frame named after it) and, around it, every box outside it that one of its nodes is wired to,
as the outline draws that box one level up. The browser cannot run Graphviz, so every view is
laid out here, all of them by one ``dot`` process. A view holds only its group's children and
the edges that touch its members, so all views together are linear in nodes + edges (times
the outline's depth): no view repeats the rest of a big graph.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from graphbp.chain import Edge
from graphbp.errors import GraphvizError
from graphbp.graph import Network
from graphbp.outline import Item, Outline
from graphbp.render import (
    _STYLE,
    FONT,
    SIZES,
    _describe,
    _kind,
    _label,
    _rows,
    _text,
    drawn,
    edge_id,
    group_box,
    mark_attrs,
    markup,
    node_id,
    run_dot,
    worst_mark,
)

SQUARE = {"rounded,filled": "filled"}
"""Views draw parameters as square boxes: a rounded one is a path of 30 points in the SVG."""


VIEW_BOXES = 300
"""The most items a view draws inside its group: opening a group also opens its small
sub-groups (``SMALL``), breadth-first, while the view stays within this many (a group's own
children always fit: the outline gives no group more than ``outline.WIDTH``)."""
SMALL = 16
"""A sub-group of at most this many children is opened with its parent where it fits: a
click to open a 3-node layer would be a wasted click, and a box left closed for it a link
more per node wired to it."""
STRAIGHT = 40
"""A view of more items draws its edges as straight lines: the splines of big views are
most of their SVG and of dot's time."""


@dataclass(frozen=True)
class PageView:
    """One view of the page: ``group`` opened inside the boxes around it.

    Attributes:
        group: the opened group's id.
        path: the groups above ``group``, the root first.
        opened: ``group`` and the sub-groups opened with it, parents before children.
        inside: the items drawn inside ``group`` (in its frame or a sub-group's).
        outside: the boxes outside ``group`` that its nodes are wired to.
        edges: operand edges between two drawn nodes.
        links: operand edges between two different boxes of which one at least is a group,
            by the pair of boxes they are drawn between.
    """

    group: str
    path: tuple[str, ...]
    opened: tuple[str, ...]
    inside: tuple[Item, ...]
    outside: tuple[Item, ...]
    edges: tuple[Edge, ...]
    links: dict[tuple[Item, Item], tuple[Edge, ...]]


def page_views(outline: Outline, boxes: int | None = None) -> list[PageView]:
    """The page's views: the root's first, then one for every group drawn closed inside
    another view (breadth-first); a group opened inside a view has none of its own.
    ``boxes``: the most items a view draws inside its group (default ``VIEW_BOXES``)."""
    boxes = VIEW_BOXES if boxes is None else boxes
    net = outline.net
    chains = {node: (*outline.ancestors(node), node) for node in net.order}
    consumers: dict[Hashable, list[Edge]] = {}
    for node in net.order:
        for position, source in enumerate(net.operands[node]):
            consumers.setdefault(source, []).append(Edge(source, node, position))
    views = []
    todo = deque([outline.root])
    while todo:
        gid = todo.popleft()
        view = _view(outline, gid, _opening(outline, gid, boxes), chains, consumers)
        views.append(view)
        todo.extend(str(item) for item in view.inside if outline.is_group(item))
    return views


def _opening(outline: Outline, gid: str, boxes: int) -> tuple[str, ...]:
    """``gid`` and the sub-groups opened with it: breadth-first, while the items drawn
    inside stay within ``boxes``."""
    opened, queue = [gid], deque([gid])
    count = len(outline.groups[gid].children)
    while queue:
        for child in outline.groups[queue.popleft()].children:
            if not outline.is_group(child):
                continue
            more = len(outline.groups[str(child)].children) - 1
            if more < SMALL and count + more <= boxes:
                count += more
                opened.append(str(child))
                queue.append(str(child))
    return tuple(opened)


def _view(
    outline: Outline,
    gid: str,
    opened: tuple[str, ...],
    chains: dict[Hashable, tuple[Item, ...]],
    consumers: dict[Hashable, list[Edge]],
) -> PageView:
    """The view of ``gid`` with ``opened`` open: what is drawn inside and around it."""
    net = outline.net
    path = outline.ancestors(gid)
    shown = {*path, *opened}

    def box(node: Hashable) -> Item:
        for item in chains[node]:
            if item not in shown:
                return item
        return node  # (the chain ends with the node: never reached)

    group = outline.groups[gid]
    inside = tuple(item for g in opened for item in outline.groups[g].children if item not in shown)
    members = set(group.members)
    outside: dict[Item, None] = {}
    edges: list[Edge] = []
    links: dict[tuple[Item, Item], list[Edge]] = {}
    for node in group.members:
        incoming = [Edge(s, node, k) for k, s in enumerate(net.operands[node])]
        leaving = [e for e in consumers.get(node, ()) if e.target not in members]
        for edge in (*incoming, *leaving):
            a, b = box(edge.source), box(edge.target)
            if a == b:
                continue
            for end, item in ((edge.source, a), (edge.target, b)):
                if end not in members:
                    outside[item] = None
            if outline.is_group(a) or outline.is_group(b):
                links.setdefault((a, b), []).append(edge)
            else:
                edges.append(edge)
    return PageView(
        group=gid,
        path=path,
        opened=opened,
        inside=inside,
        outside=tuple(outside),
        edges=tuple(edges),
        links={pair: tuple(es) for pair, es in links.items()},
    )


def item_id(net: Network, outline: Outline, item: Item) -> str:
    """A drawn item's id: its group id (``g3``) or its node's (``n17``)."""
    return str(item) if outline.is_group(item) else node_id(net, item)


def link_id(net: Network, outline: Outline, pair: tuple[Item, Item]) -> str:
    """The id of the link drawn between two boxes: ``l<a>_<b>`` (``lg3_n17``)."""
    return f"l{item_id(net, outline, pair[0])}_{item_id(net, outline, pair[1])}"


def view_source(
    net: Network,
    outline: Outline,
    carries: frozenset[Edge],
    view: PageView,
    rankdir: str,
    colors: Mapping[Edge, str] | None = None,
) -> str:
    """The DOT source of one view: compact labels (a node's name and op, a group's name
    and size), no edge labels (the page's formulas give the factors); an edge no gradient
    flows along (not in ``carries``, ``Flow.edges``) dashed; with a check's ``colors``
    (``render.Marks``), an edge in its mark's colour and a link in its edges' worst."""
    colors = colors or {}
    lines = [
        f'digraph "{view.group}" {{',
        f'graph [rankdir={rankdir} fontname="{FONT}" fontsize={SIZES["graph"]:g} nodesep=0.3 '
        "nslimit=0.5 nslimit1=0.5 mclimit=0.2 searchsize=10 remincross=false"
        f"{' splines=line' if len(view.inside) + len(view.outside) > STRAIGHT else ''}]",
        f'node [fontname="{FONT}" fontsize={SIZES["node"]:g} margin="0.08,0.04"]',
        'edge [color="#555555"]',
    ]
    opened = set(view.opened)

    def draw(gid: str) -> None:
        group = outline.groups[gid]
        frame = gid == view.group != outline.root or (gid != view.group and group.kind != "range")
        if frame:  # (a range opened inside the view is no unit of the model: no frame)
            title = _text(group.name) + (f" (× {group.repeats})" if group.kind == "fold" else "")
            lines.append(
                f"subgraph cluster_{gid} {{ id=c{gid} style=dashed "
                f'color="#888888" label={_label(f"<B>{title}</B>", "graph")}'
            )
        for item in group.children:
            if item in opened:
                draw(str(item))
            else:
                lines.append(_item_line(net, outline, item))
        if frame:
            lines.append("}")

    draw(view.group)
    lines.extend(_item_line(net, outline, item) for item in view.outside)
    for edge in view.edges:
        style = "" if edge in carries else ' style=dashed color="#aaaaaa"'
        style += _marked(worst_mark(colors, (edge,)))
        ends = f"{node_id(net, edge.source)} -> {node_id(net, edge.target)}"
        lines.append(f"{ends} [id={edge_id(net, edge)}{style}]")
    for (a, b), edges in view.links.items():
        ends = f"{item_id(net, outline, a)} -> {item_id(net, outline, b)}"
        mark = _marked(worst_mark(colors, edges))
        lines.append(f"{ends} [id={link_id(net, outline, (a, b))}{mark}]")
    lines.append("}")
    return "\n".join(lines)


def _marked(mark: str | None) -> str:
    """DOT attributes of an edge or link with a check's mark (none without)."""
    if mark is None:
        return ""
    return "".join(f' {k}="{v}"' for k, v in mark_attrs(mark).items())


def _item_line(net: Network, outline: Outline, item: Item) -> str:
    """One drawn item's DOT statement: a group's box or a node."""
    if outline.is_group(item):
        attrs = group_box(outline.groups[str(item)])
        name = str(item)
    else:
        attrs = dict(_STYLE[_kind(net, item)])
        attrs["style"] = SQUARE.get(attrs["style"], attrs["style"])
        attrs["label"] = _label(
            _rows(f"<B>{drawn(item)}</B>", markup(_describe(net, item)[0])), "node"
        )
        name = node_id(net, item)
    label = attrs.pop("label")
    extra = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    return f"{name} [id={name} label={label} {extra}]"


_CUT = re.compile(r"<\?xml[^>]*>|<!DOCTYPE[^>]*>|<!--.*?-->|<title>[^<]*</title>", re.S)
_GRAPH_ID = re.compile(r'<g id="[^"]*" class="graph"')  # dot's own: "page0,1_graph0"
_COORDS = re.compile(r' (d|points)="([^"]*)"')
_FRACTIONS = re.compile(r"\.\d+")
DROPPED = (
    f' font-family="{FONT}"',
    ' text-anchor="start"',
    ' xml:space="preserve"',
    f' font-size="{SIZES["node"]:.2f}"',
    ' stroke="black"',
    ' fill="none" stroke="#555555"',
    ' fill="#555555" stroke="#555555"',
    ' fill="none" stroke="#888888" stroke-dasharray="5,2"',
    ' fill="#ffffff"',
)
"""Attributes most texts, nodes and edges of a view have: the page's CSS sets them instead
(``VIEW_STYLE``)."""
VIEW_STYLE = f"""
:where(.views text) {{ font-family: {FONT.replace(",", ", ")}; white-space: pre; }}
:where(.views text:not([font-size])) {{ font-size: {SIZES["node"]:g}px; }}
:where(.views g.node > :not(text):not([stroke])) {{ stroke: black; }}
:where(.views g.node > :not(text):not([fill])) {{ fill: #ffffff; }}
:where(.views g.cluster > polygon:not([stroke])) {{
  fill: none; stroke: #888888; stroke-dasharray: 5, 2;
}}
:where(.views g.edge > path:not([stroke])) {{ fill: none; stroke: #555555; }}
:where(.views g.edge > polygon:not([stroke])) {{ fill: #555555; stroke: #555555; }}
"""
"""The page's CSS for what ``compact`` leaves out; of no specificity (``:where``), so that
every other rule (the highlighting) wins."""


def compact(svg: str) -> str:
    """dot's SVG of a view, smaller: no prolog, comments or titles (the page sets titles from
    its data), the attributes ``VIEW_STYLE`` sets left out, shapes' coordinates cut to
    whole points, no blank lines."""
    svg = _CUT.sub("", svg)
    for attribute in DROPPED:
        svg = svg.replace(attribute, "")

    def whole(match: re.Match[str]) -> str:  # (cut, not rounded: under a point either way)
        return f' {match[1]}="{_FRACTIONS.sub("", match[2])}"'

    svg = _GRAPH_ID.sub('<g class="graph"', _COORDS.sub(whole, svg))
    return re.sub(r"\n\s*\n", "\n", svg).strip()


def lay_out(sources: list[str], engine: str = "dot") -> list[str]:
    """Lay out DOT sources with one Graphviz process; each one's compacted SVG, in order.

    Raises:
        GraphvizError: Graphviz is missing or failed; its ``source`` is all the sources.
    """
    source = "\n".join(sources)
    parts = re.split(r"(?=<\?xml )", run_dot(source, "svg", engine).decode())
    svgs = [compact(part) for part in parts if part.strip()]
    if len(svgs) != len(sources):
        raise GraphvizError(
            f"Graphviz's dot laid out {len(svgs)} of the page's {len(sources)} views", source
        )
    return svgs
