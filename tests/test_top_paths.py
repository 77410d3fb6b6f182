"""chain_rule(..., top=k): the k paths of the largest contribution norm, against brute force
(every path listed and sorted by norm) on random small graphs, against the known structure
of graphs with astronomically many paths, and drawn by render(..., top=k)."""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Hashable
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import pytest
from graphs import NETWORKS, example_inputs
from helpers import graphbp
from hypothesis import given
from hypothesis import strategies as st
from test_random_graphs import SETTINGS, moderate_example, random_networks
from test_render import _stroke, _svg_groups

import graphbp as gb
from graphbp.chain import MAX_PATHS_LIMIT, Edge
from graphbp.render import HIGHLIGHT, edge_id, node_id, run_dot, share_text
from graphbp.strongest import log_strength, norm, strongest


def forward(net: gb.Network, params: Any, inputs: Any) -> tuple[dict[Hashable, Any], Any]:
    """Every node's value and backprop's gradients."""
    prog = net.compile()
    return prog.forward(params, inputs, net.order), prog.value_and_grad(params, inputs)[1]


def brute_force(net: gb.Network, wrt: Hashable, values: Any) -> dict[tuple[Edge, ...], Any]:
    """Every path to ``wrt`` with its contribution, listed one by one."""
    rule = gb.chain_rule(net, wrt, values=values, max_paths=MAX_PATHS_LIMIT)
    assert rule.complete and rule.exact and rule.top is None
    whole = np.linalg.norm(rule.gradient)
    for path in rule.paths:  # every path listed: each gets its share of the gradient too
        part = np.linalg.norm(path.contribution)
        if whole:
            assert path.share == pytest.approx(part / whole)
        else:  # paths that cancel exactly: infinite shares, or NaN for 0 of 0
            assert path.share == (math.inf if part else pytest.approx(math.nan, nan_ok=True))
    return {p.edges: p.contribution for p in rule.paths}


def assert_strongest(rule: gb.ChainRule, every: dict[tuple[Edge, ...], Any], k: int) -> None:
    """``rule``'s paths are k distinct real paths whose norms are the k largest, in order."""
    norms = sorted((np.linalg.norm(c) for c in every.values()), reverse=True)
    got = [np.linalg.norm(p.contribution) for p in rule.paths]
    assert len(rule.paths) == min(k, len(every))
    assert len({p.edges for p in rule.paths}) == len(rule.paths)
    np.testing.assert_allclose(got, norms[:k], rtol=1e-12, atol=1e-300)
    for path in rule.paths:  # a real path, carrying the contribution listing gives it
        np.testing.assert_allclose(path.contribution, every[path.edges], rtol=1e-12, atol=0)
    assert rule.edges == {e for p in rule.paths for e in p.edges}
    assert rule.path_count == len(every) and rule.top == k


@SETTINGS
@given(net=random_networks(), seed=st.integers(0, 2**16), k=st.integers(1, 6))
def test_top_paths_are_the_strongest_of_every_path_listed(
    net: gb.Network, seed: int, k: int
) -> None:
    params, inputs = moderate_example(net, seed)
    values, grads = forward(net, params, inputs)
    for param in net.params:
        if not nx.has_path(net.graph, param, net.loss):
            continue
        every = brute_force(net, param, values)
        rule = gb.chain_rule(net, param, values=values, top=k)
        assert rule.exact  # every value here has at most 6 elements: every gain is probed
        assert_strongest(rule, every, k)
        np.testing.assert_allclose(rule.gradient, grads[param], rtol=1e-9, atol=1e-12)
        whole = np.linalg.norm(grads[param])
        for path in rule.paths:
            assert path.share is not None
            if whole > 1e-12:
                assert path.share == pytest.approx(np.linalg.norm(path.contribution) / whole)


@pytest.mark.parametrize("name", NETWORKS)
def test_top_paths_on_the_shared_graphs(name: str) -> None:
    """The seed network, a value used twice by one op (h·h: two paths of equal norm),
    broadcasting, softmax cross-entropy; and asking for more paths than there are."""
    net = gb.Network(NETWORKS[name]())
    prog = net.compile()
    params = prog.init(seed=3)
    values, _ = forward(net, params, example_inputs(net, np.random.default_rng(3)))
    for param in net.params:
        every = brute_force(net, param, values)
        for k in (1, 2, len(every), len(every) + 5):
            rule = gb.chain_rule(net, param, values=values, top=k)
            assert_strongest(rule, every, k)
            assert rule.exact


def test_ties_list_each_path_once() -> None:
    """L = sum(h·h), h = tanh(w): the two paths through h·h's operands have equal norms."""
    b = gb.Builder()
    w = b.param("w", (2,), init="normal")
    h = b.op("tanh", w)
    net = b.network(b.op("sum", h * h))
    values, _ = forward(net, net.compile().init(seed=0), {})
    rule = gb.chain_rule(net, "w", values=values, top=2)
    assert rule.exact and {p.edges[1].position for p in rule.paths} == {0, 1}
    np.testing.assert_array_equal(rule.paths[0].contribution, rule.paths[1].contribution)
    assert rule.paths[0].share == pytest.approx(0.5)


def scalar_residual_chain(blocks: int) -> tuple[gb.Network, dict[str, Any]]:
    """h₀ = x·w0, h_{i+1} = h_i + tanh(a_i·h_i), L = sum(h): 2^blocks paths from L to w0,
    each choosing per block the skip (factor 1) or the branch (factor tanh′(a_i·h_i)·a_i)."""
    b = gb.Builder()
    x = b.input("x", (1,))
    h = x * b.param("w0", (1,), init=1.0)
    for i in range(blocks):
        h = h + b.op("tanh", b.param(f"a{i}", (1,), init=1.0) * h)
    net = b.network(b.op("sum", h))
    rng = np.random.default_rng(blocks)
    params = {f"a{i}": rng.uniform(0.3, 2.5, (1,)) for i in range(blocks)}
    params["w0"] = np.array([0.1])
    return net, params


def k_largest_products(factors: list[tuple[float, float]], k: int) -> list[float]:
    """The k largest products choosing one factor of each pair (all positive): k-best lists
    merged block by block, never all 2^n products."""
    best = [1.0]
    for a, b in factors:
        best = heapq.nlargest(k, [p * a for p in best] + [p * b for p in best])
    return best


def test_an_astronomical_number_of_paths_against_the_known_structure() -> None:
    blocks, k = 80, 7
    net, params = scalar_residual_chain(blocks)
    values, grads = forward(net, params, {"x": np.array([1.5])})
    rule = gb.chain_rule(net, "w0", values=values, top=k)
    assert rule.path_count == 2**blocks and rule.exact
    # per block, the skip passes the cotangent on unchanged, the branch times tanh′(a·h)·a
    pairs = []
    for i in range(blocks):
        a, h = params[f"a{i}"][0], float(np.ravel(values[_operand(net, f"a{i}")])[0])
        pairs.append((1.0, abs((1 - np.tanh(a * h) ** 2) * a)))
    want = [1.5 * p for p in k_largest_products(pairs, k)]  # ∂h₀/∂w0 = x = 1.5
    got = [np.linalg.norm(p.contribution) for p in rule.paths]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # the strongest path takes, block by block, the larger factor
    branches = {i for i, (skip, branch) in enumerate(pairs) if branch > skip}
    assert _branches_taken(net, rule.paths[0], blocks) == branches
    np.testing.assert_allclose(rule.gradient, grads["w0"], rtol=1e-9)


def _operand(net: gb.Network, param: str) -> Hashable:
    """The value a block's parameter multiplies (h_i)."""
    (other,) = (a for a in net.operands[_mul(net, param)] if a != param)
    return other


def _mul(net: gb.Network, param: str) -> Hashable:
    """The node that multiplies a block's parameter by h_i."""
    (mul,) = net.graph.successors(param)
    return mul


def _branches_taken(net: gb.Network, path: gb.chain.Path, blocks: int) -> set[int]:
    """The blocks whose tanh branch ``path`` runs through."""
    nodes = set(path.nodes)
    return {i for i in range(blocks) if _mul(net, f"a{i}") in nodes}


def test_a_deep_vector_residual_network_is_searched_exactly() -> None:
    """80 residual blocks h + 0.3·tanh(h·W_i) of width 4 (2^80 paths): exact, and no path
    among the first 2,000 listed is stronger than the strongest found."""
    b = gb.Builder()
    h = b.input("x", (2, 4)) @ b.param("W0", (4, 4), init="normal")
    for i in range(80):
        h = h + 0.3 * b.op("tanh", h @ b.param(f"W{i + 1}", (4, 4), init="normal"))
    net = b.network(b.op("sum", h * h))
    prog = net.compile()
    x = np.random.default_rng(0).standard_normal((2, 4))
    values, grads = forward(net, prog.init(seed=1), {"x": x})
    rule = gb.chain_rule(net, "W0", values=values, top=3)
    assert rule.exact and rule.path_count == 2**81  # h·h: each path through both operands
    listed = gb.chain_rule(net, "W0", values=values, max_paths=2000)
    strongest = np.linalg.norm(rule.paths[0].contribution)
    third = np.linalg.norm(rule.paths[2].contribution)
    assert all(np.linalg.norm(p.contribution) <= strongest * (1 + 1e-12) for p in listed.paths)
    stronger = [p for p in listed.paths if np.linalg.norm(p.contribution) > third * (1 + 1e-12)]
    assert {p.edges for p in stronger} <= {p.edges for p in rule.paths}
    np.testing.assert_allclose(rule.gradient, grads["W0"], rtol=1e-9)


def test_diamonds_of_two_to_the_sixty_paths_against_their_closed_form() -> None:
    """Diamond i passes v through tanh or σ: a path's contribution is, element by element,
    the product of the derivatives it chose. The strongest path found beats every path that
    differs from it in one or two diamonds (1,831 of them, computed in closed form), and the
    k found have the closed-form norms of their choices."""
    k, n = 60, 4
    net = gb.Network(gb.diamond_chain(k))
    values, grads = forward(net, net.compile().init(seed=0), {})
    rule = gb.chain_rule(net, "w", values=values, top=n)
    assert rule.exact and rule.path_count == 2**k
    tanh = np.array([1 - values[f"a{i}"] ** 2 for i in range(1, k + 1)])  # (k, 3)
    sigma = np.array([values[f"b{i}"] * (1 - values[f"b{i}"]) for i in range(1, k + 1)])

    def closed_form(choice: np.ndarray) -> float:  # choice[i]: diamond i+1 through tanh
        return float(np.linalg.norm(np.prod(np.where(choice[:, None], tanh, sigma), axis=0)))

    choices = [np.array([f"a{i}" in p.nodes for i in range(1, k + 1)]) for p in rule.paths]
    got = [np.linalg.norm(p.contribution) for p in rule.paths]
    np.testing.assert_allclose(got, [closed_form(c) for c in choices], rtol=1e-9)
    assert got == sorted(got, reverse=True)
    best = choices[0]
    for i in range(k):
        for j in range(i, k):
            other = best.copy()
            other[[i, j]] ^= True
            assert closed_form(other) <= got[0] * (1 + 1e-9)
    whole = np.linalg.norm(grads["w"])
    assert [p.share for p in rule.paths] == pytest.approx([g / whole for g in got])


def test_values_too_large_to_probe_give_an_estimate() -> None:
    """A batch of 40 rows of width 3 (120 elements, beyond PROBE_LIMIT): gains are estimated,
    exact is False, and the paths found are still real paths in order of norm."""
    net = gb.Network(NETWORKS["reuse"]())
    prog = net.compile()
    params = prog.init(seed=1)
    values, _ = forward(net, params, example_inputs(net, np.random.default_rng(1), batch=40))
    every = brute_force(net, "W", values)
    rule = gb.chain_rule(net, "W", values=values, top=3)
    assert not rule.exact
    norms = [np.linalg.norm(p.contribution) for p in rule.paths]
    assert norms == sorted(norms, reverse=True) and len(rule.paths) == 3
    for path in rule.paths:
        np.testing.assert_allclose(path.contribution, every[path.edges], rtol=1e-12)


def test_a_spent_budget_completes_the_best_paths_greedily() -> None:
    net = gb.Network(gb.diamond_chain(12))
    values, _ = forward(net, net.compile().init(seed=0), {})
    rule = gb.chain_rule(net, "w", values=values, top=5, max_expansions=3)
    assert not rule.exact and len(rule.paths) == 5
    norms = [np.linalg.norm(p.contribution) for p in rule.paths]
    assert norms == sorted(norms, reverse=True)
    full = gb.chain_rule(net, "w", values=values, top=5)
    assert full.exact and norms[0] <= np.linalg.norm(full.paths[0].contribution)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top": 0}, r"top=0: ask for the 1 to 10,000 strongest paths"),
        ({"top": -2}, r"top=-2: ask for the 1 to 10,000"),
        ({"top": 10_001}, r"top=10,001: ask for"),
        ({"top": 2.0}, r"top=2\.0: ask for .* \(an integer\)"),
        ({"top": True}, r"top=True: ask for"),
        ({"top": "3"}, r"top='3': ask for"),
        ({"top": 3, "max_expansions": 0}, r"max_expansions=0: the search needs a positive"),
    ],
)
def test_bad_top_options_are_refused(options: dict[str, Any], message: str) -> None:
    net = gb.Network(gb.diamond_chain(3))
    values, _ = forward(net, net.compile().init(seed=0), {})
    with pytest.raises(gb.InputError, match=message):
        gb.chain_rule(net, "w", values=values, **options)
    if "max_expansions" not in options:
        with pytest.raises(gb.InputError, match=message):
            gb.render(net, "w", values=values, **options)


def test_top_needs_values_and_a_parameter() -> None:
    net = gb.Network(gb.diamond_chain(3))
    with pytest.raises(gb.InputError, match=r"top=2 ranks paths .* pass values=prog\.forward"):
        gb.chain_rule(net, "w", top=2)
    with pytest.raises(gb.InputError, match=r"top=2 ranks paths .* needs the forward values"):
        gb.render(net, "w", top=2)
    values, _ = forward(net, net.compile().init(seed=0), {})
    with pytest.raises(gb.InputError, match=r"top=2 highlights .* pass wrt="):
        gb.render(net, values=values, top=2)


def test_render_highlights_only_the_top_paths_and_captions_their_shares() -> None:
    net = gb.Network(gb.diamond_chain(8))
    values, grads = forward(net, net.compile().init(seed=0), {})
    rule = gb.chain_rule(net, "w", values=values, top=3)
    drawing = gb.render(net, "w", values=values, top=3)
    svg = run_dot(drawing.source, "svg")
    on = {e for p in rule.paths for e in p.edges}
    hot = {i for i, group in _svg_groups(svg, "edge").items() if _stroke(group) == HIGHLIGHT}
    assert hot == {edge_id(net, e) for e in on}
    assert len(on) < len(gb.chain_rule(net, "w").edges)  # not every path's edges
    hot_nodes = {i for i, group in _svg_groups(svg, "node").items() if _stroke(group) == HIGHLIGHT}
    assert hot_nodes == {node_id(net, n) for p in rule.paths for n in p.nodes}
    whole = np.linalg.norm(grads["w"])
    for k, path in enumerate(rule.paths, start=1):
        percent = 100 * np.linalg.norm(path.contribution) / whole
        shown = f"{percent:.0f}%" if percent >= 9.5 else f"{percent:.2g}%"
        assert f"path {k}: {shown} of ‖∂L/∂w‖" in drawing.source
    assert "the 3 strongest of 256 paths by ‖contribution‖, highlighted (exact)" in drawing.source


def test_write_diagram_refuses_top_for_the_html_page(tmp_path: Any) -> None:
    net = gb.Network(gb.diamond_chain(3))
    values, _ = forward(net, net.compile().init(seed=0), {})
    with pytest.raises(gb.InputError, match=r"the \.html page highlights every path"):
        gb.write_diagram(net, tmp_path / "d.html", "w", values=values, top=2)
    assert not list(tmp_path.iterdir())
    path = gb.write_diagram(net, tmp_path / "d.svg", "w", values=values, top=2)
    assert "path 1: " in path.read_text()


def test_the_command_line_ranks_paths_at_a_folders_values(tmp_path: Any) -> None:
    """graphbp explain/render DIR --wrt W --top K read DIR's params.npz and inputs.npz."""
    net = gb.Network(NETWORKS["reuse"]())
    params = net.compile().init(seed=5)
    inputs = example_inputs(net, np.random.default_rng(5))
    folder = tmp_path / "model"
    folder.mkdir()
    net.to_json(folder / "network.json")
    np.savez(folder / "params.npz", **params)
    np.savez(folder / "inputs.npz", **{str(k): v for k, v in inputs.items()})
    values, _ = forward(net, params, inputs)
    rule = gb.chain_rule(net, "W", values=values, top=3)
    shares = [share_text(p.share) for p in rule.paths]
    done = graphbp("explain", str(folder), "--wrt", "W", "--top", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"at {folder / 'params.npz'} and {folder / 'inputs.npz'}" in done.stdout
    assert "the 3 strongest of 4 paths, exact:" in done.stdout
    for k, share in enumerate(shares, start=1):
        assert f"  path {k}: {share} of ‖∂L/∂W‖" in done.stdout
    done = graphbp("render", str(folder), "--wrt", "W", "--top", "2", "-o", "t.svg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    svg = (tmp_path / "t.svg").read_bytes()
    hot = {i for i, group in _svg_groups(svg, "edge").items() if _stroke(group) == HIGHLIGHT}
    assert hot == {edge_id(net, e) for p in rule.paths[:2] for e in p.edges}
    assert f"path 2: {shares[1]} of ‖∂L/∂W‖".encode() in svg


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["render", "--top", "2", "-o", "t.svg"], "--top 2 finds the strongest paths .* add --wrt"),
        (["explain", "--top", "2"], "--top 2 finds the strongest paths .* add --wrt"),
        (["explain", "--wrt", "W1", "--top", "0"], "finds the 1 to 10,000 strongest paths, got 0"),
        (["render", "--wrt", "W1", "--top", "x"], "argument --top: invalid"),
    ],
)
def test_the_command_line_refuses_a_bad_top(tmp_path: Any, args: list[str], message: str) -> None:
    done = graphbp(*args, cwd=tmp_path)
    assert done.returncode == 2 and re.search(message, done.stderr), done.stderr
    assert not list(tmp_path.iterdir())


def test_the_command_line_ranks_the_seed_networks_paths_at_initial_values(tmp_path: Any) -> None:
    done = graphbp("explain", "--wrt", "W1", "--top", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "at initial parameters (seed 0) and standard-normal inputs (seed 0)" in done.stdout
    assert "  path 1: 100% of ‖∂L/∂W1‖" in done.stdout  # the seed network: one path


def test_a_path_carrying_nan_counts_as_the_strongest() -> None:
    """A NaN in one branch's value (a1 = tanh(w)): the path through it is listed first."""
    net = gb.Network(gb.diamond_chain(2))
    values, _ = forward(net, net.compile().init(seed=0), {})
    values["a1"] = np.array([np.nan, 0.5, 0.5])
    rule = gb.chain_rule(net, "w", values=values, top=1)
    assert "a1" in rule.paths[0].nodes and np.isnan(rule.paths[0].contribution).any()
    top3 = gb.chain_rule(net, "w", values=values, top=4)
    assert [("a1" in p.nodes) for p in top3.paths] == [True, True, False, False]


def test_paths_through_opaque_nodes_pulled_by_jax() -> None:
    """Opaque nodes (scan, cond: no NumPy vjp) are pulled through by jax.vjp, compiled once
    per node; the strongest paths still match brute force."""
    pytest.importorskip("jax")
    from test_from_jax import _control_args, control_flow_loss

    net, params, inputs = gb.from_jax(control_flow_loss, *_control_args(np.float64))
    values = net.compile("jax").forward(params, inputs, net.order)
    for wrt in ("w", "s"):
        every = brute_force(net, wrt, values)
        rule = gb.chain_rule(net, wrt, values=values, top=2)
        assert rule.exact and any("scan" in str(n) for p in every for e in p for n in e[:2])
        assert_strongest(rule, every, 2)


def test_the_command_line_names_a_bad_wrt_before_computing_values(tmp_path: Any) -> None:
    done = graphbp("explain", "--wrt", "h1", "--top", "2", cwd=tmp_path)
    assert done.returncode == 2 and "wrt='h1' is not a parameter" in done.stderr
    assert done.stdout == ""


class _Step(NamedTuple):
    source: str
    target: str
    gain: float


def test_paths_come_back_strongest_first_even_when_bounds_are_estimates() -> None:
    """Bounds below the truth (as estimated gains may be) take the weaker path first while
    the budget holds: the paths are still returned sorted by norm, NaN first."""
    down = {
        "L": [_Step("a", "L", 1.0), _Step("b", "L", 1.0), _Step("c", "L", 1.0)],
        "a": [_Step("w", "a", 3.0)],
        "b": [_Step("w", "b", 2.0)],
        "c": [_Step("w", "c", math.nan)],
    }
    guessed = {"L": 0.0, "a": math.log(1.0), "b": math.log(2.0), "c": -50.0}  # a's is too low

    def pull(step: _Step, g: Any) -> Any:
        return g * step.gain

    def log_bound(node: Hashable, g: Any) -> float:
        return log_strength(norm(g)) + guessed[node]

    found, exact = strongest("L", "w", np.ones(()), down, pull, log_bound, 3, 100)
    assert exact  # the budget held: only the bounds were wrong
    assert [f.edges[0].source for f in found] == ["c", "a", "b"]
    assert math.isnan(found[0].norm) and [f.norm for f in found[1:]] == [3.0, 2.0]


def ties(blocks: int, tanh: bool) -> tuple[gb.Network, dict[Hashable, Any]]:
    """h = tanh(h) + tanh(h) (or h + h) ``blocks`` times: 2^blocks paths of one norm."""
    b = gb.Builder()
    h = b.input("x", (3,)) * b.param("W", (3,), init="normal")
    for _ in range(blocks):
        h = b.op("tanh", h) + b.op("tanh", h) if tanh else h + h
    net = b.network(b.op("sum", h))
    prog = net.compile()
    return net, prog.forward(prog.init(seed=0), {"x": np.ones(3)}, net.order)


@pytest.mark.parametrize(("blocks", "tanh"), [(40, True), (60, False)])
def test_paths_of_equal_strength_are_found_one_dive_at_a_time(blocks: int, tanh: bool) -> None:
    """2^40 or 2^60 paths all of one norm: a search that took equal paths breadth-first would
    spend any budget; diving, the 3 paths are exact within a few hundred vjps."""
    net, values = ties(blocks, tanh)
    rule = gb.chain_rule(net, "W", values=values, top=3, max_expansions=20 * blocks)
    assert rule.exact and rule.path_count == 2**blocks and len(rule.paths) == 3
    assert len({p.edges for p in rule.paths}) == 3
    whole = np.linalg.norm(rule.gradient)
    for path in rule.paths:  # each path carries 1/2^blocks of the gradient
        assert path.share == pytest.approx(2.0**-blocks, rel=1e-9)
        np.testing.assert_allclose(np.linalg.norm(path.contribution), whole / 2**blocks)


def test_ties_against_brute_force() -> None:
    net, values = ties(12, True)
    every = brute_force(net, "W", values)
    rule = gb.chain_rule(net, "W", values=values, top=5, max_expansions=1_000)
    assert rule.exact
    assert_strongest(rule, every, 5)


@pytest.mark.parametrize("max_factors", [0, 5, 20, 300_000])
def test_max_factors_never_cuts_the_top_paths(max_factors: int) -> None:
    """max_factors bounds the terms the formula writes, not the strongest paths found."""
    net = gb.Network(gb.diamond_chain(4))
    values, _ = forward(net, net.compile().init(seed=0), {})
    every = brute_force(net, "w", values)
    rule = gb.chain_rule(net, "w", values=values, top=3, max_factors=max_factors)
    assert rule.exact and len(rule.paths) == 3
    assert_strongest(rule, every, 3)
    written = min(3, max_factors // 9)  # each path has 9 factors
    if written:  # "a + b + … (13 more paths)": a term and its " + " each
        assert rule.text.count(" + ") == written
        assert rule.text.endswith(f" + … ({16 - written} more paths)")
    else:
        assert rule.text.endswith(" = … (16 paths, too long to list)")


def test_numpy_integers_are_a_top() -> None:
    net = gb.Network(gb.diamond_chain(3))
    values, _ = forward(net, net.compile().init(seed=0), {})
    want = gb.chain_rule(net, "w", values=values, top=3)
    for top in (np.int64(3), np.uint8(3), np.int32(3)):
        rule = gb.chain_rule(net, "w", values=values, top=top)
        assert rule.top == 3 and type(rule.top) is int
        assert [p.edges for p in rule.paths] == [p.edges for p in want.paths]
        assert "the 3 strongest of 8 paths" in gb.render(net, "w", values=values, top=top).source
    for bad in (np.bool_(True), np.int64(0), np.float64(3.0)):
        with pytest.raises(gb.InputError, match=r"top=.*: ask for the 1 to 10,000 strongest"):
            gb.chain_rule(net, "w", values=values, top=bad)


@pytest.mark.parametrize("top", [None, 2])
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"h1": np.ones((5, 5))}, r"values\['h1'\] has shape \(5, 5\); node 'h1' \(op 'dense'\) "
         r"has one of shape \(None, 4\)"),
        ({"h1": None}, r"values\['h1'\] = None is not an array of real numbers; node 'h1' "
         r"\(op 'dense'\) needs one of shape \(None, 4\)"),
        ({"h1": "abc"}, r"values\['h1'\] = 'abc' \(a str\) is not an array of real numbers"),
        ({"h1": np.array([{}], dtype=object)}, r"\(an object array\) is not an array of real"),
        ({"h1": np.ones((2, 4)) + 1j}, r"\(a complex128 array\) is not an array of real"),
        ({"W1": [[1, 2], [3]]}, r"values\['W1'\] = \[\[1, 2\], \[3\]\] \(a list\) is not an"),
    ],
)  # fmt: skip
def test_bad_values_are_named_up_front(top: int | None, bad: dict[str, Any], message: str) -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    prog = net.compile()
    inputs = {"x": np.ones((2, 3)), "y": np.ones((2, 1))}
    values = prog.forward(prog.init(seed=0), inputs, net.order)
    with pytest.raises(gb.InputError, match=message + r".*: pass values=prog\.forward"):
        gb.chain_rule(net, "W1", values={**values, **bad}, top=top)
    with pytest.raises(gb.InputError, match=r"values=\[1, 2\] \(a list\) is not a mapping"):
        gb.chain_rule(net, "W1", values=[1, 2], top=top)  # type: ignore[arg-type]
    # float32 and integer values, and NaN, are values
    gb.chain_rule(net, "W1", values={k: np.asarray(v, np.float32) for k, v in values.items()})
    gb.chain_rule(net, "W1", values={**values, "h1": np.full((2, 4), np.nan)}, top=top)


def test_an_unhashable_wrt_is_an_input_error() -> None:
    net = gb.Network(gb.seed_network(3, 4, 1))
    with pytest.raises(gb.InputError, match=r"wrt=\['W1'\] \(a list\) cannot name a node: pass "
                       r"one parameter's name, one of 'W1', 'b1'"):  # fmt: skip
        gb.chain_rule(net, ["W1"])  # type: ignore[arg-type]
    with pytest.raises(gb.InputError, match=r"wrt=\['W1'\] \(a list\) cannot name a node"):
        gb.render(net, ["W1"])  # type: ignore[arg-type]


def test_the_command_line_refuses_top_for_a_page_before_computing_values(tmp_path: Any) -> None:
    done = graphbp("render", "--wrt", "W1", "--top", "2", "-o", "t.html", cwd=tmp_path)
    assert done.returncode == 2 and "t.html: top=2 highlights the strongest" in done.stderr
    assert done.stdout == "" and not list(tmp_path.iterdir())
