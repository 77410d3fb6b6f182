"""graphbp in Jupyter: docs/textbook.ipynb runs in a real kernel (nbclient) with every output
current, a network shows as its diagram, a chain rule as its formula, a cost as its table (all
user text escaped), and training shows a plain progress bar, never tqdm's IProgress warning,
in a kernel without ipywidgets.

``python tests/test_notebook.py`` executes the notebook and stores its outputs (progress bars
left out): run it after changing the notebook or what it shows.
"""

from __future__ import annotations

import html
import re
import shutil
import string
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import networkx as nx
import pytest

import graphbp as gb
from graphbp.chain import DISPLAY_CHARS, DISPLAY_ROWS, symbol
from graphbp.display import DISPLAY_NODES, markdown_text
from graphbp.errors import show, visible
from graphbp.progress import in_notebook_kernel, in_widget_kernel, progress_bar

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "textbook.ipynb"
MAX_NOTEBOOK_BYTES = 200_000
"""The stored notebook, outputs included, stays small enough to read as a diff."""
DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed")
TEXT_TYPES = ("text/plain", "text/latex", "text/markdown", "text/html")
_BAR = re.compile(r"[\w .-]+: +\d+%\|")
"""The start of a plain tqdm bar's line, as graphbp's bars write it (``train:  40%|``)."""


def _hostile() -> list[str]:
    from test_safe_markup import HOSTILE

    return [name for name in HOSTILE if len(name) < 500]


def execute(nb: Any, cwd: Path, coalesce: bool = True) -> Any:
    """Run every cell of ``nb`` in a fresh python3 kernel started in ``cwd``; raises on the
    first cell that errors (nbclient's CellExecutionError, with the traceback). With
    ``coalesce``, a cell's stdout is one output however the kernel's flushes split it, and so
    is its stderr (text a carriage return overwrote left out, as a notebook shows it)."""
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        coalesce_streams=coalesce,
    )
    client.execute()
    return nb


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder to run kernels in, with IPython's history kept there, not in the home folder.

    Matplotlib's font cache is built here first (as any first import does) so that the
    kernel does not log "building the font cache" on stderr in a fresh environment.
    """
    import matplotlib.font_manager  # noqa: F401  (builds the cache once, if missing)

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    run = tmp_path / "run"
    run.mkdir()
    return run


def is_progress(text: str) -> bool:
    """Whether a stderr stream holds nothing but plain progress-bar redraws."""
    return all(not line.strip() or _BAR.match(line) for line in re.split(r"[\r\n]", text))


def text_outputs(nb: Any) -> list[list[tuple[str, str]]]:
    """Per code cell, its stdout and text outputs (memory addresses in reprs masked): what
    must not change between the stored notebook and a fresh run."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        found = []
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stdout":
                found.append(("stdout", out.text))
            elif out.output_type in ("display_data", "execute_result"):
                for kind in TEXT_TYPES:
                    if kind in out.data:
                        found.append((kind, _masked(out.data[kind])))
        cells.append(found)
    return cells


def drawn_text(nb: Any) -> list[list[tuple[str | None, ...]]]:
    """Per diagram cell, every text of its SVG with the element it labels and how it is drawn
    (size, script, the width ``fit_text`` holds it to): what must not change between the
    stored notebook and a fresh run, whatever coordinates another Graphviz version gives."""
    svg = "{http://www.w3.org/2000/svg}"
    cells = []
    for cell in tagged(nb, "diagram"):
        found: list[tuple[str | None, ...]] = []
        for out in cell.outputs:
            if "image/svg+xml" not in out.get("data", {}):
                continue
            for group in ET.fromstring(out.data["image/svg+xml"].encode()).iter(f"{svg}g"):
                for text in group.findall(f"{svg}text"):
                    attrs = ("font-size", "baseline-shift", "lengthAdjust")
                    held = "textLength" in text.attrib
                    found.append((group.get("id"), text.text, *map(text.get, attrs), str(held)))
        cells.append(found)
    return cells


def tagged(nb: Any, tag: str) -> list[Any]:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def kinds(cell: Any) -> set[str]:
    return {k for out in cell.outputs if "data" in out for k in out.data}


def for_storage(nb: Any) -> Any:
    """``nb`` without what depends on timing or memory: progress-bar stderr outputs and
    execution times removed, memory addresses in reprs masked (as ``text_outputs`` compares
    them)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata.pop("execution", None)  # when it ran: a diff on every run
            cell.outputs = [
                out
                for out in cell.outputs
                if not (
                    out.output_type == "stream" and out.name == "stderr" and is_progress(out.text)
                )
            ]
            for out in cell.outputs:
                if "text/plain" in out.get("data", {}):
                    out.data["text/plain"] = _masked(out.data["text/plain"])
    return nb


def _masked(text: str) -> str:
    return re.sub(r" at 0x[0-9a-f]+", " at 0x…", text)


# ------------------------------------------------------------------------------ the notebook


@needs_dot
def test_the_textbook_notebook_runs_and_its_stored_outputs_are_current(kernel_env: Path) -> None:
    stored = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(stored)
    assert NOTEBOOK.stat().st_size < MAX_NOTEBOOK_BYTES
    fresh = execute(nbformat.read(NOTEBOOK, as_version=4), kernel_env)

    for cell in fresh.cells:
        for out in getattr(cell, "outputs", []):
            assert out.output_type != "error", cell.source
            if out.output_type == "stream" and out.name == "stderr":  # warnings, logs
                assert is_progress(out.text), f"stderr in cell {cell.source!r}: {out.text!r}"
    assert list(kernel_env.iterdir()) == []  # the notebook writes no file

    diagrams = tagged(fresh, "diagram")
    assert len(diagrams) == 3
    for cell in diagrams:
        svg = next(o.data["image/svg+xml"] for o in cell.outputs if "image/svg+xml" in o.data)
        assert ET.fromstring(svg.encode()).tag == "{http://www.w3.org/2000/svg}svg"
    assert "image/png" in kinds(tagged(fresh, "figure")[0])  # the loss curve

    # What the stored notebook shows is what graphbp computes here and now.
    net = gb.Network(gb.seed_network(10, 16, 1), loss="L")
    (formula,) = tagged(fresh, "formula")
    assert formula.outputs[-1].data["text/latex"] == gb.chain_rule(net, "W1")._repr_latex_()
    (cost,) = tagged(fresh, "cost")
    assert cost.outputs[-1].data["text/html"] == gb.explain(net)._repr_html_()

    assert text_outputs(stored) == text_outputs(fresh), (
        "docs/textbook.ipynb's stored outputs are not what it produces now: run "
        "python tests/test_notebook.py to store them"
    )
    for cell in stored.cells:  # stored without progress bars, with every diagram
        for out in getattr(cell, "outputs", []):
            assert out.output_type != "stream" or out.name == "stdout"
    assert all("image/svg+xml" in kinds(c) for c in tagged(stored, "diagram"))
    assert drawn_text(stored) == drawn_text(fresh), (
        "docs/textbook.ipynb's stored diagrams are not what it draws now: run "
        "python tests/test_notebook.py to store them"
    )


# ------------------------------------------------------------------------------ the reprs


@needs_dot
def test_a_network_shows_as_its_diagram(tmp_path: Path) -> None:
    net = gb.Network(gb.seed_network(10, 16, 1), loss="L")
    bundle = net._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/svg+xml"}
    assert bundle["text/plain"] == repr(net)
    svg = ET.fromstring(bundle["image/svg+xml"].encode())
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"x", "L", "ŷ", "σ(x·W+b)", "∂L/∂ŷ reused by 6 params"} <= texts
    drawn = gb.write_diagram(net, tmp_path / "net.svg")  # the same drawing as the file's
    assert bundle["image/svg+xml"] == drawn.read_text(encoding="utf-8")


def test_without_dot_a_network_shows_how_to_draw_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot to be found
    net = gb.Network(gb.seed_network(10, 16, 1), loss="L")
    bundle = net._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/markdown"}
    note = html.unescape(bundle["text/markdown"])
    assert "12 nodes" in note and "Graphviz's 'dot' executable is not on PATH" in note
    assert "apt-get install graphviz" in note and "gb.render(net).source" in note


def test_a_network_too_large_to_lay_out_quickly_shows_a_note_instead() -> None:
    k = DISPLAY_NODES // 3 + 1  # a diamond chain has 3k + 2 nodes
    net = gb.Network(gb.diamond_chain(k))
    assert len(net.order) > DISPLAY_NODES
    bundle = net._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/markdown"}
    note = html.unescape(bundle["text/markdown"])
    assert f"{len(net.order):,} nodes" in note and "too large to lay out here" in note
    assert 'scopes="collapse"' in note


def test_the_repr_names_the_first_parameters_and_counts_the_rest() -> None:
    net = gb.Network(gb.mlp([2] + [3] * 10 + [1], "tanh", "sse"))
    assert len(net.params) == 22
    assert repr(net).endswith("'b4', … 14 more], inputs=['x', 'y']>")
    long = "n" * 1000
    g = nx.DiGraph()
    g.add_node(long, op="param", shape=())
    g.add_node("L", op="square")
    g.add_edge(long, "L")
    assert len(repr(gb.Network(g, loss="L"))) < 200  # a 1,000-character name is cut


def test_a_chain_rule_shows_as_its_formula() -> None:
    net = gb.Network(gb.seed_network(10, 16, 1), loss="L")
    rule = gb.chain_rule(net, "W1")
    assert rule._repr_latex_() == rf"$\displaystyle {rule.latex}$"
    assert pretty(rule) == rule.text == "∂L/∂W1 = ∂L/∂ŷ · ∂ŷ/∂h2 · ∂h2/∂h1 · ∂h1/∂W1"


_MATH_SAFE = re.compile(
    r"\\[{}_#$%&]|\\ |\{\\backslash\}|\{\\sim\}|\\hat\{\}|\{[-+*/=<>,;:!|]\}"
    r"|[^\\{}_^#$%&~ +*/=<>,;:!|\-]"
)
r"""What a name may become inside ``\mathrm{...}``: TeX's specials as escapes, a backslash as
``{\backslash}``, ``~`` and ``^`` as the math glyphs ``{\sim}`` and ``\hat{}``, a space as a
control space, operators and punctuation braced (no operator spacing); any other character
as itself. MathJax, KaTeX and LaTeX draw each of these as the one character it stands for."""
_MEANS = {r"{\backslash}": "\\", r"{\sim}": "~", r"\hat{}": "^", "\\ ": " "}


@pytest.mark.parametrize(
    "name", ["my weight", "a\\b", r"\frac{1}{2}", "x~y", "W^2", "p$q", "a_b", "%c", "w-1 + v=2"]
)
def test_a_name_in_a_formula_is_typeset_as_itself(name: str) -> None:
    r"""``a\b`` is not a line break, ``\frac`` not a fraction, ``~`` and ``^`` not the text
    accents that math mode refuses (MathJax draws them as red errors), a space not dropped."""
    g = nx.DiGraph()
    g.add_node(name, op="param", shape=())
    g.add_node("L", op="square")
    g.add_edge(name, "L")
    latex = gb.chain_rule(gb.Network(g, loss="L"), name).latex
    match = re.fullmatch(r"\\frac\{\\partial L\}\{\\partial \\mathrm\{(.*)\}\} = (.*)", latex)
    assert match is not None, latex
    inner = match[1]
    assert match[2] == rf"\frac{{\partial L}}{{\partial \mathrm{{{inner}}}}}"
    pieces = [m[0] for m in _MATH_SAFE.finditer(inner)]
    assert "".join(pieces) == inner, inner  # nothing else: no \\, no \~, no bare space
    shown = "".join(_MEANS.get(p, p[-2] if p.startswith("{") else p[-1]) for p in pieces)
    assert shown == name  # and each piece stands for its own character, in order


def test_a_formula_too_long_to_typeset_shows_as_text_cut_with_a_note() -> None:
    net = gb.Network(gb.diamond_chain(12))
    rule = gb.chain_rule(net, "w", max_paths=4096)
    assert len(rule.latex) > DISPLAY_CHARS
    assert rule._repr_latex_() is None  # Jupyter falls back to the text
    shown = pretty(rule)
    assert shown.startswith(rule.text[:DISPLAY_CHARS])
    assert shown.endswith(f"… ({len(rule.text):,} characters; print(rule.text) shows all)")


def test_a_cost_shows_as_its_table_with_the_cost_numbers() -> None:
    for net in (
        gb.Network(gb.seed_network(10, 16, 1), loss="L"),
        gb.Network(gb.diamond_chain(8)),
    ):
        cost = gb.explain(net)
        page = Tags()
        page.feed(cost._repr_html_())
        head, params = page.tables
        noun = "parameters" if cost.params > 1 else "parameter"
        assert page.caption == (
            f"{cost.nodes} nodes, {cost.params} {noun}, {cost.paths:,} paths from the "
            f"loss to the {noun}"
        )
        assert head[1][1:] == [f"{cost.backprop:,}", "1.0×"]
        assert head[2][1:] == [
            f"{cost.path_by_path:,}",
            f"{cost.path_by_path / cost.backprop:,.1f}×",
        ]
        assert params[0] == ["parameter", "paths", "factors"]
        assert params[1:] == [
            [symbol(p).text, f"{paths:,}", f"{length:,}"]
            for p, (paths, length) in cost.per_param.items()
        ]
        assert pretty(cost) == str(cost)
    assert "∂L/∂ŷ by 6, ∂L/∂h2 by 4, ∂L/∂h1 by 2" in "".join(page_of_seed().text)


def test_counts_of_one_are_singular() -> None:
    g = nx.DiGraph()
    g.add_node("w", op="param", shape=())
    g.add_node("L", op="square")
    g.add_edge("w", "L")
    net = gb.Network(g, loss="L")
    cost = gb.explain(net)
    assert str(cost).startswith("2 nodes, 1 parameter, 1 path from the loss to the parameter\n")
    page = Tags()
    page.feed(cost._repr_html_())
    assert page.caption == "2 nodes, 1 parameter, 1 path from the loss to the parameter"
    seed = str(gb.explain(gb.Network(gb.seed_network(10, 16, 1), loss="L")))
    assert seed.startswith("12 nodes, 6 parameters, 6 paths from the loss to the parameters")
    note = gb.Network(gb.diamond_chain(DISPLAY_NODES))._repr_mimebundle_()["text/markdown"]
    assert ", 1 parameter, loss " in note  # the note of a network too large to draw


def test_a_cost_table_lists_at_most_its_row_limit() -> None:
    g = nx.DiGraph()
    g.add_node("L", op="add")
    for k in range(DISPLAY_ROWS + 5):
        g.add_node(f"p{k}", op="param", shape=())
    g.add_node("s", op="add")
    g.add_edge("p0", "s", arg=0)
    g.add_edge("p1", "s", arg=1)
    for k in range(2, DISPLAY_ROWS + 5):  # a chain of sums: L = ((p0 + p1) + p2) + …
        g.add_node(f"s{k}", op="add")
        g.add_edge("s" if k == 2 else f"s{k - 1}", f"s{k}", arg=0)
        g.add_edge(f"p{k}", f"s{k}", arg=1)
    g.add_edge(f"s{DISPLAY_ROWS + 4}", "L", arg=0)
    g.add_edge("p0", "L", arg=1)
    cost = gb.explain(gb.Network(g, loss="L"))
    page = Tags()
    page.feed(cost._repr_html_())
    assert len(page.tables[1]) == 1 + DISPLAY_ROWS
    assert "… and 5 more (print(cost) lists all)" in page.text


@pytest.mark.parametrize("name", _hostile(), ids=lambda s: repr(s[:24]))
def test_hostile_names_reach_formulas_tables_and_notes_only_as_text(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = nx.DiGraph()
    g.add_node(name, op="param", shape=(2,), init=1.0)
    g.add_node("t", op="tanh")
    g.add_node(f"{name} L", op="sum")
    g.add_edge(name, "t")
    g.add_edge("t", f"{name} L")
    net = gb.Network(g, loss=f"{name} L")

    cost = gb.explain(net)
    page = Tags()
    page.feed(cost._repr_html_())
    assert {tag for tag, _ in page.tags} <= {
        "table",
        "caption",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "p",
        "sub",
    }
    assert all(not attrs or attrs == {"style": "text-align:right"} for _, attrs in page.tags)
    assert page.tables[1][1][0] == symbol(name).text

    latex = gb.chain_rule(net, name)._repr_latex_()
    assert latex is not None
    inner = latex.removeprefix(r"$\displaystyle ").removesuffix("$")
    for match in re.finditer(r"\$", inner):  # a $ never ends the math: it is escaped
        backslashes = len(inner[: match.start()]) - len(inner[: match.start()].rstrip("\\"))
        assert backslashes % 2 == 1

    monkeypatch.setenv("PATH", str(tmp_path))  # the note, which names the loss
    note = net._repr_mimebundle_()["text/markdown"]
    assert f"loss {show(f'{name} L')};" in html.unescape(note)  # the name, as repr shows it
    assert not set(markdown_text(name)) & (set(string.punctuation) - set("&#;"))
    assert html.unescape(markdown_text(name)) == visible(name)


# ------------------------------------------------------------------------------ progress


def test_outside_a_kernel_the_bar_is_tqdm_s_plain_one() -> None:
    from tqdm.std import tqdm

    assert not in_notebook_kernel() and not in_widget_kernel()
    with progress_bar(range(2), disable=True) as bar:
        assert type(bar) is tqdm


def test_in_a_kernel_without_ipywidgets_training_shows_a_plain_bar_and_no_warning(
    kernel_env: Path,
) -> None:
    """tqdm.auto warns about IProgress in exactly this kernel (the last cell shows it), so
    the kernel is the case the issue describes; graphbp's bars do not."""
    with pytest.raises(ImportError):
        import ipywidgets  # noqa: F401
    cells = [
        "import numpy as np\nimport graphbp as gb\n"
        "from graphbp.progress import in_notebook_kernel, in_widget_kernel\n"
        "print(in_notebook_kernel(), in_widget_kernel())",
        'net = gb.Network(gb.seed_network(3, 4, 1), loss="L")\n'
        'prog = net.compile("numpy")\nrng = np.random.default_rng(0)\n'
        'data = {"x": rng.standard_normal((8, 3)), "y": rng.standard_normal((8, 1))}\n'
        "params, history = gb.train(prog, prog.init(), data, epochs=3, progress=True)\n"
        "print(len(history))",
        "import tqdm.auto",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    execute(nb, kernel_env, coalesce=False)  # every redraw of the bar
    first, trained, old = (
        [(o.get("name"), o.get("text", "")) for o in c.outputs] for c in nb.cells
    )
    assert first == [("stdout", "True False\n")]  # a notebook kernel, without ipywidgets
    err = "".join(text for name, text in trained if name == "stderr")
    assert ("stdout", "3\n") in trained
    assert re.search(r"train: +\d+%\|", err) and is_progress(err)  # the plain bar alone
    assert "IProgress" in "".join(text for _, text in old)  # what tqdm.auto prints here


# ------------------------------------------------------------------------------ helpers


def pretty(obj: Any) -> str:
    """What IPython's plain-text formatter shows for ``obj``."""
    from IPython.lib.pretty import pretty as ipython_pretty

    return str(ipython_pretty(obj))


class Tags(HTMLParser):
    """The start tags, the caption, the tables' cells (as text) and all text of some HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[list[list[str]]] = []
        self.caption = ""
        self.text = ""
        self._where: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append("")
        if tag in ("td", "th", "caption"):
            self._where = tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "caption"):
            self._where = None

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._where == "caption":
            self.caption += data
        elif self._where:
            self.tables[-1][-1][-1] += data


def page_of_seed() -> Tags:
    page = Tags()
    page.feed(gb.explain(gb.Network(gb.seed_network(10, 16, 1), loss="L"))._repr_html_())
    return page


def store_outputs() -> None:
    """Execute docs/textbook.ipynb and store its outputs, progress bars left out."""
    import tempfile

    nb = nbformat.read(NOTEBOOK, as_version=4)
    with tempfile.TemporaryDirectory() as folder:
        execute(nb, Path(folder))
    nbformat.write(for_storage(nb), NOTEBOOK)
    print(f"wrote {NOTEBOOK} ({NOTEBOOK.stat().st_size:,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    store_outputs()
