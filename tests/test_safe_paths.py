"""The analysis scales linearly: chain_rule, explain --wrt and render --wrt on chains of
100,000 nodes, work that at most doubles when the chain doubles (counted, never timed),
max_paths bounded, and path counts exact far beyond what could be listed."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from graphs import chain
from helpers import graphbp

import graphbp as gb
from graphbp.chain import MAX_PATHS_LIMIT, symbol
from graphbp.page import page


def sigmoid_chain(n: int) -> gb.Network:
    """p → 0 → 1 → ... → n-1 (sigmoids) → L = sum."""
    return gb.Network(chain(["sigmoid"] * n))


def test_a_100000_node_chain_is_written_out_whole_without_recursion() -> None:
    n = 100_000
    net = sigmoid_chain(n)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # nothing may recurse along the chain
    try:
        rule = gb.chain_rule(net, "p")
        cost = gb.explain(net)
    finally:
        sys.setrecursionlimit(limit)
    assert rule.path_count == 1 and rule.complete
    (path,) = rule.paths
    assert path.nodes == ("L", *range(n - 1, -1, -1), "p")
    assert rule.text.count(" · ") == n  # n + 1 factors
    assert rule.text.startswith(f"∂L/∂p = ∂L/∂{n - 1} · ∂{n - 1}/∂{n - 2} · ")
    assert rule.text.endswith(" · ∂1/∂0 · ∂0/∂p")
    assert rule.nodes == frozenset(net.order)
    assert cost.per_param == {"p": (1, n + 1)}


def test_path_contributions_on_a_long_chain_add_up_to_backprop() -> None:
    net = sigmoid_chain(3000)
    prog = net.compile()
    params = {"p": np.array([0.5, -1.0, 2.0])}
    values = prog.forward(params, {}, net.order)
    _, grads = prog.value_and_grad(params, {})
    rule = gb.chain_rule(net, "p", values=values)
    np.testing.assert_allclose(rule.gradient, grads["p"], rtol=1e-12)


def test_the_command_line_explains_a_long_chain(tmp_path: Path) -> None:
    n = 20_000
    sigmoid_chain(n).to_json(tmp_path / "long.json")
    done = graphbp("explain", "long.json", "--wrt", "p", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    formula = next(line for line in done.stdout.splitlines() if line.startswith("∂L/∂p = "))
    assert formula.count(" · ") == n


# ------------------------------------------------------------------- counted work


def work(fn: Callable[[], Any]) -> int:
    """The Python and C function calls ``fn()`` makes: a deterministic measure of work."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    symbol.cache_clear()  # the same count on every run, whatever was drawn before
    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


ANALYSES: dict[str, Callable[[gb.Network], Any]] = {
    "chain_rule": lambda net: gb.chain_rule(net, "p").text,
    "explain": lambda net: str(gb.explain(net)),
    "render --wrt": lambda net: gb.render(net, wrt="p").source,
    "render --scopes collapse": lambda net: gb.render(net, wrt="p", scopes="collapse").source,
}


@pytest.mark.parametrize("analysis", ANALYSES)
def test_work_grows_linearly_with_the_chain(analysis: str) -> None:
    """Four times the chain costs at most about four times the calls (a quadratic step
    would cost sixteen): counted with a profiler hook, so the test cannot be flaky."""
    run = ANALYSES[analysis]
    run(sigmoid_chain(10))  # imports and caches outside the count
    small, large = sigmoid_chain(1000), sigmoid_chain(4000)
    w_small, w_large = work(lambda: run(small)), work(lambda: run(large))
    assert w_large <= 4.4 * w_small, (w_small, w_large)


def test_work_grows_linearly_with_the_paths_listed() -> None:
    """On 2^40 paths, listing 4× more paths costs at most about 4× the calls."""
    net = gb.Network(gb.diamond_chain(40))
    gb.chain_rule(net, "w", max_paths=2)
    few = work(lambda: gb.chain_rule(net, "w", max_paths=250))
    many = work(lambda: gb.chain_rule(net, "w", max_paths=1000))
    assert many <= 4.4 * few, (few, many)


# ------------------------------------------------------------------- max_paths, counts


@pytest.mark.parametrize(
    "bad",
    [0, -1, MAX_PATHS_LIMIT + 1, 10**5000, True, 2.0, "3", None],
    ids=lambda v: type(v).__name__,
)
def test_max_paths_outside_its_bound_is_an_input_error(bad: Any) -> None:
    net = gb.Network(gb.diamond_chain(3))
    for call in (
        lambda: gb.chain_rule(net, "w", max_paths=bad),
        lambda: gb.render(net, wrt="w", max_paths=bad),
        lambda: page(net, "w", max_paths=bad),
    ):
        with pytest.raises(gb.InputError, match=r"max_paths=.*from 1 to 10,000 paths"):
            call()


@pytest.mark.parametrize("value", ["10001", "99999999999999999999999", "0"])
def test_max_paths_outside_its_bound_is_one_line_and_exit_2(value: str, tmp_path: Path) -> None:
    done = graphbp("render", "--max-paths", value, "-o", "g.svg", cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "--max-paths" in done.stderr
    assert "10,000" in done.stderr or "at least 1" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_max_paths_at_its_bound_lists_that_many_and_counts_the_rest() -> None:
    k = 14  # 2^14 = 16,384 paths
    rule = gb.chain_rule(gb.Network(gb.diamond_chain(k)), "w", max_paths=MAX_PATHS_LIMIT)
    assert len(rule.paths) == MAX_PATHS_LIMIT and rule.path_count == 2**k
    assert len({p.edges for p in rule.paths}) == MAX_PATHS_LIMIT
    assert rule.text.endswith(f" + … ({2**k - MAX_PATHS_LIMIT:,} more paths)")


def test_two_to_the_200_paths_are_listed_up_to_max_paths_and_counted_exactly() -> None:
    k = 200
    net = gb.Network(gb.diamond_chain(k))
    rule = gb.chain_rule(net, "w", max_paths=100)
    assert rule.path_count == 2**k and not rule.complete
    assert len(rule.paths) == 100 and len({p.edges for p in rule.paths}) == 100
    for path in rule.paths:  # each a real path: from the loss down to w, edge to edge
        assert len(path.edges) == 2 * k + 1
        assert path.edges[0].target == "L" and path.edges[-1].source == "w"
        assert all(a.source == b.target for a, b in zip(path.edges, path.edges[1:], strict=False))
    assert rule.text.endswith(f" + … ({2**k - 100:,} more paths)")
    assert len(rule.edges) == 4 * k + 1  # every edge is on some path
    cost = gb.explain(net)
    assert cost.per_param["w"] == (2**k, (2 * k + 1) * 2**k)  # the builder's own formula
    assert f"{2**k:,} paths" in str(cost)


def test_a_count_too_long_to_print_is_written_approximately() -> None:
    """2^15000 paths: 4,516 digits, more than Python writes as decimal text."""
    k = 15_000
    net = gb.Network(gb.diamond_chain(k))
    rule = gb.chain_rule(net, "w", max_paths=1)
    assert rule.path_count == 2**k
    mantissa, exponent = f"{Decimal(2) ** k - 1:.2e}".split("e+")  # Decimal: any size
    approx = f"≈{mantissa}×10^{int(exponent):,}"
    assert rule.text.endswith(f" + … ({approx} more paths)")
    assert f"{approx} paths" in str(gb.explain(net))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_long_paths_and_many_paths_draw_with_a_bounded_caption(tmp_path: Path) -> None:
    """Graphviz reads at most 16,384 bytes of one label: the caption elides the middle of
    a long path and lists only the paths that fit, counting the rest."""
    text = gb.write_diagram(sigmoid_chain(2000), tmp_path / "chain.svg", wrt="p").read_text()
    assert "∂L/∂p = ∂L/∂1999 · " in text and "(1,990 more factors)" in text
    net = gb.Network(gb.diamond_chain(14))
    prog = net.compile()
    values = prog.forward(prog.init(0), {}, net.order)
    svg = gb.write_diagram(
        net, tmp_path / "d.svg", wrt="w", values=values, max_paths=MAX_PATHS_LIMIT
    ).read_text()
    written = re.search(r"(\d[\d,]*) of 16,384 paths listed", svg)
    assert written is not None and 1 <= int(written[1].replace(",", "")) < MAX_PATHS_LIMIT
    assert svg.count("path 1: ") == 1 and "path 2: " in svg
