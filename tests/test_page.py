"""The HTML page in a real headless browser (Debian's chromium, driven by chromedriver):
a click on a parameter highlights exactly its chain-rule paths and shows its formula."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from graphs import gradient_paths, leaky_where_graph
from helpers import CHROMEDRIVER, CHROMIUM, highlighted

import graphbp as gb
from graphbp.chain import Edge
from graphbp.render import edge_id, node_id

pytestmark = [
    pytest.mark.skipif(
        shutil.which("dot") is None,
        reason="Graphviz's dot executable is not installed (apt-get install graphviz)",
    ),
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="no headless browser (apt-get install chromium chromium-driver)",
    ),
]


def _expected(net: gb.Network, wrt: Any, nx_paths: Any) -> set[str]:
    paths = nx_paths(net, wrt)
    edges = {edge_id(net, Edge(a, b, k)) for p in paths for a, b, k in p}
    nodes = {node_id(net, n) for p in paths for e in p for n in e[:2]}
    return edges | nodes


def test_clicking_a_parameter_highlights_its_paths_and_shows_its_formula(
    browser: Any, tmp_path: Path, nx_paths: Any
) -> None:
    from selenium.webdriver.common.by import By

    net = gb.Network(gb.seed_network(3, 4, 1))
    page = gb.write_diagram(net, tmp_path / "seed.html")
    browser.get(page.as_uri())
    assert highlighted(browser) == set()  # nothing selected yet
    browser.find_element(By.ID, node_id(net, "W1")).click()
    assert highlighted(browser) == _expected(net, "W1", nx_paths)
    formula = browser.find_element(By.ID, "formula").text
    assert formula.replace("\n", "") == "∂L/∂W1 = ∂L/∂ŷ · ∂ŷ/∂h2 · ∂h2/∂h1 · ∂h1/∂W1"
    browser.find_element(By.ID, node_id(net, "b3")).click()  # another parameter: replaces it
    assert highlighted(browser) == _expected(net, "b3", nx_paths)
    assert browser.find_element(By.ID, "formula").text.startswith("∂L/∂b3 = ∂L/∂ŷ · ∂ŷ/∂b3")
    assert browser.get_log("browser") == []  # no script errors


def test_the_page_opens_on_wrt_with_contributions_and_several_paths(
    browser: Any, tmp_path: Path, nx_paths: Any
) -> None:
    from selenium.webdriver.common.by import By

    net = gb.Network(gb.diamond_chain(3))
    prog = net.compile()
    params = prog.init(0)
    values = prog.forward(params, {}, net.order)
    _, grads = prog.value_and_grad(params, {})
    page = gb.write_diagram(net, tmp_path / "d.html", wrt="w", values=values, grads=grads)
    browser.get(page.as_uri())
    assert highlighted(browser) == _expected(net, "w", nx_paths)
    assert browser.find_element(By.ID, "formula").text.count(" + ") == 7  # 2³ paths
    contributions = browser.find_element(By.ID, "contributions").text
    assert len(re.findall(r"^path \d+: ", contributions, re.M)) == 8
    assert "sum of the paths" in contributions
    assert "∂L/∂w ‖·‖=" in browser.find_element(By.ID, node_id(net, "w")).text


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    text = gb.write_diagram(gb.Network(gb.seed_network(3, 4, 1)), tmp_path / "p.html").read_text()
    assert "<svg" in text and "<script src" not in text and "<link" not in text
    assert not re.search(r"""(src|href)=["']https?:""", text)


def test_clicking_a_parameter_highlights_no_edge_gradient_does_not_flow_along(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    net = gb.Network(leaky_where_graph())  # where(z > t, z, 0.1·z): the predicate has no gradient
    page = gb.write_diagram(net, tmp_path / "leaky.html")
    browser.get(page.as_uri())
    browser.find_element(By.ID, node_id(net, "w")).click()
    paths = gradient_paths(net, "w")
    assert len(paths) < len(gradient_paths(net, "w", every_edge=True))
    assert highlighted(browser) == {edge_id(net, Edge(a, b, k)) for p in paths for a, b, k in p} | {
        node_id(net, n) for p in paths for e in p for n in e[:2]
    }
    assert edge_id(net, Edge("above", "h", 0)) not in highlighted(browser)
    assert browser.get_log("browser") == []
