"""The HTML page in a real headless browser (Debian's chromium, driven by chromedriver):
a click on a parameter highlights exactly its chain-rule paths and shows its formula."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from graphs import gradient_paths, leaky_where_graph, long_chain, scoped_blocks
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


# ------------------------------------------------------------ a page drawn by its groups


def _in_view(
    net: gb.Network, outline: Any, group: str, expanded: frozenset[str], wrt: Any, nx_paths: Any
) -> tuple[set[str], set[str]]:
    """What the page must highlight for ``wrt`` in ``group``'s view (the groups ``expanded``
    open), from networkx's paths and Outline.box: the ids of the nodes, boxes, edges and
    links on a path, drawn as that view draws them; and the ids of those edges between two
    drawn nodes that touch ``group`` (the view must draw them)."""
    members = set(outline.groups[group].members)
    ids, inner = set(), set()

    def drawn(item: Any) -> str:
        return str(item) if outline.is_group(item) else node_id(net, item)

    for path in nx_paths(net, wrt):
        for a, b, k in path:
            box_a, box_b = outline.box(a, expanded), outline.box(b, expanded)
            ids |= {drawn(box_a), drawn(box_b)}
            if box_a == box_b:
                continue
            if outline.is_group(box_a) or outline.is_group(box_b):
                ids.add(f"l{drawn(box_a)}_{drawn(box_b)}")
            else:
                ids.add(edge_id(net, Edge(a, b, k)))
                if a in members or b in members:
                    inner.add(edge_id(net, Edge(a, b, k)))
    return ids, inner


def _drawn_ids(browser: Any) -> set[str]:
    return set(browser.execute_script("return [...graph.querySelectorAll('[id]')].map(e => e.id)"))


def test_clicking_a_group_opens_it_and_the_highlighting_stays_networkx_s_paths(
    browser: Any, tmp_path: Path, nx_paths: Any
) -> None:
    """A page drawn by its groups: click a closed group → its nodes appear; a parameter's
    highlighting, in each view, is exactly networkx's paths drawn as that view draws them
    (nodes and edges inside the open group, their boxes and links outside); close again."""
    from selenium.webdriver.common.by import By

    from graphbp.outline import Outline
    from graphbp.views import page_views

    net = scoped_blocks(["enc", "mid", "dec"])
    outline = Outline(net)
    views = {view.group: view for view in page_views(outline)}
    page = gb.write_diagram(net, tmp_path / "groups.html", scopes="collapse")
    browser.get(page.as_uri())

    def check(group: str, wrt: Any) -> None:
        view = views[group]
        expanded = frozenset((*view.path, *view.opened))
        expected, inner = _in_view(net, outline, group, expanded, wrt, nx_paths)
        drawn = _drawn_ids(browser)
        assert inner <= drawn  # no edge inside the open group is missing from the drawing
        assert highlighted(browser) == expected & drawn, (group, wrt)
        shown = {n for n in net.order if node_id(net, n) in drawn}
        assert shown <= {n for n in net.order if outline.box(n, expanded) == n}
        assert shown >= {n for n in outline.groups[group].members if outline.box(n, expanded) == n}

    enc = outline.find("enc")
    assert enc is not None and enc in views
    members = [node_id(net, n) for n in outline.groups[enc].members]
    assert enc in _drawn_ids(browser) and not set(members) & _drawn_ids(browser)
    browser.find_element(By.ID, node_id(net, "shared")).click()  # a parameter at the top
    check(outline.root, "shared")
    browser.find_element(By.ID, enc).click()  # open enc: its nodes appear
    assert set(members) <= _drawn_ids(browser) and enc not in _drawn_ids(browser)
    check(enc, "shared")  # the selection carries over, drawn as this view draws it
    browser.find_element(By.ID, node_id(net, "W0")).click()  # a parameter inside enc
    check(enc, "W0")
    assert browser.find_element(By.ID, "formula").text.startswith(f"∂{net.loss}/∂W0 = ")
    trail = browser.find_elements(By.CSS_SELECTOR, "#trail button")
    assert [b.text for b in trail] == ["network", "enc"]
    browser.find_element(By.CSS_SELECTOR, f"#c{enc} text").click()  # close it again
    assert enc in _drawn_ids(browser) and not set(members) & _drawn_ids(browser)
    check(outline.root, "W0")
    dec = outline.find("dec")
    assert dec is not None
    browser.find_element(By.ID, dec).click()
    check(dec, "W0")  # W0's paths run through dec: its nodes on them are highlighted
    browser.find_elements(By.CSS_SELECTOR, "#trail button")[0].click()
    check(outline.root, "W0")
    browser.find_element(By.ID, "zoom").click()  # at the size dot drew it: wider than fitted
    assert "actual" in browser.find_element(By.ID, "graph").get_attribute("class")
    assert browser.get_log("browser") == []


def test_hostile_group_names_open_and_close_as_text_and_the_page_opens_on_wrt(
    browser: Any, tmp_path: Path, nx_paths: Any
) -> None:
    """Scope names are user text: every box and frame clicked, nothing runs and nothing
    navigates; the trail and hover texts are the names as text. A page given wrt opens on
    the view that draws it, highlighted."""
    from selenium.webdriver.common.by import By

    from graphbp.outline import Outline

    scopes = ["</template><script>window.pwned=1</script>", "<img src=x onerror=pwned=2>"]
    net = scoped_blocks(scopes, layers=5)
    outline = Outline(net)
    page = gb.write_diagram(net, tmp_path / "hostile.html", "W0", scopes="collapse")
    browser.get(page.as_uri())
    url = browser.current_url
    home = outline.group_of["W0"]
    while home not in {g for g in outline.groups if f'id="v{g}"' in page.read_text()}:
        home = outline.groups[home].parent  # (W0's group may open with its parent's view)
    assert node_id(net, "W0") in _drawn_ids(browser)
    assert "wrt" in browser.find_element(By.ID, node_id(net, "W0")).get_attribute("class")
    trail = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#trail button")]
    assert trail[-1] == outline.groups[home].name
    browser.find_elements(By.CSS_SELECTOR, "#trail button")[0].click()  # the top view
    clicked = 0
    for group in outline.groups:
        if group in _drawn_ids(browser):
            clicked += 1
            browser.find_element(By.ID, group).click()
            assert browser.current_url == url
            assert browser.execute_script("return window.pwned") is None
            trail = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#trail button")]
            assert trail[-1] == outline.groups[group].name
            hover = browser.execute_script(
                "return document.querySelector(`#c${arguments[0]} > title`).textContent", group
            )
            assert hover == outline.groups[group].name
            browser.find_element(By.CSS_SELECTOR, f"#c{group} text").click()  # close it
    assert clicked == len(scopes)  # each block's box, in the fold's frame
    assert browser.execute_script("return document.querySelectorAll('script').length") == 2
    assert browser.get_log("browser") == []


def test_a_group_left_out_of_the_page_names_the_command_that_draws_it(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    from graphbp import page as page_module
    from graphbp.outline import Outline

    net = long_chain(1_000)
    whole = page_module.page(net, scopes="collapse")
    monkeypatch.setattr(page_module, "PAGE_BYTES", len(whole.encode()) * 3 // 4)
    path = tmp_path / "part.html"
    path.write_text(page_module.page(net, scopes="collapse"))
    browser.get(path.as_uri())
    drawn = _drawn_ids(browser)
    left = [g for g in Outline(net).groups if g in drawn and f'id="v{g}"' not in path.read_text()]
    assert left  # a box on the first view whose own view was left out
    browser.find_element(By.ID, left[0]).click()
    assert _drawn_ids(browser) == drawn  # the view stays
    name = Outline(net).groups[left[0]].name
    command = page_module.GROUP_COMMAND.format(group=left[0])
    assert browser.find_element(By.ID, "missing").text == f"“{name}”: {command}"
    assert browser.get_log("browser") == []
