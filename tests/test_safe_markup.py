"""Nothing in a graph becomes code or markup: hostile node names, scopes and plugin texts
reach the DOT source, the SVG and the HTML page only as escaped text, and the page's
Content-Security-Policy lets only its own script run (checked in headless Chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from helpers import CHROMEDRIVER, CHROMIUM, Tags, graphbp, highlighted

import graphbp as gb
from graphbp.chain import Edge, symbol
from graphbp.errors import visible
from graphbp.render import DRAWN, edge_id, markup, node_id

DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed")
needs_browser = pytest.mark.skipif(
    DOT is None or CHROMIUM is None or CHROMEDRIVER is None,
    reason="no dot or no headless browser (apt-get install graphviz chromium chromium-driver)",
)

HOSTILE: list[str] = [
    '<a> URL="javascript:window.pwned=1" tooltip=<b>',  # the live link
    '"]; evil [label="x" URL="javascript:window.pwned=1',  # closes the attribute list
    "</script><script>window.pwned=1</script>",
    "<img src=x onerror=window.pwned=1>",
    "<svg onload=window.pwned=1>",
    "<!--",
    "--><script>window.pwned=1</script>",
    "]]><script>window.pwned=1</script>",
    "\\N",  # Graphviz escString: the node's name
    "x\\l",  # a left-justified line break
    "\\G\\E\\T\\H\\n\\r",
    "ends in a backslash\\",
    "\\\\",
    "{a|b}<port>",  # record-label syntax
    "&amp;",
    "&#60;b&#62; &lt;i&gt;",
    "'single' \"double\" `back`",
    "javascript:window.pwned=1",
    "data:text/html,<script>window.pwned=1</script>",
    "<" * 400 + ">" * 399,  # long, and unbalanced
    "שלום עולם",  # right-to-left script, legal
    "北京 🙂 e\u0301",  # non-BMP, combining accent
    "x" * 990,  # long (names are at most 1000 characters; the op gets " σ" added)
    '"' * 998,  # the longest escapes: 6 bytes a character, three times in one label
    "&" * 998,
    "\\" * 998,  # each written twice in the DOT source
]


def shown(name: Hashable) -> list[str]:
    """The texts a drawing must show of ``name``: all of it, or beyond ``DRAWN`` characters
    its beginning and end (Graphviz reads at most 16,384 bytes of one label)."""
    text = symbol(name).text
    return [text] if len(text) <= DRAWN else [f"{text[: DRAWN - 25]}…", text[-20:]]


def network(name: str) -> gb.Network:
    """A parameter named ``name`` through a sigmoid named ``name + " σ"`` to L = sum,
    both in the scope ``name``."""
    g = nx.DiGraph()
    g.add_node(name, op="param", shape=(3,), init=1.0, scope=name)
    g.add_node(f"{name} σ", op="sigmoid", scope=name)
    g.add_node("L", op="sum")
    g.add_edge(name, f"{name} σ")
    g.add_edge(f"{name} σ", "L")
    return gb.Network(g, loss="L")


def combined() -> gb.Network:
    """Every hostile name as a parameter, each added into a chain of add nodes named
    ``name + " +"``, ending in L = sum; the first three names are scopes too."""
    g = nx.DiGraph()
    short = [name for name in HOSTILE if len(name) < 100]  # a legible drawing to click in
    prev: Hashable = short[0]
    g.add_node(prev, op="param", shape=(3,), init=1.0)
    for k, name in enumerate(short[1:], 1):
        g.add_node(name, op="param", shape=(3,), init=1.0, scope=HOSTILE[k % 3])
        g.add_node(f"{name} +", op="add", scope=HOSTILE[k % 3])
        g.add_edge(prev, f"{name} +", arg=0)
        g.add_edge(name, f"{name} +", arg=1)
        prev = f"{name} +"
    g.add_node("L", op="sum")
    g.add_edge(prev, "L")
    return gb.Network(g, loss="L")


def operand_edges(net: gb.Network) -> list[Edge]:
    return [Edge(s, n, k) for n in net.order for k, s in enumerate(net.operands[n])]


SVG_NS = "{http://www.w3.org/2000/svg}"
OUR_ID = re.compile(
    r"(graph0|node\d+|edge\d+|clust\d+|n\d+|e\d+_\d+_\d+|scope\d+|g\d+|cluster_g\d+|l[gn]\d+_[gn]\d+)"
)
SVG_TAGS = {"svg", "g", "title", "text", "polygon", "path", "ellipse", "polyline"}


def check_svg(svg: str, net: gb.Network, names: list[str], *, collapsed: bool = False) -> None:
    """The SVG is XML of drawing elements only, with graphbp's ids, no links, no handlers,
    exactly the network's nodes and edges, and every name in it as literal text."""
    root = ET.fromstring(svg)
    for element in root.iter():
        tag = element.tag.removeprefix(SVG_NS)
        assert tag in SVG_TAGS, f"element <{tag}> in the SVG"
        for key, value in element.attrib.items():
            local = key.rsplit("}", 1)[-1].lower()
            assert not local.startswith("on"), f"handler {key}={value!r}"
            assert local not in ("href", "src", "style"), f"{key}={value!r}"
            assert not re.match(r"\s*(javascript|data|vbscript):", value, re.I), value
            if local == "id":
                assert OUR_ID.fullmatch(value), f"id {value!r} is not graphbp's own"
    groups = [e for e in root.iter(f"{SVG_NS}g")]
    node_ids = {e.get("id") for e in groups if e.get("class") == "node"}
    if not collapsed:  # no node or edge made up by a name ('"]; evil [')
        titles = {
            "".join(e.find(f"{SVG_NS}title").itertext())  # type: ignore[union-attr]
            for e in groups
            if e.get("class") == "node"
        }
        assert titles == {node_id(net, n) for n in net.order}
        assert len(node_ids) == len(net.order)
        edges = [e for e in groups if e.get("class") == "edge"]
        assert len(edges) == len(operand_edges(net))
    text = "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG_NS}text"))
    for name in names:
        for part in shown(name):
            assert part in text, f"{name!r} is not drawn literally"


def check_page(page: str, net: gb.Network, names: list[str]) -> None:
    """The page: its CSP first in <head>, two scripts (its JSON data and its own code), no
    handler, link or remote source anywhere, every name as text, the data intact."""
    parser = Tags()
    parser.feed(page)
    parser.close()
    tags = [t for t, _ in parser.tags]
    assert tags[:4] == ["html", "head", "meta", "meta"]
    csp = parser.tags[3][1]
    assert csp["http-equiv"] == "Content-Security-Policy"
    policy = dict(p.strip().split(" ", 1) for p in (csp["content"] or "").split(";"))
    assert policy["default-src"] == "'none'"
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", policy["script-src"])
    assert "unsafe" not in csp["content"] and "http" not in (csp["content"] or "")
    scripts = [a for t, a in parser.tags if t == "script"]
    assert scripts == [{"id": "chain-data", "type": "application/json"}, {}]
    for tag, attrs in parser.tags:
        assert tag in SVG_TAGS | {
            "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "main",
            "div", "aside", "h2", "span", "pre", "script",
        }, f"<{tag}> in the page"  # fmt: skip
        for key, value in attrs.items():
            assert not key.startswith("on") and key not in ("href", "xlink:href", "src"), key
            assert not re.match(r"\s*(javascript|data):", value or "", re.I), value
    data = json.loads(parser.scripts[0])
    assert set(data["names"].values()) == {symbol(n).text for n in net.order}
    assert "<" not in parser.scripts[0] and "\u2028" not in parser.scripts[0]
    text = "".join(parser.text)
    for name in names:
        for part in shown(name):
            assert part in text


# ------------------------------------------------------------------------ the files


@needs_dot
@pytest.mark.parametrize("name", HOSTILE, ids=lambda s: repr(s[:24]))
def test_a_hostile_name_is_drawn_as_text_in_dot_svg_and_html(name: str, tmp_path: Path) -> None:
    net = network(name)
    names = [name, f"{name} σ"]
    dot_file = gb.write_diagram(net, tmp_path / "g.dot", wrt=name)
    svg = subprocess.run(
        [DOT or "dot", "-Tsvg", str(dot_file)], capture_output=True, text=True, check=True
    ).stdout  # the .dot file parses: dot draws it, and draws exactly the network
    check_svg(svg[svg.index("<svg") :], net, names)
    svg_file = gb.write_diagram(net, tmp_path / "g.svg", wrt=name, scopes="collapse")
    text = svg_file.read_text()
    check_svg(text[text.index("<svg") :], net, [], collapsed=True)
    root = ET.fromstring(text[text.index("<svg") :])
    drawn = "".join("".join(t.itertext()) for t in root.iter(f"{SVG_NS}text"))
    assert all(part in drawn for part in shown(name))  # the scope's box shows its name
    page = gb.write_diagram(net, tmp_path / "g.html", wrt=name).read_text()
    check_page(page, net, names)


@needs_dot
def test_every_hostile_name_at_once_and_in_scopes(tmp_path: Path) -> None:
    net = combined()
    names = [n for n in net.order if n != "L"]
    text = gb.write_diagram(net, tmp_path / "all.svg", wrt=HOSTILE[0]).read_text()
    check_svg(text[text.index("<svg") :], net, names)
    check_page(gb.write_diagram(net, tmp_path / "all.html").read_text(), net, names)


@pytest.mark.parametrize("name", HOSTILE, ids=lambda s: repr(s[:24]))
def test_the_dot_source_holds_names_only_inside_escaped_html_labels(name: str) -> None:
    """Without running dot: the name's characters that DOT or Graphviz's HTML would read
    (``< > & " \\``) never appear raw, and no attribute but graphbp's own is set."""
    source = gb.render(network(name), wrt=name, scopes="cluster").source
    if len(name) <= DRAWN:
        assert html.escape(visible(name)).replace("\\", "\\\\") in source
    if set('<>"') & set(name):  # (an escaped &amp; still holds the text '&amp;')
        assert name not in source
    keys = set(re.findall(r"[\s\[]([A-Za-z_]+)=", without_html_labels(source)))
    assert keys <= {
        "fontname", "nodesep", "rankdir", "fontsize", "margin", "color", "style", "label",
        "shape", "fillcolor", "peripheries", "penwidth", "id", "fontcolor", "labelloc",
        "labeljust",
    }, keys  # fmt: skip


def without_html_labels(source: str) -> str:
    """DOT source with every ``<...>`` (an HTML label, brackets balanced) cut out."""
    out, depth = [], 0
    for c in source:
        if c == "<":
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)


def test_plugin_text_and_invisible_characters_are_escaped() -> None:
    """A plugin's label or local-derivative text is user text too; characters that would
    reorder or hide text (U+202E, ESC, NUL, a lone surrogate) show as escapes."""
    assert markup('<img src=x onerror="p()"> & \u202e \x1b \x00 \udc80 xᵀ') == (
        "&lt;img src=x onerror=&quot;p()&quot;&gt; &amp; \\u202e \\x1b \\x00 \\udc80 x<SUP>T</SUP>"
    )
    assert symbol("a\u202eb").html == "a\\u202eb" and symbol("<b>").html == "&lt;b&gt;"


@needs_dot
def test_a_hostile_plugin_label_is_drawn_as_text(register: Any, tmp_path: Path) -> None:
    class Evil(gb.Op):
        name = "evil_label"
        label = '<a href="javascript:window.pwned=1">σ</a> \\N'
        local_grads = ("</script><script>window.pwned=1</script>",)

        def forward(self, xp: Any, z: Any) -> Any:
            return z * 2

        def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> tuple[Any]:
            return (g * 2,)

    register(Evil())
    g = nx.DiGraph()
    g.add_node("p", op="param", shape=(3,), init=1.0)
    g.add_node("e", op="evil_label")
    g.add_node("L", op="sum")
    g.add_edges_from([("p", "e"), ("e", "L")])
    net = gb.Network(g, loss="L")
    text = gb.write_diagram(net, tmp_path / "e.svg", wrt="p").read_text()
    check_svg(text[text.index("<svg") :], net, [Evil.label, *Evil.local_grads])
    check_page(gb.write_diagram(net, tmp_path / "e.html").read_text(), net, [])


@needs_dot
def test_the_command_line_draws_a_hostile_graph_file(tmp_path: Path) -> None:
    name = HOSTILE[0]
    network(name).to_json(tmp_path / "evil.json")
    done = graphbp("render", "evil.json", "--wrt", name, "-o", "evil.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    check_page((tmp_path / "evil.html").read_text(), network(name), [name])


def test_drawing_options_reach_dot_only_from_their_few_values() -> None:
    net = network("p")
    for options in ({"rankdir": 'LR" URL="javascript:x'}, {"scopes": "<b>"}):
        with pytest.raises(gb.InputError, match="choose one of"):
            gb.render(net, **options)


# ------------------------------------------------------------------------ the browser


@needs_browser
def test_clicking_and_hovering_hostile_nodes_runs_nothing_and_navigates_nowhere(
    browser: Any, tmp_path: Path, nx_paths: Any
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    net = combined()
    page = gb.write_diagram(net, tmp_path / "hostile.html")
    browser.get(page.as_uri())
    url = browser.current_url
    for node in net.order:
        element = browser.find_element(By.ID, node_id(net, node))
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        ActionChains(browser).move_to_element(element).perform()
        element.click()
        assert browser.current_url == url, f"clicking {node!r} navigated"
        assert browser.execute_script("return window.pwned") is None
        hover = browser.execute_script(
            "return arguments[0].querySelector(':scope > title').textContent", element
        )
        assert hover == symbol(node).text  # the hover text is the name, as text
        if net.kind[node] == "param":  # the page's own script still works
            paths = nx_paths(net, node)
            expected = {edge_id(net, Edge(a, b, k)) for p in paths for a, b, k in p}
            expected |= {node_id(net, n) for p in paths for e in p for n in e[:2]}
            assert highlighted(browser) == expected
            assert browser.find_element(By.ID, "selected").text == symbol(node).text.strip()
            assert symbol(node).text.strip() in browser.find_element(By.ID, "formula").text
    assert browser.execute_script("return document.querySelectorAll('script').length") == 2
    assert browser.get_log("browser") == []  # no script error, no policy violation


@needs_browser
def test_the_policy_is_enforced_a_script_put_into_the_page_does_not_run(
    browser: Any, tmp_path: Path
) -> None:
    """Scripts injected into the saved page by hand are blocked and reported; the same
    page without its policy runs them (so this test can fail)."""
    from selenium.webdriver.common.by import By

    net = network("w")
    text = gb.write_diagram(net, tmp_path / "p.html", wrt="w").read_text()
    evil = (
        "<script>window.pwned = 1</script>"
        '<img src="x.png" onerror="window.pwned = 2">'
        '<svg onload="window.pwned = 3"></svg>'
    )
    injected = tmp_path / "injected.html"
    injected.write_text(text.replace("</body>", f"{evil}</body>"))
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(injected.as_uri())
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_element(By.ID, "formula").text.startswith("∂L/∂w = ")  # ours ran
    violations = [
        e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]
    ]
    assert len(violations) >= 3, violations  # the script, the image, the handler
    bare = tmp_path / "no-policy.html"
    bare.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
                    .replace("</body>", f"{evil}</body>"))  # fmt: skip
    browser.get(bare.as_uri())
    assert browser.execute_script("return window.pwned") in (1, 2, 3)


@needs_dot
@pytest.mark.parametrize("name", ['"' * 998, "&" * 998, "\\" * 998], ids=["quotes", "amps", "bs"])
def test_the_longest_escaped_names_with_values_and_gradients_still_draw(
    name: str, tmp_path: Path
) -> None:
    """A node label shows its name three times (name, ∂L/∂name, reuse): still one label
    Graphviz can read, for the names whose escapes are longest."""
    net = network(name)
    prog = net.compile()
    params = prog.init(0)
    values = prog.forward(params, {}, net.order)
    _, grads = prog.value_and_grad(params, {})
    options = {"wrt": name, "values": values, "grads": grads}
    text = gb.write_diagram(net, tmp_path / "long.svg", **options).read_text()
    check_svg(text[text.index("<svg") :], net, [name, f"{name} σ"])
    check_page(gb.write_diagram(net, tmp_path / "long.html", **options).read_text(), net, [name])


INVISIBLE = ["a\u202eb", "tab\there", "nul\x00", "esc\x1b[31mred", "lone \udc80", "x\ny", "\u2028"]


@needs_dot
@pytest.mark.parametrize("name", INVISIBLE, ids=repr)
def test_an_invisible_character_is_rejected_or_drawn_as_its_escape(
    name: str, tmp_path: Path
) -> None:
    """Control and format characters (the name rule rejects them at Network(); if a graph
    gets one past it, it is drawn as its escape, never raw)."""
    try:
        net = network(name)
    except gb.GraphError as exc:
        assert "name" in str(exc)
        return
    assert visible(name) != name
    text = gb.write_diagram(net, tmp_path / "i.svg", wrt=name).read_text()
    check_svg(text[text.index("<svg") :], net, [name])
    page = gb.write_diagram(net, tmp_path / "i.html", wrt=name).read_text()
    check_page(page, net, [name])
    assert name not in text and name not in page
    for c in set(name) - {"\n"}:  # (the files have line breaks of their own)
        if not c.isprintable():
            assert c not in text and c not in page


def _int_named(name: int) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node(name, op="param", shape=(3,), init=1.0)
    g.add_node("s", op="sigmoid")
    g.add_node("L", op="sum")
    g.add_edges_from([(name, "s"), ("s", "L")])
    return g


@needs_dot
@pytest.mark.parametrize("name", [0, -1, 2**63 - 1, -(2**63)])
def test_integer_names_are_drawn(name: int, tmp_path: Path) -> None:
    net = gb.Network(_int_named(name), loss="L")
    text = gb.write_diagram(net, tmp_path / "i.svg", wrt=name).read_text()
    check_svg(text[text.index("<svg") :], net, [name])
    check_page(gb.write_diagram(net, tmp_path / "i.html", wrt=name).read_text(), net, [name])
    assert symbol(name).text == repr(name)


@pytest.mark.parametrize("name", [2**63, 2**64, 10**5000], ids=["2**63", "2**64", "10**5000"])
def test_integer_names_beyond_64_bits_are_refused_by_the_name_rule(name: int) -> None:
    with pytest.raises(gb.GraphError, match="an int .*of at most 64 bits"):
        gb.Network(_int_named(name), loss="L")
