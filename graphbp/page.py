"""One self-contained HTML page: the network's SVG inline, and a click on any parameter
highlights its chain-rule paths and shows its formula. No external files, no network.

A network too large to draw whole is drawn by its outline's views (graphbp.views), each laid
out here and kept in a ``<template>``: a click on a group's box shows its view, the trail
above the drawing goes back up, and the highlighting is drawn as the shown view draws it.

Nothing from the graph becomes markup or code: names reach the page as escaped text (in the
SVG Graphviz drew from escaped labels, in a JSON block whose ``<``, ``>`` and ``&`` are
``\\u`` escapes, read by the script as text), ids are graphbp's own (``n3``, ``e0_3_1``,
``g2``, ``lg2_n7``), and a Content-Security-Policy lets only the page's own script and style
run (by their SHA-256), nothing remote at all."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shlex
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from graphbp.chain import (
    MAX_LISTED_FACTORS,
    MAX_PATHS,
    Cost,
    Edge,
    Flow,
    chain_rule,
    count_text,
    explain,
    symbol,
)
from graphbp.errors import visible
from graphbp.graph import Network
from graphbp.outline import Outline
from graphbp.render import (
    Engine,
    Marks,
    Scopes,
    _expanded_names,
    _open,
    check_marks,
    check_options,
    draws_outline,
    mark_lines,
    node_id,
    render,
    run_dot,
    summary,
)
from graphbp.views import VIEW_STYLE, lay_out, page_views, view_source

_STYLE = (
    """
body { font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; }
header { padding: 0.6em 1em; border-bottom: 1px solid #ddd; }
header h1 { font-size: 1.1em; margin: 0; }
header p { margin: 0.2em 0 0; color: #555; }
main { display: flex; gap: 1em; padding: 1em; align-items: flex-start; }
#graph { flex: 3; overflow: auto; }
#graph svg { max-width: 100%; height: auto; }
aside { flex: 1; min-width: 18em; }
#formula { font-size: 1.1em; line-height: 1.6; }
#contributions { color: #444; font-size: 0.95em; }
pre { font-size: 0.8em; white-space: pre-wrap; background: #f6f6f6; padding: 0.6em; }
g.param { cursor: pointer; }
g.hl :is(path, polygon, ellipse):first-of-type { stroke: #d62728; stroke-width: 3px; }
g.edge.hl polygon:first-of-type { fill: #d62728; }
g.edge.hl text { fill: #d62728; }
g.wrt :is(path, polygon, ellipse):first-of-type { fill: #f8c9c4; }
g.group { cursor: zoom-in; }
g.closes { cursor: zoom-out; }
#trail button { font: inherit; margin: 0.3em 0.3em 0 0; }
#trail button:not(:last-child)::after { content: " ›"; }
#graph.actual svg { max-width: none; }
#zoom { font: inherit; margin: 0.3em 0 0 1em; }
"""
    + VIEW_STYLE
)

_SCRIPT = """
const data = JSON.parse(document.getElementById("chain-data").textContent);
const graph = document.getElementById("graph"), groups = data.groups || {};
const up = new Map(), down = new Map();  // node index -> [edge, ...] out of it, into it
for (const edge of data.edges) {
  const [source, target] = edge;
  if (!up.has(source)) up.set(source, []);
  if (!down.has(target)) down.set(target, []);
  up.get(source).push(edge);
  down.get(target).push(edge);
}
let open = new Set(), selected = null;  // the groups open in the view shown; the parameter
function box(node) {  // the id of what node index is drawn as: itself, or a closed group
  let item = "n" + node;
  for (let g = data.owner ? data.owner[node] : null; g !== null; g = groups[g][0]) {
    if (open.has(g)) return item;
    item = g;
  }
  return item;
}
function reach(start, next, end) {  // the nodes reached from start along next's edges
  const seen = new Set([start]), todo = [start];
  while (todo.length) {
    for (const edge of next.get(todo.pop()) || []) {
      if (!seen.has(edge[end])) { seen.add(edge[end]); todo.push(edge[end]); }
    }
  }
  return seen;
}
function onPaths(param) {  // ids of the drawn nodes, boxes, edges and links on its paths
  const above = reach(param, up, 1), below = reach(data.loss, down, 0);
  const ids = new Set([box(param)]);
  for (const [source, target, position] of data.edges) {
    if (!above.has(source) || !below.has(target)) continue;
    const a = box(source), b = box(target);
    ids.add(b);
    if (a === b) continue;  // inside one closed group
    ids.add(a[0] === "n" && b[0] === "n" ? `e${source}_${target}_${position}` : `l${a}_${b}`);
  }
  return ids;
}
function highlight() {
  document.querySelectorAll(".hl, .wrt").forEach(e => e.classList.remove("hl", "wrt"));
  if (selected === null) return;
  const index = Number(selected.slice(1));  // a node's id is n and its index
  for (const id of onPaths(index)) document.getElementById(id)?.classList.add("hl");
  document.getElementById(box(index))?.classList.add("wrt");
}
function select(id) {
  const p = data.params[id];
  selected = id;
  highlight();
  document.getElementById("formula").innerHTML = p.formula;
  document.getElementById("contributions").innerHTML = p.contributions || "";
  document.getElementById("selected").textContent = data.names[id];
}
function hover(element, name) {  // the hover text: the name, as text
  let title = element.querySelector(":scope > title");
  if (!title) {
    title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    element.prepend(title);
  }
  title.textContent = name;
}
function wire() {  // names, and clicks on parameters and groups, in the drawing shown
  for (const node of graph.querySelectorAll("g.node")) {
    if (data.names[node.id] !== undefined) hover(node, data.names[node.id]);
    if (data.params[node.id]) {
      node.classList.add("param");
      node.addEventListener("click", () => select(node.id));
    } else if (groups[node.id]) {
      hover(node, groups[node.id][1]);
      node.classList.add("group");
      node.addEventListener("click", () => show(node.id));
    }
  }
  for (const frame of graph.querySelectorAll("g.cluster")) {
    const group = groups[frame.id.slice(1)];
    if (!group) continue;
    hover(frame, group[1]);
    if (group[2] !== null && group[0] !== null) {  // the view's own frame: closes it
      frame.classList.add("closes");
      frame.addEventListener("click", () => show(group[0]));
    }
  }
}
function viewOf(group) {  // the view that shows group open: its own, or an ancestor's
  while (groups[group][2] === null) group = groups[group][0];
  return group;
}
function show(group) {  // group's view: it, its ancestors and the groups it opens are open
  group = viewOf(group);
  if (groups[group][2] === 0) {  // left out of the page: say so, stay
    const command = data.command.replaceAll("{group}", group);
    document.getElementById("missing").textContent = ` “${groups[group][1]}”: ${command}`;
    return;
  }
  open = new Set([group, ...groups[group][2]]);
  const trail = document.getElementById("trail"), path = [];
  for (let g = group; g !== null; g = groups[g][0]) { open.add(g); path.unshift(g); }
  graph.replaceChildren(document.getElementById("v" + group).content.cloneNode(true));
  trail.replaceChildren();
  for (const g of path.filter(g => groups[g][2] !== null)) {  // the views above it
    const button = document.createElement("button");
    button.textContent = groups[g][1];
    button.disabled = g === group;
    button.addEventListener("click", () => show(g));
    trail.append(button);
  }
  wire();
  highlight();
}
document.getElementById("zoom")?.addEventListener("click", event => {
  const actual = graph.classList.toggle("actual");
  event.target.textContent = actual ? "fit" : "actual size";
});
if (data.view) show(data.view); else wire();
if (data.initial) select(data.initial);
"""

PAGE_FACTORS = 20_000
"""The most factors the page's formulas list, all parameters together (about 2 MB of page):
the selected parameter's formula first, then the others' from the fewest factors up, until
this budget (charged also with each formula's edges, which take time to find) is spent; each
parameter left over gets a line saying how many paths and factors it has instead."""


def _sha256(text: str) -> str:
    """A CSP source for inline ``text``: ``'sha256-…'`` of its UTF-8 bytes."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


CSP = (
    f"default-src 'none'; script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)}; "
    "base-uri 'none'; form-action 'none'"
)
"""The page's Content-Security-Policy: its own inline script and style, nothing else."""


def json_for_script(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&``
    as ``\\u`` escapes, so no text can close the element (``</script>``) or open a comment
    (``<!--``), and so are U+2028, U+2029 and lone surrogates (which UTF-8 cannot hold);
    other non-ASCII characters are written as they are (a page of formulas is full of ∂)."""
    text = json.dumps(data, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


_UNSAFE = re.compile("[\u2028\u2029\ud800-\udfff]")


def _unlisted(param: Hashable, flow: Flow) -> str:
    """The page's line for a parameter whose formula does not fit its budget (markup)."""
    paths, factors = flow.paths[param], flow.lengths[param]
    name = shlex.quote(visible(str(param)))  # a shell command: quoted, never run as written
    return html.escape(
        f"∂{symbol(flow.net.loss).text}/∂{symbol(param).text}: {count_text(paths)} "
        f"path{'s' if paths > 1 else ''} of {count_text(factors)} factors in all, too long "
        f"to list on this page; graphbp explain GRAPH --wrt {name} writes it out"
    )


def page(
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
    marks: Marks | None = None,
) -> str:
    """The HTML page for ``net`` (options as for ``render``); ``wrt`` is selected at first.

    A network of up to ``FULL_NODES`` nodes and ``FULL_WORK`` layout work is drawn whole
    (``scopes="auto"``, the default;
    always with ``"cluster"`` or ``"ignore"``). A larger one (or any, with
    ``scopes="collapse"``) is drawn by its outline: one view per group, laid out here, that
    the page shows when its box is clicked (graphbp.views); views that would take the page
    past ``PAGE_BYTES`` are left out, and the page says so and which command draws them.
    Views label a node with its name and op: ``values`` and ``grads`` show in the formula
    panel only. ``expanded`` (scope names or group ids) picks the view shown first: the
    deepest group named; by default ``wrt``'s, else the top one. Views are laid out by dot
    at bounded effort, or by the ``engine`` given.

    Raises:
        GraphvizError: ``dot`` is missing or failed; its ``source`` is the drawing's DOT source.
        GraphError: ``wrt`` is not a parameter with a path to the loss.
        InputError: an option is not one of its values, or ``expanded`` names no group.
    """
    check_options(max_paths, scopes, rankdir, engine)
    names = _expanded_names(expanded)
    colors = check_marks(net, marks)
    if wrt is not None:
        chain_rule(net, wrt)  # a bad wrt is an error here too, not a silently blank page
    flow = Flow(net)
    cost = explain(net, flow)
    data: dict[str, Any] = {
        "params": _formulas(net, flow, cost, wrt, values, grads, max_paths),
        "loss": net.index[net.loss],
        "edges": [[net.index[e.source], net.index[e.target], e.position] for e in flow.edges],
        "names": {node_id(net, n): symbol(n).text for n in net.order},
        "initial": node_id(net, wrt) if wrt is not None else None,
    }
    title = f"graphbp: the chain rule for the loss {symbol(net.loss).text}"
    if draws_outline(net, scopes):
        options = (rankdir, engine, names, colors, marks.caption if marks else ())
        return _views_page(net, flow, cost, wrt, options, data, title)
    whole: Scopes = "ignore" if scopes == "ignore" else "cluster"  # every node drawn: clickable
    dot = render(
        net,
        values=values,
        grads=grads,
        scopes=whole,
        rankdir=rankdir,
        engine=engine,
        marks=marks,
    )
    svg = run_dot(dot.source, "svg", dot.engine).decode()
    drawing = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the SVG inline
    head = f"<h1>{html.escape(title)}</h1>\n<p>{_HOW}</p>"
    return _document(title, head, drawing, "", json_for_script(data), cost)


def _views_page(
    net: Network,
    flow: Flow,
    cost: Cost,
    wrt: Hashable | None,
    options: tuple[str, str, tuple[str, ...] | None, Mapping[Edge, str], tuple[str, ...]],
    data: dict[str, Any],
    title: str,
) -> str:
    """The page of ``net`` drawn by its outline's views (``data``: the page's data so far;
    ``options``: rankdir, engine, the names ``expanded`` gave, and the marks' edge colours
    and caption lines).

    Only the views that fit in ``PAGE_BYTES`` beside the rest of the page are laid out
    (breadth-first: the deepest are left out first), so that the time is bounded too.
    """
    rankdir, engine, names, colors, caption = options
    outline = Outline(net)
    views = page_views(outline)
    opened = {view.group: view.opened[1:] for view in views}
    data["groups"] = {  # parent, name, the groups its view opens (None: it has no view)
        gid: [group.parent, group.name or "network", opened.get(gid)]
        for gid, group in outline.groups.items()
    }
    data["owner"] = [outline.group_of[node] for node in net.order]
    data["view"] = outline.group_of[wrt] if wrt is not None else outline.root
    if names is not None:  # the deepest group named, the last of equals
        _open(outline, names, False)  # (refuses a name of no group)
        named = [outline.find(name) or name for name in reversed(names)]
        data["view"] = max(named, key=lambda g: len(outline.ancestors(g)))
    how = html.escape(f"{len(net.order):,} {_HOW_VIEWS}")
    head = f"<h1>{html.escape(title)}</h1>\n<p>{how}</p>"
    if caption:  # a check's verdict: plain text, escaped
        head += f'\n<p id="marks">{"<br>".join(map(html.escape, mark_lines(caption)))}</p>'
    rest = len(_document(title, head, "", "", json_for_script(data), cost).encode()) + 1_000
    carries = frozenset(flow.edges)
    sources, room = [], PAGE_BYTES - rest
    for view in views:  # the views that may fit, by an estimate of their SVG's size
        sources.append(view_source(net, outline, carries, view, rankdir, colors))
        room -= SVG_PER_DOT * len(sources[-1])
        if room < 0 and len(sources) > 1:
            sources.pop()
            break
    svgs = lay_out(sources, "dot" if engine == "auto" else engine)
    laid = [(view.group, svg) for view, svg in zip(views, svgs, strict=False)]
    kept = _fit(laid, rest)  # (1,000 bytes above: the note, if any)
    for view in views[len(kept) :]:
        data["groups"][view.group][2] = 0  # left out: the script says so when it is opened
    while data["groups"][data["view"]][2] in (None, 0):  # the first view: one on the page
        data["view"] = data["groups"][data["view"]][0]
    if len(kept) < len(views):
        data["command"] = GROUP_COMMAND
        note = html.escape(_left_out(len(views) - len(kept)))
        head += f'\n<p id="left-out">{note}<span id="missing"></span></p>'
    head += '\n<nav><span id="trail"></span><button id="zoom">actual size</button></nav>'
    templates = "".join(f'<template id="v{gid}">{svg}</template>' for gid, svg in kept)
    return _document(title, head, "", templates, json_for_script(data), cost)


SVG_PER_DOT = 2
"""About how many bytes of a view's compacted SVG one byte of its DOT source makes (1.6 to
2.1 on chains, MLPs and random DAGs): views estimated not to fit are not laid out at all."""


_HOW = "Click a parameter to highlight every path from the loss down to it."
_HOW_VIEWS = (
    "nodes, drawn by their groups: click a box to open it, the open group's name or a "
    "name above the drawing to close it, and a parameter to highlight every path from the "
    "loss down to it, in whichever view is shown."
)
PAGE_BYTES = 10_000_000
"""The most bytes a page drawn by views may take: views beyond it (the last ones,
breadth-first: the deepest) are left out, and the page says so."""


def _fit(views: list[tuple[str, str]], rest: int) -> list[tuple[str, str]]:
    """The first of ``views`` (group id, SVG) whose templates fit in ``PAGE_BYTES`` with
    ``rest`` bytes of page around them (the first view, the root's, always)."""
    total = rest
    for k, (_, svg) in enumerate(views):
        total += len(svg.encode()) + len('<template id="vg0000"></template>')
        if total > PAGE_BYTES and k:
            return views[:k]
    return views


def _left_out(count: int) -> str:
    """The page's note on the views it leaves out (text)."""
    return (
        f"{count:,} group{'s are' if count > 1 else ' is'} not drawn on this page, which would "
        f"otherwise take more than {PAGE_BYTES / 1e6:g} MB: click one's box for the command "
        f"that draws it ({GROUP_COMMAND.format(group='GROUP')})."
    )


GROUP_COMMAND = "graphbp render GRAPH --scopes collapse --expand {group} -o {group}.svg"
"""The command the page names for a group it leaves out (``{group}``: its id, such as g12)."""


def _document(title: str, head: str, drawing: str, templates: str, blob: str, cost: Cost) -> str:
    """The page's markup around its parts (all escaped already but ``title``)."""
    views = ' class="views"' if templates or "trail" in head else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
{head}
</header>
<main>
<div id="graph"{views}>{drawing}</div>
<aside>
<h2>∂L/∂<span id="selected">·</span></h2>
<div id="formula">No parameter selected.</div>
<p id="contributions"></p>
<h2>What backprop saves</h2>
<pre id="cost">{html.escape(str(cost))}</pre>
</aside>
</main>{templates}
<script id="chain-data" type="application/json">{blob}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _formulas(
    net: Network,
    flow: Flow,
    cost: Cost,
    wrt: Hashable | None,
    values: Mapping[Hashable, Any] | None,
    grads: Mapping[Hashable, Any] | None,
    max_paths: int,
) -> dict[str, Any]:
    """Each parameter's entry in the page's data, by node id: its formula (markup) and,
    with ``values``, its paths' contributions (markup)."""
    params: dict[str, Any] = {}
    for param in cost.per_param:  # the page's order: topological
        params[node_id(net, param)] = {"formula": _unlisted(param, flow)}
    # Formulas within one page-wide budget, the cheapest first (wrt before all), so that a
    # deep network's page stays linear in its size: the sum of every parameter's path
    # lengths grows as depth², and so would the page if each formula were written out.
    budget = PAGE_FACTORS
    order = sorted(cost.per_param, key=lambda p: (p != wrt, cost.per_param[p][1]))
    for param in order:
        if budget <= 0:
            break
        rule = chain_rule(
            net, param, values, max_paths, flow, max_factors=min(budget, MAX_LISTED_FACTORS)
        )
        budget -= max(rule.listed_factors, len(rule.edges))  # the edges cost time to find
        if not rule.paths:
            continue
        lines = [f"path {k}: {summary(p.contribution)}" for k, p in enumerate(rule.paths, 1)]
        if rule.gradient is not None:
            lines.append(f"sum of the paths: {summary(rule.gradient)}")
        if grads is not None and param in grads:
            lines.append(f"backprop's ∂L/∂{symbol(param).html}: {summary(grads[param])}")
        entry = params[node_id(net, param)]
        entry["formula"] = rule.html
        if values is not None:
            entry["contributions"] = "<br>".join(lines)
    return params
