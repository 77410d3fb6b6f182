"""The op that is wrong, drawn: ``check_network(net, report=True)`` checks every operand
edge's vjp at the network's values against central differences (and jax.vjp), colours the
drawing by the verdicts, names the wrong op, and ``graphbp check --render`` writes it."""

from __future__ import annotations

import re
import shutil
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from helpers import CHROMEDRIVER, CHROMIUM, fake_distribution, graphbp
from test_safe_markup import HOSTILE, SVG_NS, check_page, check_svg

import graphbp as gb
from graphbp.chain import Edge
from graphbp.check_report import NO_GRADIENT, NOT_FINITE, NOT_SMOOTH
from graphbp.errors import show
from graphbp.render import HIGHLIGHT, MARK_COLORS, Marks, edge_id, worst_mark
from graphbp.testing import check_network, installed_backends

HAS_JAX = "jax" in installed_backends()
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="no Graphviz dot")
BACKENDS = [
    "numpy",
    pytest.param("jax", marks=pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")),
]

WRONG_OPS = """
import graphbp as gb


class WrongSigmoid(gb.Op):
    \"\"\"σ whose rule is 1.5 times the right one.\"\"\"

    name = "t_wrong_sigmoid"
    label = "σ"
    local_grads = ("σ(z)(1−σ(z))",)

    def forward(self, xp, z):
        return 1 / (1 + xp.exp(-z))

    def vjp(self, xp, g, out, z):
        return (1.5 * g * out * (1 - out),)


class HalfWrongMul(gb.Op):
    \"\"\"a·b whose rule is right for a and twice too large for b.\"\"\"

    name = "t_half_wrong_mul"
    label = "·"
    local_grads = ("b", "a")

    def forward(self, xp, a, b):
        return a * b

    def vjp(self, xp, g, out, a, b):
        return (g * b, 2 * g * a)
"""
"""The plugin module of these tests: imported here, and installed as a package (by entry
point) for the command line's run."""

namespace: dict[str, Any] = {}
exec(compile(WRONG_OPS, "wrong_ops.py", "exec"), namespace)  # the same source, in-process
WrongSigmoid, HalfWrongMul = namespace["WrongSigmoid"], namespace["HalfWrongMul"]


def sigmoid_net(op: str = "t_wrong_sigmoid", name: str = "h", scope: str | None = None) -> Any:
    """x → x·W + b → op (node ``name``, in ``scope`` if given) → ·V → sse with y."""
    b = gb.Builder()
    x, y = b.input("x", (None, 3)), b.input("y", (None, 2))
    z = x @ b.param("W", (3, 4)) + b.param("b", (4,))
    if scope is None:
        h = b.op(op, z, name=name)
    else:
        with b.scope(scope):
            h = b.op(op, z, name=name)
    return b.network(b.sse(h @ b.param("V", (4, 2)), y))


def into(net: gb.Network, node: Any) -> set[Edge]:
    """The operand edges into ``node``."""
    return {Edge(s, node, k) for k, s in enumerate(net.operands[node])}


def by_status(report: Any) -> dict[str, set[Edge]]:
    found: dict[str, set[Edge]] = {"agree": set(), "wrong": set(), "unchecked": set()}
    for edge, check in report.edges.items():
        found[check.status].add(edge)
    return found


def edge_strokes(svg: str, key: str = "id") -> dict[str, str]:
    """Each drawn edge's ``key`` (its id, or its title: "n3->n5") and the stroke of its line."""
    root = ET.fromstring(svg[svg.index("<svg") :])
    strokes = {}
    for group in root.iter(f"{SVG_NS}g"):
        if group.get("class") == "edge":
            line = next(group.iter(f"{SVG_NS}path"))
            title = "".join(group.find(f"{SVG_NS}title").itertext())  # type: ignore[union-attr]
            strokes[group.get("id", "") if key == "id" else title] = line.get("stroke", "")
    return strokes


def svg_text(svg: str) -> str:
    root = ET.fromstring(svg[svg.index("<svg") :])
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG_NS}text"))


# ------------------------------------------------------------------------- the verdicts


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_wrong_vjp_makes_exactly_its_edges_wrong(register: Any, backend: str) -> None:
    register(WrongSigmoid)
    net = sigmoid_net()
    report = check_network(net, backend, report=True)  # no exception: the report says it
    found = by_status(report)
    assert found["wrong"] == into(net, "h")
    assert found["agree"] == set(report.edges) - into(net, "h") and not found["unchecked"]
    assert list(report.edges) == [Edge(s, n, k) for n in net.order for k, s in
                                  enumerate(net.operands[n])]  # fmt: skip
    (check,) = report.wrong.values()
    assert check.differences == pytest.approx(1 / 3, rel=1e-4)  # |1.5a − a| / 1.5a
    assert (check.autodiff == pytest.approx(0.5)) if HAS_JAX else check.autodiff is None
    assert all(c.differences is not None and c.differences < 1e-6 for c in
               report.edges.values() if c.status == "agree")  # fmt: skip
    assert report.wrong_ops == {"t_wrong_sigmoid": ("h",)}
    assert set(report.failed) == {"W", "b"}  # V's gradient does not pass through h
    assert report.lines()[0].startswith(
        "wrong vjp: node 'h' (op 't_wrong_sigmoid', operand 0): max error 0.33 vs finite "
        "differences"
    )
    right = check_network(sigmoid_net("sigmoid"), backend, report=True)
    assert not right.wrong and not right.failed and not right.wrong_ops
    assert {c.status for c in right.edges.values()} == {"agree"}


def test_only_the_operand_whose_rule_is_wrong_is_wrong(register: Any) -> None:
    register(HalfWrongMul)
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(2, 3))
    g.add_node("q", op="param", shape=(2, 3))
    g.add_node("m", op="t_half_wrong_mul")
    g.add_node("L", op="sum")
    g.add_edges_from([("p", "m", {"arg": 0}), ("q", "m", {"arg": 1}), ("m", "L", {"arg": 0})])
    net = gb.Network(g)
    report = check_network(net, report=True)
    assert by_status(report) == {
        "agree": {Edge("p", "m", 0), Edge("m", "L", 0)},
        "wrong": {Edge("q", "m", 1)},
        "unchecked": set(),
    }
    assert report.lines()[0].startswith(
        "wrong vjp: node 'm' (op 't_half_wrong_mul', operand 1): max error 0.5 vs finite "
        "differences"
    )
    assert set(report.failed) == {"q"}  # ∂L/∂q = p comes out 2p: operand 1's rule


def test_a_wrong_activation_inside_dense_is_named(register: Any) -> None:
    register(WrongSigmoid)
    g = gb.seed_network(3, 4, 2)
    g.nodes["h2"]["activation"] = "t_wrong_sigmoid"
    net = gb.Network(g)
    report = check_network(net, report=True)
    assert set(report.wrong) == into(net, "h2")  # every operand of dense goes through σ
    assert report.wrong_ops == {"t_wrong_sigmoid": ("h2",)}
    assert "node 'h2' (op 'dense', its activation 't_wrong_sigmoid', operand 1)" in str(report)


def test_non_smooth_points_and_gradient_free_operands_are_unchecked() -> None:
    g = nx.DiGraph(loss="L")  # relu at exactly 0: its rule's 0 lies between the kink's slopes
    g.add_node("p", op="param", shape=(3,), init=0.0)
    g.add_node("r", op="relu")
    g.add_node("L", op="sum")
    g.add_edges_from([("p", "r"), ("r", "L")])
    kink = check_network(gb.Network(g), report=True)  # without report=True: an error
    assert kink.edges[Edge("p", "r", 0)].status == "unchecked"
    assert kink.edges[Edge("p", "r", 0)].note.startswith("not smooth here, ∂/∂operand 0[0]")
    assert kink.edges[Edge("r", "L", 0)].status == "agree"
    assert not kink.wrong and set(kink.failed) == {"p"}  # named, though no rule is wrong
    assert kink.lines()[0].startswith("wrong gradient: network on numpy, parameter 'p'")
    with pytest.raises(gb.GradientCheckError):
        check_network(gb.Network(g))
    g.nodes["p"]["init"] = 0.5  # off the kink: checked, and right
    assert check_network(gb.Network(g), report=True).edges[Edge("p", "r", 0)].status == "agree"

    from graphs import leaky_where_graph

    net = gb.Network(leaky_where_graph())  # where(z > t, z, 0.1·z): the predicate's edges
    params = {"w": np.array([0.5, -1.0, 2.0, 0.3]), "t": np.array(0.1)}  # z off the threshold
    report = check_network(net, params=params, report=True)
    free = {Edge("z", "above", 0), Edge("t", "above", 1), Edge("above", "h", 0)}
    assert by_status(report)["unchecked"] == free
    assert all('declared "0"' in report.edges[e].note for e in free)
    assert not report.wrong and not report.failed


def test_without_report_nothing_changes(register: Any) -> None:
    net = sigmoid_net("sigmoid")
    plain, reported = check_network(net), check_network(net, report=True)
    assert plain.worst.keys() == reported.worst.keys()  # each parameter, but a report's
    assert reported.compared == 3 * len(net.params) < plain.compared  # along directions only
    assert plain.net is None and plain.edges == {} and str(plain).count("\n") == 0
    with pytest.raises(gb.InputError, match="has no network to draw; make it with"):
        plain.marks()
    register(WrongSigmoid)
    with pytest.raises(gb.GradientCheckError, match="the rule of op 't_wrong_sigmoid' at node"):
        check_network(sigmoid_net())


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
@pytest.mark.parametrize("example", ["mlp", "residual_attention"])
def test_an_imported_network_reports_every_rule_right(example: str) -> None:
    from graphbp import jax_examples

    fn, args = jax_examples.mlp("relu") if example == "mlp" else jax_examples.residual_attention(1)
    net, params, inputs = gb.from_jax(fn, *args)
    report = check_network(net, params=params, inputs=inputs, report=True)
    found = by_status(report)
    assert not found["wrong"] and not report.failed and not report.wrong_ops
    assert len(found["agree"]) > 10 * len(found["unchecked"])
    assert all(  # unchecked only where no gradient flows (a comparison, an index)
        'declared "0"' in report.edges[e].note for e in found["unchecked"]
    )
    assert all(c.autodiff is not None for c in report.edges.values() if c.status == "agree")


# ------------------------------------------------------------------------- the drawing


def test_a_link_takes_the_worst_mark_of_its_edges() -> None:
    a, b, c = Edge("x", "y", 0), Edge("x", "z", 0), Edge("z", "w", 1)
    colors = {a: "agree", b: "unchecked", c: "wrong"}
    assert worst_mark(colors, [a]) == "agree"
    assert worst_mark(colors, [a, b]) == "unchecked"
    assert worst_mark(colors, [c, a, b]) == "wrong"
    assert worst_mark(colors, [Edge("p", "q", 0)]) is None and worst_mark(colors, []) is None


@needs_dot
def test_the_drawing_has_exactly_the_wrong_edges_in_red(register: Any, tmp_path: Path) -> None:
    register(WrongSigmoid)
    net = sigmoid_net()
    report = check_network(net, report=True)
    svg = report.write(tmp_path / "check.svg").read_text()
    strokes = edge_strokes(svg)
    assert set(strokes) == {edge_id(net, e) for e in report.edges}
    assert {k for k, v in strokes.items() if v == HIGHLIGHT} == {
        edge_id(net, e) for e in into(net, "h")
    }
    assert {k for k, v in strokes.items() if v == MARK_COLORS["agree"]} == {
        edge_id(net, e) for e in set(report.edges) - into(net, "h")
    }
    text = svg_text(svg)
    assert "8 agree (green), 1 wrong (red), 0 unchecked (grey)" in text
    assert "wrong vjp: node 'h' (op 't_wrong_sigmoid', operand 0): max error 0.33" in text
    source = report.write(tmp_path / "check.dot").read_text()
    assert len(re.findall(f'(?<!font)color="{HIGHLIGHT}"', source)) == 1  # nothing else red


@needs_dot
def test_the_collapsed_drawing_colours_each_link_by_its_worst_edge(
    register: Any, tmp_path: Path
) -> None:
    register(WrongSigmoid)
    net = sigmoid_net(scope="act")  # h alone in a scope: its wrong edge enters the box
    report = check_network(net, report=True)
    svg = report.write(tmp_path / "c.svg", scopes="collapse").read_text()
    strokes = edge_strokes(svg, "title")
    into_box = [k for k in strokes if re.fullmatch(r"n\d+->(?!n\d+$).+", k)]  # node → box
    assert [strokes[k] for k in into_box] == [HIGHLIGHT], strokes
    assert sorted(v for k, v in strokes.items() if k not in into_box) == sorted(
        [MARK_COLORS["agree"]] * (len(strokes) - 1)
    )


def test_marks_reach_the_drawing_only_as_known_colours_of_its_own_edges() -> None:
    net = sigmoid_net("sigmoid")
    edge = next(iter(into(net, "h")))
    for bad in ('agree" color="red', "purple", None):
        with pytest.raises(gb.InputError, match="use one of agree, wrong, unchecked"):
            gb.render(net, marks=Marks({edge: bad}))  # type: ignore[dict-item]
    for stranger in (Edge("x", "nowhere", 0), Edge("W", "h", 0), ("x",), Edge("x", "h", 0.0)):
        with pytest.raises(gb.InputError, match="is not an operand edge of this network"):
            gb.render(net, marks=Marks({stranger: "agree"}))  # type: ignore[dict-item]
    for not_marks in ({edge: "agree"}, Marks([edge], ())):  # type: ignore[arg-type]
        with pytest.raises(gb.InputError, match="give a graphbp.render.Marks of edge colours"):
            gb.render(net, marks=not_marks)  # type: ignore[arg-type]
    lines = tuple(f"line {k} <b>&amp;</b>\x1b" for k in range(30))
    source = gb.render(net, marks=Marks({edge: "wrong"}, lines)).source
    assert "line 19 &lt;b&gt;&amp;amp;&lt;/b&gt;\\\\x1b" in source and "line 20 " not in source
    assert "… and 10 more" in source


@pytest.mark.parametrize("name", HOSTILE[:9], ids=lambda s: repr(s[:24]))
@needs_dot
def test_hostile_node_names_are_escaped_in_the_caption_svg_and_page(
    register: Any, name: str, tmp_path: Path
) -> None:
    register(WrongSigmoid)
    g = nx.DiGraph(loss="L")
    g.add_node(name, op="param", shape=(3,), init=1.0, scope=name)
    g.add_node(f"{name} σ", op="t_wrong_sigmoid", scope=name)
    g.add_node("L", op="sum")
    g.add_edges_from([(name, f"{name} σ"), (f"{name} σ", "L")])
    net = gb.Network(g)
    report = check_network(net, report=True)
    assert set(report.wrong) == {Edge(name, f"{name} σ", 0)}
    svg = report.write(tmp_path / "h.svg").read_text()
    check_svg(svg[svg.index("<svg") :], net, [name, f"{name} σ"])
    assert f"wrong vjp: node {show(f'{name} σ')} (op 't_wrong_sigmoid'" in svg_text(svg)
    page = report.write(tmp_path / "h.html").read_text()
    check_page(page, net, [name, f"{name} σ"])


@pytest.mark.skipif(
    shutil.which("dot") is None or CHROMIUM is None or CHROMEDRIVER is None,
    reason="no dot or no headless browser (apt-get install graphviz chromium chromium-driver)",
)
def test_the_page_shows_the_marks_and_runs_nothing_of_the_names(
    register: Any, browser: Any, tmp_path: Path
) -> None:
    register(WrongSigmoid)
    net = sigmoid_net(name=HOSTILE[2])  # </script><script>window.pwned=1</script>
    report = check_network(net, report=True)
    page = report.write(tmp_path / "check.html")
    browser.get_log("browser")
    browser.get(page.as_uri())
    red = browser.execute_script(
        "return [...document.querySelectorAll('g.edge')].filter(g => g.querySelector('path')"
        f".getAttribute('stroke') === '{HIGHLIGHT}').map(g => g.id)"
    )
    assert set(red) == {edge_id(net, e) for e in into(net, HOSTILE[2])}
    assert browser.execute_script("return window.pwned") is None
    caption = browser.execute_script("return document.querySelector('#graph svg').textContent")
    assert f"wrong vjp: node {show(HOSTILE[2])} (op 't_wrong_sigmoid', operand 0)" in caption
    assert browser.get_log("browser") == []  # no script error, no policy violation


# ------------------------------------------------------------------------ the command line


def test_graphbp_check_render_draws_the_check_and_names_the_wrong_op(
    register: Any, tmp_path: Path
) -> None:
    register(WrongSigmoid)
    register(HalfWrongMul)
    site = tmp_path / "site"
    fake_distribution(
        site,
        "graphbp-wrong",
        "[graphbp.ops]\nt_wrong_sigmoid = wrong_ops:WrongSigmoid\n"
        "t_half_wrong_mul = wrong_ops:HalfWrongMul\n",
        {"wrong_ops": textwrap.dedent(WRONG_OPS)},
    )
    sigmoid_net().to_json(tmp_path / "net.json")
    env = {"PYTHONPATH": str(site)}
    run = graphbp("check", "net.json", "--render", "out.html", cwd=tmp_path, env=env)
    assert run.returncode == 1, run.stderr
    assert run.stdout.splitlines()[0].startswith(
        "wrote out.html: network on numpy, every op's vjp per operand edge against float64 "
        "central differences"
    )
    assert "wrong vjp: node 'h' (op 't_wrong_sigmoid', operand 0): max error 0.33" in run.stdout
    assert run.stderr == (
        "graphbp check: check failed: wrong vjp: op 't_wrong_sigmoid' at node 'h'; its edges "
        "are red in out.html; fix the vjp and check it alone with `graphbp check --op "
        "t_wrong_sigmoid`\n"
    )
    net = sigmoid_net()
    text = (tmp_path / "out.html").read_text()
    assert re.search(
        rf'<g id="{edge_id(net, Edge(next(iter(net.operands["h"])), "h", 0))}" class="edge">'
        rf'\s*<title>[^<]*</title>\s*<path fill="none" stroke="{HIGHLIGHT}"',
        text,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json", "out.html", "site"]

    right = graphbp("check", "--render", "seed.svg", "--backend", "numpy", cwd=tmp_path, env=env)
    assert right.returncode == 1  # the seed network is right; then every installed op is
    assert "0 wrong (red)" in right.stdout.splitlines()[0]  # checked, the wrong ones fail
    assert "check failed: op 't_half_wrong_mul' on numpy" in right.stderr
    assert (tmp_path / "seed.svg").read_text().count(HIGHLIGHT) == 0

    both = graphbp("check", "--op", "sigmoid", "--render", "x.html", cwd=tmp_path, env=env)
    assert both.returncode == 2 and "--render draws a network's check" in both.stderr
    assert not (tmp_path / "x.html").exists()


def test_render_marks_keep_other_drawing_options(register: Any) -> None:
    register(WrongSigmoid)
    net = sigmoid_net()
    report = check_network(net, report=True)
    source = gb.render(net, "W", marks=report.marks(), rankdir="TB").source
    assert "rankdir=TB" in source and "/∂W = " in source and "1 wrong (red)" in source
    assert np.isfinite(report.max_rel_error)


def test_a_rule_that_raises_is_wrong_and_nodes_off_the_loss_path_are_checked(
    register: Any,
) -> None:
    class Raising(WrongSigmoid):  # type: ignore[misc, valid-type]
        name = "t_raising_sigmoid"

        def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> Any:
            raise ValueError("the plugin's own bug")

    register(Raising)
    net = sigmoid_net("t_raising_sigmoid")
    report = check_network(net, report=True)  # backprop fails: still a report
    assert set(report.wrong) == into(net, "h")
    assert report.edges[Edge(next(iter(net.operands["h"])), "h", 0)].note.startswith(
        "its vjp failed on these operands: "
    )
    assert set(report.failed) == {"gradient"}
    assert "the plugin's own bug" in report.failed["gradient"]
    with pytest.raises(gb.PluginError, match="the plugin's own bug"):
        check_network(net)

    g = sigmoid_net("sigmoid").graph.copy()  # a second head, off the loss's path
    g.add_node("x2", op="input", shape=(None, 4))
    g.add_node("aside", op="mul")
    g.add_edges_from([("h", "aside", {"arg": 0}), ("x2", "aside", {"arg": 1})])
    net = gb.Network(g, loss=sigmoid_net("sigmoid").loss)
    aside = into(net, "aside")
    full = check_network(net, report=True)
    assert {full.edges[e].status for e in aside} == {"agree"}
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((4, 3)), "y": rng.standard_normal((4, 2))}  # no x2
    partial = check_network(net, inputs=inputs, report=True)
    assert {partial.edges[e].status for e in aside} == {"unchecked"}
    assert partial.edges[min(aside)].note.startswith("the forward pass to it failed: ")
    assert {c.status for e, c in partial.edges.items() if e not in aside} == {"agree"}


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
def test_a_rule_jax_cannot_compile_is_still_compared_with_jax_vjp(register: Any) -> None:
    class Branchy(WrongSigmoid):  # type: ignore[misc, valid-type]
        name = "t_branchy_sigmoid"

        def vjp(self, xp: Any, g: Any, out: Any, z: Any) -> Any:
            scale = 1.0 if float(xp.max(z)) < 1e9 else 0.0  # a Python branch on a value
            return (scale * g * out * (1 - out),)

    register(Branchy)
    report = check_network(sigmoid_net("t_branchy_sigmoid"), report=True)
    assert {c.status for c in report.edges.values()} == {"agree"}
    assert all(c.autodiff is not None and c.autodiff < 1e-12 for c in report.edges.values())


def test_a_causal_mask_of_minus_1e9_is_no_reason_to_blame_a_rule() -> None:
    """Masked attention scores: the −1e9 terms of ⟨g, out⟩ make its round-off, though they
    cancel in the sum (a bound from |⟨g, out⟩| alone blamed sub's right rule on some seeds)."""
    g = nx.DiGraph(loss="L")
    g.add_node("s", op="param", shape=(3, 2, 5, 5))
    g.add_node("mask", op="const", value=np.triu(np.full((5, 5), -1e9), 1))
    g.add_node("b", op="param", shape=(3, 2, 5, 1))
    for node, op in (("masked", "add"), ("d", "sub"), ("e", "exp"), ("L", "sum")):
        g.add_node(node, op=op)
    g.add_edges_from([("s", "masked", {"arg": 0}), ("mask", "masked", {"arg": 1})])
    g.add_edges_from([("masked", "d", {"arg": 0}), ("b", "d", {"arg": 1})])
    g.add_edges_from([("d", "e", {"arg": 0}), ("e", "L", {"arg": 0})])
    net = gb.Network(g)
    for seed in range(6):
        report = check_network(net, seed=seed, report=True)
        assert {c.status for c in report.edges.values()} == {"agree"}, (seed, report.lines())


class AddMaskWrong(gb.Op):
    """a + m whose rule is 3 times too large for a (and right for the mask m)."""

    name = "t_addmask_wrong"
    label = "+"
    local_grads = ("1", "1")

    def forward(self, xp: Any, a: Any, m: Any) -> Any:
        return a + m

    def vjp(self, xp: Any, g: Any, out: Any, a: Any, m: Any) -> Any:
        return (3 * g, g)


class Abs(gb.Op):
    """|x| with the rule g·sign(x): at 0, a slope between the kink's two sides."""

    name = "t_abs"
    label = "|x|"
    local_grads = ("sign x",)

    def forward(self, xp: Any, x: Any) -> Any:
        return xp.abs(x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> Any:
        return (g * xp.sign(x),)


def masked_net(op: str, fill: float) -> gb.Network:
    """x·W + a causal mask of ``fill`` (node s, by ``op``) → exp → Σ (·)²."""
    b = gb.Builder()
    z = b.input("x", (3, 4)) @ b.param("W", (4, 3))
    mask = b.const(np.where(np.tril(np.ones((3, 3))) > 0, 0.0, fill))
    p = b.op("exp", b.op(op, z, mask, name="s"))
    return b.network(b.op("sum", p * p, name="L"))


MASKS = [-1e9, -np.inf, float(np.finfo(np.float32).min)]


@pytest.mark.parametrize("fill", MASKS, ids=["-1e9", "-inf", "finfo.min"])
def test_a_wrong_rule_next_to_a_mask_is_red_with_its_error(register: Any, fill: float) -> None:
    """The masked entries are left out (not finite, or too large for a step to move): the
    others judge the rule, and the error reported is theirs (|3a − a| / 3a)."""
    register(AddMaskWrong)
    net = masked_net("t_addmask_wrong", fill)
    report = check_network(net, report=True)
    wrong_edge, mask_edge = sorted(into(net, "s"), key=lambda e: e.position)
    assert set(report.wrong) == {wrong_edge}, report.lines()
    assert report.edges[mask_edge].status == "agree"
    assert report.wrong_ops == {"t_addmask_wrong": ("s",)}
    check = report.edges[wrong_edge]
    assert check.differences == pytest.approx(2 / 3, rel=1e-6)
    assert "max error 0.67 vs finite differences" in report.lines()[0]
    right = check_network(masked_net("add", fill), report=True)
    assert {c.status for c in right.edges.values()} == {"agree"}, right.lines()
    assert not right.failed
    every = masked_net("t_addmask_wrong", fill)  # every entry masked: nothing to judge on
    every.graph.nodes["const1"]["value"] = np.full((3, 3), fill)
    masked = check_network(gb.Network(every.graph), report=True)
    assert {masked.edges[e].reason for e in into(every, "s")} == {NOT_FINITE}


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
@pytest.mark.parametrize("fill", MASKS, ids=["-1e9", "-inf", "finfo.min"])
def test_imported_attention_with_a_mask_reports_every_rule_right(fill: float) -> None:
    import jax
    import jax.numpy as jnp

    def attention(p: Any, x: Any) -> Any:
        s = (x @ p["q"]) @ (x @ p["k"]).T
        s = jnp.where(jnp.tril(jnp.ones((5, 5), bool)), s, fill)
        return jnp.sum(jax.nn.softmax(s, axis=-1) @ (x @ p["v"]) ** 2)

    rng = np.random.default_rng(0)
    p = {k: jnp.asarray(rng.standard_normal((4, 4)), jnp.float32) for k in "qkv"}
    net, params, inputs = gb.from_jax(attention, p, jnp.asarray(rng.standard_normal((5, 4))))
    report = check_network(net, params=params, inputs=inputs, report=True)
    assert not report.wrong and not report.failed, report.lines()
    assert all(c.reason == NO_GRADIENT for c in report.edges.values() if c.status == "unchecked")


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
def test_a_right_rule_at_a_kink_is_unchecked_though_jax_vjp_differs(register: Any) -> None:
    register(Abs)
    b = gb.Builder()
    a = b.op("t_abs", b.input("x", (None, 4)) @ b.param("W", (4, 4)), name="a")
    net = b.network(b.op("sum", a * a, name="L"))
    report = check_network(net, inputs={"x": np.zeros((2, 4))}, report=True)
    (edge,) = into(net, "a")
    check = report.edges[edge]
    assert (check.status, check.reason, check.autodiff) == ("unchecked", NOT_SMOOTH, 1.0)
    assert re.match(r"not smooth here, ∂/∂operand 0\[\d, \d\]: jax.vjp differs by 1$", check.note)
    assert not report.wrong and not report.failed
    off = check_network(net, report=True)  # x·W off 0: checked, and right
    assert off.edges[edge].status == "agree" and off.edges[edge].autodiff == 0.0


def test_graphbp_check_render_says_what_was_not_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """relu at exactly 0: the parameter's gradient fails, no rule is wrong, and the edge into
    relu is not judged; the message says so, never that every rule agrees."""
    from graphbp.cli import main

    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(3,), init=0.0)
    g.add_node("r", op="relu")
    g.add_node("L", op="sum")
    g.add_edges_from([("p", "r"), ("r", "L")])
    monkeypatch.chdir(tmp_path)
    gb.Network(g).to_json("net.json")
    assert main(["check", "net.json", "--render", "out.svg", "--backend", "numpy"]) == 1
    out, err = capsys.readouterr()
    assert "1 of 2 edges were not judged: 1 at a kink, where the forward is not smooth " in out
    assert err.endswith(
        "no op's vjp was found wrong at its node's values, but 1 of 2 edges were not judged: "
        "1 at a kink, where the forward is not smooth (node 'r') (grey in out.svg): the "
        "difference may come from one of those, or from the network as a whole\n"
    )
    assert "every op's vjp agrees" not in err
