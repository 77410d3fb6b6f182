"""The diagrams' text as a browser draws it (Debian's chromium, headless): in every label no two
text spans overlap, and subscripts and superscripts are smaller than the text they follow."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from graphs import example_inputs
from helpers import CHROMEDRIVER, CHROMIUM

import graphbp as gb
from graphbp.render import SCRIPT, fit_text, scripts_smaller

README_FIGURE = Path(__file__).resolve().parent.parent / "docs" / "seed_w1.svg"

needs_browser = pytest.mark.skipif(
    shutil.which("dot") is None or CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Graphviz's dot and a headless browser: "
    "apt-get install graphviz chromium chromium-driver",
)

SPANS = r"""
const labels = [...document.querySelectorAll('g.node, g.edge, g.cluster')];
const caption = document.querySelector('g.graph');
const spans = (texts) => texts.map((t) => {
    const n = t.getNumberOfChars();
    const boxes = [...Array(n).keys()].map((i) => t.getExtentOfChar(i));
    return {
        text: t.textContent,
        left: Math.min(...boxes.map((b) => b.x)),
        right: Math.max(...boxes.map((b) => b.x + b.width)),
        top: Math.min(...boxes.map((b) => b.y)),
        bottom: Math.max(...boxes.map((b) => b.y + b.height)),
        // the first character that is not a space: a browser that drops a leading space
        // numbers the characters it draws, so count back from the end of the text
        ink: boxes[Math.max(0, n - t.textContent.trimStart().length)].x,
        size: parseFloat(getComputedStyle(t).fontSize),
        script: t.getAttribute('baseline-shift'),
    };
});
return [
    ...labels.map((g) => [g.id, spans([...g.querySelectorAll('text')])]),
    ['caption', spans([...caption.querySelectorAll(':scope > text')])],
];
"""
"""Every label's text spans, each with its box (the union of its characters' cells, as the
browser lays them out: advance width by the font's ascent and descent), font size and
baseline shift, and where its first character that is not a space begins, in document
order."""

TOUCH = 0.01
"""Boxes may share an edge; an overlap of more than this (in SVG units) fails."""


def _labels(browser: Any, svg: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    browser.get(svg.as_uri())
    labels = browser.execute_script(SPANS)
    assert sum(len(spans) for _, spans in labels) > 20, svg  # the drawing was loaded
    return [(name, spans) for name, spans in labels]


def _overlaps(labels: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    found = []
    for name, spans in labels:
        for before, span in itertools.pairwise(spans):
            if span["text"].startswith(" ") and before["bottom"] > span["top"]:  # its line
                gap = span["ink"] - before["right"]  # a space between them, as dot measured
                if gap < 0.2 * span["size"]:
                    found.append(
                        f"{name}: no space between {before['text']!r} and {span['text']!r}"
                    )
        for i, a in enumerate(spans):
            for b in spans[i + 1 :]:
                wide = min(a["right"], b["right"]) - max(a["left"], b["left"])
                high = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
                if wide > TOUCH and high > TOUCH:
                    found.append(f"{name}: {a['text']!r} and {b['text']!r} ({wide:.1f}×{high:.1f})")
    return found


def _drawings(tmp_path: Path) -> list[Path]:
    """The README's figure and fresh drawings: with numbers, scopes as clusters and collapsed."""
    graph = gb.seed_network(3, 4, 1)
    for k in (1, 2):
        for node in (f"W{k}", f"b{k}", f"h{k}"):
            graph.nodes[node]["scope"] = f"layer {k}"
    net = gb.Network(graph)
    prog = net.compile()
    inputs = example_inputs(net, np.random.default_rng(0), batch=6)
    params = prog.init(0)
    values = prog.forward(params, inputs, net.order)
    grads = prog.value_and_grad(params, inputs)[1]
    drawn = [
        gb.write_diagram(net, tmp_path / "numbers.svg", "W1", values=values, grads=grads),
        gb.write_diagram(net, tmp_path / "collapsed.svg", "W2", scopes="collapse"),
        gb.write_diagram(gb.Network(gb.diamond_chain(3)), tmp_path / "diamond.svg", "w"),
    ]
    return [README_FIGURE, *drawn]


@needs_browser
def test_no_two_text_spans_of_a_label_overlap_in_a_browser(browser: Any, tmp_path: Path) -> None:
    for svg in _drawings(tmp_path):
        assert _overlaps(_labels(browser, svg)) == [], svg.name


@needs_browser
def test_scripts_are_smaller_than_their_text_in_a_browser(browser: Any, tmp_path: Path) -> None:
    scripts = 0
    for svg in _drawings(tmp_path):
        for name, spans in _labels(browser, svg):
            for before, span in itertools.pairwise(spans):
                if span["script"] in ("sub", "super") and not before["script"]:
                    scripts += 1
                    assert span["size"] < 0.8 * before["size"], (svg.name, name, span)
                    height = span["bottom"] - span["top"]
                    assert height < 0.8 * (before["bottom"] - before["top"]), (svg.name, name)
    assert scripts > 50  # h₁, W₁, xᵀ, ‖y−ŷ‖², in every drawing


def test_scripts_are_drawn_smaller_wherever_the_size_changes() -> None:
    nested = 'a<SUB>1</SUB><FONT POINT-SIZE="10">b<SUP>T</SUP><FONT COLOR="red">c<SUB>2</SUB>'
    nested += "</FONT></FONT>d<SUP>2</SUP>"
    assert scripts_smaller(nested, 12) == (
        f'a<SUB><FONT POINT-SIZE="{12 * SCRIPT:g}">1</FONT></SUB><FONT POINT-SIZE="10">'
        f'b<SUP><FONT POINT-SIZE="{10 * SCRIPT:g}">T</FONT></SUP><FONT COLOR="red">'
        f'c<SUB><FONT POINT-SIZE="{10 * SCRIPT:g}">2</FONT></SUB></FONT></FONT>'
        f'd<SUP><FONT POINT-SIZE="{12 * SCRIPT:g}">2</FONT></SUP>'
    )
    assert scripts_smaller("no scripts &lt;SUB&gt;", 12) == "no scripts &lt;SUB&gt;"


def test_spans_followed_on_their_line_are_held_to_the_width_dot_gave_them() -> None:
    svg = (
        b'<g id="n1" class="node">\n'
        b'<text text-anchor="start" x="10.5" y="-3" font-size="12.00">h</text>\n'
        b'<text text-anchor="start" x="19" y="-3" baseline-shift="sub" font-size="8.40">1</text>\n'
        b'<text text-anchor="start" x="4" y="-18" font-size="12.00">\xcf\x83(x)</text>\n'
        b'<text text-anchor="middle" x="4" y="-18">plain</text>\n</g>'
    )
    lines = fit_text(svg).split(b"\n")
    fit = b'<text xml:space="preserve" textLength="8.50" lengthAdjust="spacingAndGlyphs" '
    assert lines[1] == svg.split(b"\n")[1].replace(b"<text ", fit)
    # the last span of a line, a span of another line, a centred label: their spaces kept
    kept = [line.replace(b"<text ", b'<text xml:space="preserve" ') for line in svg.split(b"\n")]
    assert lines[2:4] == kept[2:4] and lines[4:] == svg.split(b"\n")[4:]
    later = svg.replace(b"<text ", b'<text xml:space="preserve" ')  # as Graphviz 3+ writes it
    fit = b'<text textLength="8.50" lengthAdjust="spacingAndGlyphs" xml:space="preserve" '
    assert fit_text(later).split(b"\n")[1].startswith(fit)


def _jupyter_drawing(tmp_path: Path) -> Path:
    """``gb.render(...)`` as Jupyter shows it (IPython's display formatter), with numbers:
    the notebook's own cell."""
    from IPython.core.formatters import DisplayFormatter

    net = gb.Network(gb.seed_network(10, 16, 1), loss="L")
    prog = net.compile()
    inputs = example_inputs(net, np.random.default_rng(0), batch=6)
    params = prog.init(0)
    values = prog.forward(params, inputs, net.order)
    grads = prog.value_and_grad(params, inputs)[1]
    shown, _ = DisplayFormatter().format(gb.render(net, "W1", values=values, grads=grads))
    path = tmp_path / "shown.svg"
    path.write_text(shown["image/svg+xml"], encoding="utf-8")
    return path


@needs_browser
def test_a_drawing_shown_in_jupyter_is_held_to_dot_s_layout(browser: Any, tmp_path: Path) -> None:
    assert _overlaps(_labels(browser, _jupyter_drawing(tmp_path))) == []


@needs_browser
def test_the_notebook_s_stored_diagrams_show_without_overlaps(browser: Any, tmp_path: Path) -> None:
    import nbformat

    stored = nbformat.read(README_FIGURE.parent / "textbook.ipynb", as_version=4)
    svgs = [
        out.data["image/svg+xml"]
        for cell in stored.cells
        if "diagram" in cell.get("metadata", {}).get("tags", [])
        for out in cell.outputs
        if "image/svg+xml" in out.get("data", {})
    ]
    assert len(svgs) == 3
    for k, svg in enumerate(svgs):
        path = tmp_path / f"cell{k}.svg"
        path.write_text(svg, encoding="utf-8")
        assert _overlaps(_labels(browser, path)) == [], k
