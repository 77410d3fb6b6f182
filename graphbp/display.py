"""How Jupyter shows a network: its diagram as SVG, or, where Graphviz's dot is missing or
the graph is too large to lay out quickly, a short note saying how to draw it.

Importing this module sets ``Network._display`` (graphbp's ``__init__`` does), which
``Network._repr_mimebundle_`` calls: this module draws with graphbp.render, which imports
graphbp.graph, so graphbp.graph cannot import it.
"""

from __future__ import annotations

import string

from graphbp.chain import counted
from graphbp.errors import GraphbpError, GraphvizError, show, visible
from graphbp.graph import Network
from graphbp.render import render, run_dot

DISPLAY_NODES = 250
"""Networks with more nodes are not laid out inline (a 1,000-node one takes seconds)."""
DISPLAY_EDGES = 500
"""Nor networks with more edges."""


def network_bundle(net: Network) -> dict[str, str]:
    """Jupyter's outputs for ``net``: ``image/svg+xml`` (its diagram, ``gb.render(net)``)
    or a ``text/markdown`` note saying why it is not drawn and how to draw it; always
    ``text/plain`` (its repr). Never raises for a validated network, never waits on a
    layout larger than ``DISPLAY_NODES``/``DISPLAY_EDGES``."""
    plain = repr(net)
    nodes, edges = len(net.order), net.graph.number_of_edges()
    if nodes > DISPLAY_NODES or edges > DISPLAY_EDGES:
        reason = (
            f"too large to lay out here (more than {DISPLAY_NODES:,} nodes or "
            f"{DISPLAY_EDGES:,} edges; Graphviz takes seconds)"
        )
        fix = (
            'draw it into a file, with each scope as one node: `gb.write_diagram(net, "net.svg", '
            'scopes="collapse")`, or show `gb.render(net, scopes="collapse")`'
        )
    else:
        try:
            return {
                "text/plain": plain,
                "image/svg+xml": run_dot(render(net).source, "svg").decode(),
            }
        except (GraphbpError, OSError) as exc:  # no dot, dot failed, a broken plugin
            reason = f"not drawn: {markdown_text(str(exc))}"
            drawn = isinstance(exc, GraphvizError)  # else render failed: its message says why
            fix = "`gb.render(net).source` is its Graphviz source" if drawn else ""
    summary = (
        f"**graphbp network**: {counted(nodes, 'node')}, {counted(edges, 'edge')}, "
        f"{counted(len(net.params), 'parameter')}, loss {markdown_text(show(net.loss))}; "
        f"{reason}{'; ' + fix if fix else ''}."
    )
    return {"text/plain": plain, "text/markdown": summary}


def markdown_text(text: str) -> str:
    """``text`` as Markdown that shows exactly that text: every ASCII punctuation character
    (``*_`[]<>&$|\\``, ...) as a numeric character reference, which Markdown, HTML and
    Jupyter's math (``$``) all leave as text, and non-printables as escapes (``visible``).
    Not for code spans, where references are not decoded."""
    return "".join(f"&#{ord(c)};" if c in string.punctuation else c for c in visible(text))


Network._display = network_bundle
