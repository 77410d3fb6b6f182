"""One self-contained HTML page: the network's SVG inline, and a click on any parameter
highlights its chain-rule paths and shows its formula. No external files, no network.

Nothing from the graph becomes markup or code: names reach the page as escaped text (in the
SVG Graphviz drew from escaped labels, in a JSON block whose ``<``, ``>`` and ``&`` are
``\\u`` escapes), ids are graphbp's own (``n3``, ``e0_3_1``), and a Content-Security-Policy
lets only the page's own script and style run (by their SHA-256), nothing remote at all."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import shlex
from collections.abc import Hashable, Mapping
from typing import Any

from graphbp.chain import (
    MAX_LISTED_FACTORS,
    MAX_PATHS,
    Flow,
    chain_rule,
    count_text,
    explain,
    symbol,
)
from graphbp.errors import visible
from graphbp.graph import Network
from graphbp.render import Marks, Scopes, check_options, node_id, render, run_dot, summary

_STYLE = """
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
"""

_SCRIPT = """
const data = JSON.parse(document.getElementById("chain-data").textContent);
const up = new Map(), down = new Map();  // node index -> [edge, ...] out of it, into it
for (const edge of data.edges) {
  const [source, target] = edge;
  if (!up.has(source)) up.set(source, []);
  if (!down.has(target)) down.set(target, []);
  up.get(source).push(edge);
  down.get(target).push(edge);
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
function onPaths(param) {  // ids of the nodes and edges on some path from param to the loss
  const above = reach(param, up, 1), below = reach(data.loss, down, 0), ids = ["n" + param];
  for (const [source, target, position] of data.edges) {
    if (above.has(source) && below.has(target)) {
      ids.push("n" + target, "e" + source + "_" + target + "_" + position);
    }
  }
  return ids;
}
function select(id) {
  document.querySelectorAll(".hl, .wrt").forEach(e => e.classList.remove("hl", "wrt"));
  const p = data.params[id];
  for (const part of onPaths(p.index)) document.getElementById(part).classList.add("hl");
  document.getElementById(id).classList.add("wrt");
  document.getElementById("formula").innerHTML = p.formula;
  document.getElementById("contributions").innerHTML = p.contributions;
  document.getElementById("selected").textContent = p.name;
}
for (const id of Object.keys(data.params)) {
  const node = document.getElementById(id);
  node.classList.add("param");
  node.addEventListener("click", () => select(id));
}
for (const [id, name] of Object.entries(data.names)) {
  const title = document.getElementById(id)?.querySelector(":scope > title");
  if (title) title.textContent = name;  // the hover text: the node's name, as text
}
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
    """``data`` as JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&``
    and every non-ASCII character (U+2028/2029 too) as ``\\u`` escapes, so no text can
    close the element (``</script>``) or open a comment (``<!--``)."""
    text = json.dumps(data, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
    scopes: Scopes = "cluster",
    rankdir: str = "LR",
    marks: Marks | None = None,
) -> str:
    """The HTML page for ``net`` (options as for ``render``); ``wrt`` is selected at first.

    Raises:
        GraphvizError: ``dot`` is missing or failed; its ``source`` is the drawing's DOT source.
        GraphError: ``wrt`` is not a parameter with a path to the loss.
    """
    check_options(max_paths, scopes, rankdir)
    if wrt is not None:
        chain_rule(net, wrt)  # a bad wrt is an error here too, not a silently blank page
    if scopes == "collapse":
        scopes = "cluster"  # clicks highlight nodes, so every node has to be drawn
    drawing = render(net, values=values, grads=grads, scopes=scopes, rankdir=rankdir, marks=marks)
    svg = run_dot(drawing.source, "svg").decode()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inline
    flow = Flow(net)
    cost = explain(net, flow)
    params: dict[str, Any] = {}
    for param in cost.per_param:  # the page's order: topological
        params[node_id(net, param)] = {
            "name": symbol(param).text,
            "index": net.index[param],
            "formula": _unlisted(param, flow),
            "contributions": "",
        }
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
        entry["contributions"] = "<br>".join(lines) if values is not None else ""
    data = {
        "params": params,
        "loss": net.index[net.loss],
        "edges": [[net.index[e.source], net.index[e.target], e.position] for e in flow.edges],
        "names": {node_id(net, n): symbol(n).text for n in net.order},
        "initial": node_id(net, wrt) if wrt is not None else None,
    }
    blob = json_for_script(data)
    title = f"graphbp: the chain rule for the loss {symbol(net.loss).text}"
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
<h1>{html.escape(title)}</h1>
<p>Click a parameter to highlight every path from the loss down to it.</p>
</header>
<main>
<div id="graph">{svg}</div>
<aside>
<h2>∂L/∂<span id="selected">·</span></h2>
<div id="formula">No parameter selected.</div>
<p id="contributions"></p>
<h2>What backprop saves</h2>
<pre id="cost">{html.escape(str(cost))}</pre>
</aside>
</main>
<script id="chain-data" type="application/json">{blob}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
