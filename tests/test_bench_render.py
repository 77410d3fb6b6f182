"""graphbp bench --render: the drawings it times are written for real and measured."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from graphbp.bench_render import bench_render, cases


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_bench_render_times_svg_and_html_of_each_case() -> None:
    rows = list(bench_render(cases(nodes=60, blocks=1, length=600)))
    jax = importlib.util.find_spec("jax") is not None
    expected = [
        ("gb.mlp, 60 nodes", ".svg"),
        ("gb.mlp, 60 nodes", ".html"),
        ("random DAG, unscoped", ".svg"),
        ("random DAG, unscoped", ".html"),
        *([("imported 1-block transformer", ".svg"), ("imported 1-block transformer", ".html")]
          if jax else []),
        ("chain of 600 ops", ".svg"),
    ]  # fmt: skip
    assert [(r["case"], r["format"]) for r in rows] == expected
    assert all(r["s"] > 0 and r["MB"] > 0 for r in rows)
    assert rows[0]["nodes"] == 60 and rows[-1]["nodes"] == 602
    # the chain is drawn as its outline: a few boxes, not 602 nodes
    assert rows[-1]["MB"] < rows[0]["MB"] * 5
