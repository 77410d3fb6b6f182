"""The HTML page of a network too large to draw whole, on the Python side: its views
(one per group of the outline, small groups opened with their parent) draw every node
once, are consistent with the outline's boxes, grow linearly with the network, fit the
page's byte budget or say what they leave out, and hold hostile scope names as text."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pytest
from graphs import long_chain, scoped_blocks
from helpers import Tags, graphbp

import graphbp as gb
from graphbp import page as page_module
from graphbp.chain import Edge
from graphbp.outline import Outline
from graphbp.render import FULL_NODES, MARK_COLORS, Marks, edge_id, node_id
from graphbp.views import SMALL, VIEW_BOXES, PageView, page_views

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot executable is not installed (apt-get install graphviz)",
)


def drawn_inside(outline: Outline, view: PageView) -> set[Hashable]:
    return {item for item in view.inside if not outline.is_group(item)}


def size(views: list[PageView]) -> int:
    return sum(len(v.inside) + len(v.outside) + len(v.edges) + len(v.links) for v in views)


@pytest.mark.parametrize(
    "net",
    [
        scoped_blocks(["enc", "dec"]),
        scoped_blocks([f"block{k}" for k in range(30)]),
        long_chain(3_000),
    ],
    ids=["two blocks", "30 identical blocks (a fold)", "a chain (ranges)"],
)
def test_every_group_has_a_view_or_opens_in_one_and_every_node_is_drawn_once(
    net: gb.Network,
) -> None:
    outline = Outline(net)
    views = page_views(outline)
    assert views[0].group == outline.root and views[0].path == ()
    opened = [g for v in views for g in v.opened]
    assert sorted(opened) == sorted(outline.groups)  # each group opens in exactly one view
    for view in views:
        assert view.path == outline.ancestors(view.group)
        inside = len(outline.groups[view.group].children)
        assert len(view.inside) <= max(VIEW_BOXES, inside)
        for sub in view.opened[1:]:  # opened with it: small ones only, below it
            assert len(outline.groups[sub].children) <= SMALL
            assert view.group in outline.ancestors(sub)
        closed = [i for i in view.inside if outline.is_group(i)]
        assert {v.group for v in views} >= set(closed)  # a closed box opens its own view
    counts: dict[Hashable, int] = {}
    for view in views:
        for node in drawn_inside(outline, view):
            counts[node] = counts.get(node, 0) + 1
    assert counts == dict.fromkeys(net.order, 1)


@pytest.mark.parametrize(
    "net", [scoped_blocks(["enc", "dec", "head"]), long_chain(500)], ids=["blocks", "chain"]
)
def test_each_view_draws_the_outline_boxes_of_every_edge_into_or_out_of_its_group(
    net: gb.Network,
) -> None:
    """Against Outline.box: with the view's groups open, an edge touching the group is
    drawn between the boxes of its two ends, as an edge between two nodes or a link."""
    outline = Outline(net)
    edges = [Edge(s, n, k) for n in net.order for k, s in enumerate(net.operands[n])]
    for view in page_views(outline):
        expanded = frozenset((*view.path, *view.opened))
        members = set(outline.groups[view.group].members)
        expected_edges, expected_links = set(), {}
        for edge in edges:
            if edge.source not in members and edge.target not in members:
                continue
            a, b = outline.box(edge.source, expanded), outline.box(edge.target, expanded)
            if a == b:
                continue
            if outline.is_group(a) or outline.is_group(b):
                expected_links.setdefault((a, b), set()).add(edge)
            else:
                expected_edges.add(edge)
        assert set(view.edges) == expected_edges
        assert {pair: set(es) for pair, es in view.links.items()} == expected_links
        ends = {item for pair in view.links for item in pair} | {
            n for e in view.edges for n in e[:2]
        }
        assert ends <= set(view.inside) | set(view.outside)
        assert not set(view.inside) & set(view.outside)


def test_the_views_grow_linearly_with_the_network() -> None:
    small, large = (size(page_views(Outline(long_chain(n)))) for n in (2_000, 4_000))
    assert large <= 2.2 * small, (small, large)
    small, large = (
        size(page_views(Outline(scoped_blocks([f"b{k}" for k in range(n)])))) for n in (100, 200)
    )
    assert large <= 2.2 * small, (small, large)


PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "nav", "main",
    "div", "aside", "h2", "span", "pre", "script", "template", "button",
    "svg", "g", "text", "polygon", "path", "ellipse", "polyline",
}  # fmt: skip
OUR_ID = re.compile(r"(n\d+|e\d+_\d+_\d+|g\d+|cg\d+|l[ng]\d+_[ng]\d+|vg\d+|left-out|missing)")


def parse(page: str) -> tuple[Tags, dict[str, Any]]:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser, json.loads(parser.scripts[0])


HOSTILE_SCOPES = [
    "</template><script>window.pwned=1</script>",
    '"]; evil [label="x" URL="javascript:window.pwned=1',
    "<!--",
    "\\N \\G &amp; &#60;b&#62;",
    "<img src=x onerror=window.pwned=1>",
]


@needs_dot
def test_hostile_scope_names_are_text_in_every_view_and_in_the_data(tmp_path: Path) -> None:
    net = scoped_blocks(HOSTILE_SCOPES)
    page = page_module.page(net, "shared", scopes="collapse")
    parser, data = parse(page)
    for tag, attrs in parser.tags:
        assert tag in PAGE_TAGS, f"<{tag}> in the page"
        for key, value in attrs.items():
            assert not key.startswith("on") and key not in ("href", "xlink:href", "src"), key
            assert not re.match(r"\s*(javascript|data):", value or "", re.I), value
            if key == "id" and tag not in ("script", "div", "span", "p", "nav", "pre", "button"):
                assert OUR_ID.fullmatch(value or ""), value
    assert [a for t, a in parser.tags if t == "script"] == [
        {"id": "chain-data", "type": "application/json"},
        {},
    ]
    assert "<" not in parser.scripts[0] and "\u2028" not in parser.scripts[0]
    outline = Outline(net)
    names = {g.name for g in outline.groups.values() if g.kind == "scope"}
    assert {name for _, name, _ in data["groups"].values()} >= names
    text = "".join(parser.text)
    for scope in HOSTILE_SCOPES:  # (a "/" nests scopes: each part is a scope's last name)
        for part in scope.split("/"):
            assert part in text, f"{part!r} is not drawn as text"
    templates = re.findall(r'<template id="v(g\d+)">', page)
    assert templates == [v.group for v in page_views(outline)]


@needs_dot
def test_the_page_of_views_grows_linearly_and_stays_within_its_budget() -> None:
    sizes = {
        n: len(page_module.page(long_chain(n), scopes="collapse").encode()) for n in (500, 1000)
    }
    assert sizes[1000] <= 2.2 * sizes[500], sizes
    assert "left-out" not in page_module.page(long_chain(500), scopes="collapse")


@needs_dot
def test_views_past_the_byte_budget_are_left_out_and_the_page_says_which_command_draws_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    net = long_chain(1_000)
    whole = page_module.page(net, scopes="collapse")
    monkeypatch.setattr(page_module, "PAGE_BYTES", len(whole.encode()) * 2 // 3)
    page = page_module.page(net, scopes="collapse")
    assert len(page.encode()) <= page_module.PAGE_BYTES
    parser, data = parse(page)
    kept = re.findall(r'<template id="v(g\d+)">', page)
    left = [g for g, (_, _, opened) in data["groups"].items() if opened == 0]
    views = [v.group for v in page_views(Outline(net))]
    assert kept == views[: len(kept)] and left == views[len(kept) :] and left
    note = "".join(parser.text)
    assert f"{len(left):,} groups are not drawn on this page" in note
    assert page_module.GROUP_COMMAND.format(group="GROUP") in note
    assert data["command"] == page_module.GROUP_COMMAND
    gid = left[-1]  # the command the page names draws that group's nodes
    net.to_json(tmp_path / "GRAPH")
    command = shlex.split(page_module.GROUP_COMMAND.format(group=gid))
    done = graphbp(*command[1:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    svg = (tmp_path / f"{gid}.svg").read_text()
    members = Outline(net).groups[gid].members
    assert all(f'id="{node_id(net, n)}"' in svg for n in members)


@needs_dot
def test_by_default_a_network_beyond_full_nodes_is_drawn_by_views_and_a_smaller_one_whole(
    tmp_path: Path,
) -> None:
    small, large = long_chain(50), long_chain(FULL_NODES)
    assert len(small.order) <= FULL_NODES < len(large.order)
    whole = gb.write_diagram(small, tmp_path / "small.html").read_text()
    assert "<template" not in whole and 'class="views"' not in whole
    assert whole.count("<svg") == 1 and "n0" in whole
    views = gb.write_diagram(large, tmp_path / "large.html").read_text()
    assert views.count("<template") == len(page_views(Outline(large))) > 1
    always = page_module.page(small, scopes="collapse")  # views whatever the size
    assert always.count("<template") == len(page_views(Outline(small)))


@needs_dot
def test_expanded_picks_the_view_shown_first_and_a_name_of_no_group_is_refused() -> None:
    net = scoped_blocks(["enc", "mid", "dec"])
    outline = Outline(net)
    _, data = parse(page_module.page(net, scopes="collapse", expanded=["enc", "dec"]))
    assert data["view"] == outline.find("dec")  # the deepest named (the last of equals)
    _, data = parse(page_module.page(net, "W0", scopes="collapse"))
    assert data["view"] == outline.find("enc")  # wrt's (its inner scope opens with enc)
    with pytest.raises(gb.InputError, match="neither a scope nor a group id"):
        page_module.page(net, scopes="collapse", expanded=["nope"])


@needs_dot
def test_a_checks_marks_colour_the_views_edges_and_links_and_its_lines_head_the_page() -> None:
    net = scoped_blocks([f"block{k}" for k in range(30)])
    outline = Outline(net)
    wrong = next(  # an edge inside one block, drawn as an edge in that block's view
        Edge(s, t, p)
        for t in net.order
        for p, s in enumerate(net.operands[t])
        if outline.group_of[s] == outline.group_of[t] != outline.root
    )
    colors = dict.fromkeys(
        (Edge(s, t, p) for t in net.order for p, s in enumerate(net.operands[t])), "agree"
    )
    colors[wrong] = "wrong"
    text = page_module.page(net, marks=Marks(colors, ("wrong vjp: <b>node</b>",)))
    red = MARK_COLORS["wrong"]
    edge = re.search(
        rf'<g id="{re.escape(edge_id(net, wrong))}" class="edge">(.*?)</g>', text, re.S
    )
    assert edge is not None and f'stroke="{red}"' in edge[1]  # the view that draws it
    reds = re.findall(
        rf'<g id="(l[^"]*|e[^"]*)" class="edge">(?:(?!</g>).)*stroke="{red}"', text, re.S
    )
    assert reds and all(r == edge_id(net, wrong) or r.startswith("l") for r in reds)
    assert "wrong vjp: &lt;b&gt;node&lt;/b&gt;" in text and "<b>node</b>" not in text
