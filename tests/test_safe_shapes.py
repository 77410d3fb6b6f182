"""Loading and validating a graph costs what the graph costs to describe, not to run.

Shape inference runs each op's shape rule on tuples, never forward on full-size arrays; a shape
that cannot be held is a GraphError naming the node. Memory is bounded without any timing:
tracemalloc's peak in this process, RLIMIT_AS on a subprocess.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest
from attrs_nn import ATTRS as NN_ATTRS
from attrs_structure import ATTRS as STRUCTURE_ATTRS
from helpers import graphbp
from hypothesis import given, settings
from hypothesis import strategies as st

import graphbp as gb
from graphbp.errors import GradientCheckError, GraphError, GraphFileError, InputError, PluginError
from graphbp.op import PROBE_LIMIT, defines_shape, runs_on
from graphbp.registry import get_op
from graphbp.shapes import MAX_ELEMENTS, MAX_RANK
from graphbp.testing import check_op

SHAPED_ATTRS = {**STRUCTURE_ATTRS, **NN_ATTRS}
"""Attributes drawn for the operand shapes, by op (the shape and NN ops')."""
BUILT_IN = sorted(gb.ops())
"""The ops registered when the tests start: graphbp's own (test ops come and go later)."""


# ------------------------------------------------------------------ the shape rules' contract


def test_every_built_in_op_has_a_shape_rule() -> None:
    assert BUILT_IN, "no ops registered"
    assert [name for name in BUILT_IN if not defines_shape(get_op(name))] == []


small_shapes = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)
axes = st.one_of(
    st.none(),
    st.integers(-4, 3),
    st.lists(st.integers(-3, 2), min_size=1, max_size=3),
)


@st.composite
def dimension_numbers(draw: st.DrawFn) -> list[list[list[int]]]:
    """dot_general's [[lhs_contracting, rhs_contracting], [lhs_batch, rhs_batch]], mostly of
    paired lengths, with axes that may be out of range or repeated."""
    ints = st.integers(-1, 3)
    pairs = []
    for most in (2, 1):
        n = draw(st.integers(0, most))
        extra = draw(st.sampled_from([0, 0, 0, 1]))
        pairs.append(
            [
                draw(st.lists(ints, min_size=n, max_size=n)),
                draw(st.lists(ints, min_size=n + extra, max_size=n + extra)),
            ]
        )
    return pairs


reduce_axes = st.fixed_dictionaries({"axes": st.lists(st.integers(-3, 3), max_size=3, unique=True)})
ATTRS: dict[str, Any] = {
    "dot_general": st.fixed_dictionaries({"dimension_numbers": dimension_numbers()}),
    "integer_pow": st.fixed_dictionaries(
        {"y": st.one_of(st.integers(-3, 4), st.sampled_from([2.0, True, "2", 2**70]))}
    ),
    "round": st.fixed_dictionaries(
        {}, optional={"rounding_method": st.sampled_from([0, 1, 2, -1, True, "1", 1.0])}
    ),
    "reduce_max": reduce_axes,
    "reduce_min": reduce_axes,
    "sum": st.fixed_dictionaries({}, optional={"axis": axes, "keepdims": st.booleans()}),
    "mean": st.fixed_dictionaries({}, optional={"axis": axes, "keepdims": st.booleans()}),
    "softmax_cross_entropy": st.fixed_dictionaries({}, optional={"axis": st.integers(-3, 2)}),
    "dense": st.fixed_dictionaries(
        {}, optional={"activation": st.sampled_from(["sigmoid", "tanh", "relu", "softplus"])}
    ),
}


def _forward_shape(
    op: gb.Op, shapes: list[tuple[int, ...]], attrs: dict[str, Any], xp: Any = np
) -> Any:
    """forward's result shape on arrays of these shapes, or the exception type it raised, run
    on ``xp``: NumPy, or jax.numpy when the rule refuses what NumPy computes (a sum over axis
    0 of a 0-d array passes on NumPy alone; the rule refuses what any backend refuses)."""
    arrays = [xp.asarray(np.linspace(-1.0, 1.0, int(np.prod(s))).reshape(s)) for s in shapes]
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tuple(np.shape(op.forward(xp, *arrays, **attrs)))
    except Exception as exc:
        return type(exc)


def _rule_shape(op: gb.Op, shapes: list[tuple[int, ...]], attrs: dict[str, Any]) -> Any:
    try:
        return tuple(op.shape(*shapes, **attrs))
    except Exception as exc:
        return type(exc)


def _agree(
    name: str, shapes: list[tuple[int, ...]], attrs: dict[str, Any], both: dict[str, int]
) -> None:
    """Assert that the rule gives forward's shape, or refuses where forward does; count which."""
    op = get_op(name)
    want, got = _forward_shape(op, shapes, attrs), _rule_shape(op, shapes, attrs)
    if isinstance(want, tuple) and not isinstance(got, tuple):  # does JAX refuse it too?
        want = _forward_shape(op, shapes, attrs, pytest.importorskip("jax.numpy"))
    where = f"{name}{tuple(shapes)} {attrs}"
    if isinstance(want, tuple):
        assert got == want, f"{where}: forward gives {want}, the shape rule {got}"
        both["agree"] += 1
    else:
        assert isinstance(got, type), f"{where}: forward raises {want}, the rule gives {got}"
        assert issubclass(got, ValueError | TypeError | IndexError), where
        both["refused"] += 1


@pytest.mark.parametrize("name", [n for n in BUILT_IN if n not in SHAPED_ATTRS])
def test_shape_rule_agrees_with_forward(name: str) -> None:
    """On random small operand shapes (and attributes): the rule gives forward's shape, and
    refuses exactly the operands forward refuses."""
    op = get_op(name)
    if not runs_on(op, "numpy"):  # forward is run on NumPy arrays here
        pytest.skip(f"op {name!r} runs only on {op.backends}")
    both = {"agree": 0, "refused": 0}

    @given(
        shapes=st.lists(small_shapes, min_size=op.arity, max_size=op.arity),
        attrs=ATTRS.get(name, st.just({})),
        # operands that often fit: the same shape for all, or the trailing part of one
        tie=st.sampled_from(["free", "same", "suffix"]),
    )
    @settings(derandomize=True, max_examples=120, deadline=None, database=None)
    def check(shapes: list[tuple[int, ...]], attrs: dict[str, Any], tie: str) -> None:
        if tie == "same":
            shapes = [shapes[0]] * len(shapes)
        elif tie == "suffix" and name in ("matmul", "affine", "dense"):
            shapes = [shapes[0], (*shapes[0][-1:], *shapes[1][-1:]), *shapes[2:]]
        elif tie == "suffix":
            shapes = [shapes[0], *(shapes[0][len(shapes[0]) // 2 :] for _ in shapes[1:])]
        _agree(name, shapes, attrs, both)

    check()
    assert both["agree"] > 10  # the strategy reaches shapes that fit
    if op.arity > 1 or name in ATTRS:
        assert both["refused"] > 0  # and shapes or attributes that do not


@pytest.mark.parametrize("name", sorted(SHAPED_ATTRS))
def test_shape_rule_agrees_with_forward_on_attributes_drawn_for_the_shapes(name: str) -> None:
    """As above, for ops whose attributes only fit operands of particular shapes (axes,
    sizes, permutations): attributes are drawn for the operand shapes, mostly fitting."""
    op = get_op(name)
    both = {"agree": 0, "refused": 0}

    @given(
        shapes=st.lists(small_shapes, min_size=op.arity, max_size=op.arity),
        data=st.data(),
        same=st.booleans(),
    )
    @settings(derandomize=True, max_examples=120, deadline=None, database=None)
    def check(shapes: list[tuple[int, ...]], data: st.DataObject, same: bool) -> None:
        shapes = [shapes[0]] * len(shapes) if same else shapes
        _agree(name, shapes, SHAPED_ATTRS[name](data.draw, shapes), both)

    check()
    assert both["agree"] > 10 and both["refused"] > 0


def test_matmul_rule_on_the_numpy_cases() -> None:
    op = get_op("matmul")
    table = [
        ((4,), (4,)),
        ((3, 4), (4,)),
        ((4,), (4, 5)),
        ((2, 3, 4), (4, 5)),
        ((4,), (2, 4, 5)),
        ((2, 3, 4), (4,)),
        ((5, 1, 3, 4), (2, 4, 6)),
        ((0, 4), (4, 0)),
        ((3, 4), (5, 6)),
        ((), (3,)),
        ((2, 3, 4), (3, 4, 5)),
    ]
    for a, b in table:
        assert _rule_shape(op, [a, b], {}) == _forward_shape(op, [a, b], {}), (a, b)


def test_check_op_catches_a_wrong_shape_rule(register: Any) -> None:
    class Outer(gb.Op):
        name = "outer_wrong_rule"
        local_grads = ("b", "a")

        def forward(self, xp: Any, a: Any, b: Any) -> Any:
            return a[:, None] * b[None, :]

        def vjp(self, xp: Any, g: Any, out: Any, a: Any, b: Any) -> tuple[Any, Any]:
            return g @ b, a @ g

        def shape(self, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
            return (a[0],)  # wrong: forward gives (a[0], b[0])

        def examples(self, rng: Any) -> list[Any]:
            return [((rng.standard_normal(3), rng.standard_normal(4)), {})]

    register(Outer)
    with pytest.raises(GradientCheckError, match=r"shape rule gives \(3,\) but forward .*\(3, 4\)"):
        check_op("outer_wrong_rule")
    Outer.shape = lambda self, a, b: (a[0], b[0])  # type: ignore[method-assign]
    check_op("outer_wrong_rule")  # the fixed rule passes


# ------------------------------------------------------------------ no allocation on load


def _chain(shape: list[Any], op: str = "sum", kind: str = "param") -> dict[str, Any]:
    """node-link data: p (of ``shape``) → op → L = sum."""
    return {
        "directed": True,
        "multigraph": False,
        "graph": {"loss": "L"},
        "nodes": [
            {"id": "p", "op": kind, "shape": shape},
            {"id": "t", "op": op},
            {"id": "L", "op": "sum"},
        ],
        "edges": [{"source": "p", "target": "t"}, {"source": "t", "target": "L"}],
    }


def _two_matmuls(n: int) -> dict[str, Any]:
    """x (n×n input) · W1 (n×n) · W2 (n×n), summed."""
    nodes = [
        {"id": "x", "op": "input", "shape": [n, n]},
        {"id": "W1", "op": "param", "shape": [n, n]},
        {"id": "W2", "op": "param", "shape": [n, n]},
        {"id": "h", "op": "matmul"},
        {"id": "o", "op": "matmul"},
        {"id": "L", "op": "sum"},
    ]
    edges = [
        {"source": "x", "target": "h", "arg": 0},
        {"source": "W1", "target": "h", "arg": 1},
        {"source": "h", "target": "o", "arg": 0},
        {"source": "W2", "target": "o", "arg": 1},
        {"source": "o", "target": "L"},
    ]
    return {"directed": True, "graph": {"loss": "L"}, "nodes": nodes, "edges": edges}


def _outer(n: int) -> dict[str, Any]:
    """An outer product of two n-vectors (an inferred n×n value), summed."""
    nodes = [
        {"id": "a", "op": "param", "shape": [n, 1]},
        {"id": "b", "op": "param", "shape": [n]},
        {"id": "ab", "op": "mul"},
        {"id": "L", "op": "sum"},
    ]
    edges = [
        {"source": "a", "target": "ab", "arg": 0},
        {"source": "b", "target": "ab", "arg": 1},
        {"source": "ab", "target": "L"},
    ]
    return {"directed": True, "graph": {"loss": "L"}, "nodes": nodes, "edges": edges}


def _graph(data: dict[str, Any]) -> nx.DiGraph:
    """The nx.DiGraph of node-link ``data``, its shapes tuples as the Python API takes them."""
    g = nx.node_link_graph(data, edges="edges")
    for _, attrs in g.nodes(data=True):
        if isinstance(attrs.get("shape"), list):
            attrs["shape"] = tuple(attrs["shape"])
    return g


def _write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _peak_bytes(fn: Any) -> int:
    gb.Network.from_json  # noqa: B018
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_loading_huge_declared_shapes_allocates_nothing_of_their_size(tmp_path: Path) -> None:
    """A 3000×3000 matmul chain (72 MB per array if made) and a [10⁹] param load and explain
    within a couple of MB: only the description is held. (NumPy reports its buffers to
    tracemalloc, so a probe array of either would show.)"""
    from graphbp.chain import explain

    warm = _write(tmp_path, "warm.json", _two_matmuls(3))
    explain(gb.Network.from_json(warm))  # plugins imported, caches filled
    nets: list[gb.Network] = []
    for name, data in [("mm.json", _two_matmuls(3000)), ("big.json", _chain([10**9]))]:
        path = _write(tmp_path, name, data)
        peak = _peak_bytes(lambda path=path: nets.append(gb.Network.from_json(path)))
        assert peak < 2_000_000, f"{name}: loading peaked at {peak:,} bytes"
        peak = _peak_bytes(lambda: explain(nets[-1]))
        assert peak < 2_000_000, f"{name}: explain peaked at {peak:,} bytes"
    assert nets[-1].shapes["t"] == ()
    assert gb.Network.from_json(tmp_path / "mm.json").shapes["o"] == (3000, 3000)


LIMITED = """
import resource, sys
limit = 2 * 2**30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from graphbp.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _limited(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``graphbp ARGS`` in a subprocess that cannot map more than 2 GB."""
    return subprocess.run(
        [sys.executable, "-c", LIMITED, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_explain_and_render_of_hostile_shapes_fit_in_2gb(tmp_path: Path) -> None:
    """Files of a few hundred bytes that declare 8 GB, 288 MB ×3 of values: explain and render
    succeed in a process limited to 2 GB of address space."""
    assert resource.getrlimit(resource.RLIMIT_AS)[0] in (resource.RLIM_INFINITY, -1) or (
        resource.getrlimit(resource.RLIMIT_AS)[0] > 2 * 2**30
    )
    files = [
        _write(tmp_path, "param.json", _chain([1_000_000_000])),
        _write(tmp_path, "matmuls.json", _two_matmuls(6000)),
    ]
    for path in files:
        assert path.stat().st_size < 1000
        done = _limited("explain", str(path), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "L" in done.stdout
        done = _limited("render", str(path), "-o", str(tmp_path / "x.dot"), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "x.dot").read_text().startswith("digraph")
    # the limit bites: the same process cannot make one such array
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LIMITED.replace("from graphbp", "import numpy as np\nnp.ones(10**9)\nfrom graphbp"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "MemoryError" in done.stderr


def test_an_inferred_shape_too_large_to_hold_is_refused(tmp_path: Path) -> None:
    """Two vectors of 10⁶ (fine) whose outer product would have 10¹² elements."""
    path = _write(tmp_path, "outer.json", _outer(10**6))
    with pytest.raises(
        GraphFileError,
        match=r"outer.json: node 'ab' \(op 'mul'\) computes .*"
        r"1,000,000,000,000 elements, more than the 17,179,869,184",
    ):
        gb.Network.from_json(path)
    done = _limited("explain", str(path), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "node 'ab'" in done.stderr


BAD_SHAPES = [
    ([-1], "non-negative ints"),
    ([True, 2], "non-negative ints"),
    ([2.0], "non-negative ints"),
    ([2.5], "non-negative ints"),
    (["3"], "non-negative ints"),
    ([[3]], "non-negative ints"),
    ("3", "a shape is a tuple"),
    (3, "a shape is a tuple"),
    ({"a": 1}, "a shape is a tuple"),
    ([None], "non-negative ints, e.g."),  # a param's shape has no None
    ([1] * (MAX_RANK + 1), f"at most {MAX_RANK}"),
    ([2**17, 2**17, 2], "more than the"),
    ([10**300], "more than the"),
    ([10**4000], "more than the"),
    ([10**4000] * 3, "about 2^"),
]


@pytest.mark.parametrize(
    ("shape", "message"), BAD_SHAPES, ids=[str(i) for i in range(len(BAD_SHAPES))]
)
def test_shapes_that_cannot_be_held(tmp_path: Path, shape: Any, message: str) -> None:
    path = _write(tmp_path, "net.json", _chain(shape))
    with pytest.raises(GraphFileError, match="net.json: node 'p' \\(op 'param'\\)") as info:
        gb.Network.from_json(path)
    assert message in str(info.value)
    assert len(str(info.value)) < 600
    g = nx.node_link_graph(_chain(shape), edges="edges")
    g.nodes["p"]["shape"] = tuple(shape) if isinstance(shape, list) else shape
    with pytest.raises(GraphError, match="node 'p'"):
        gb.Network(g)


def test_declared_shapes_of_inputs_and_op_nodes_are_checked_too() -> None:
    for kind in ("input", "const"):
        g = _graph(_chain([3]))
        g.nodes["p"].clear()
        g.nodes["p"].update(op=kind, shape=(-3,), **({"value": [1.0]} if kind == "const" else {}))
        with pytest.raises(GraphError, match=r"node 'p' \(op '" + kind + r"'\) has shape=\(-3,\)"):
            gb.Network(g)
    g = _graph(_chain([3]))
    g.nodes["t"]["shape"] = (2.0,)
    with pytest.raises(GraphError, match=r"node 't' \(op 'sum'\) has shape=\(2.0,\)"):
        gb.Network(g)
    g.nodes["t"]["shape"] = (5,)
    with pytest.raises(GraphError, match=r"node 't' \(op 'sum'\) declares shape \(5,\) but"):
        gb.Network(g)
    g.nodes["t"]["shape"] = ()
    assert gb.Network(g).shapes["t"] == ()


def test_none_axes_of_any_size_stay_unknown_and_a_huge_static_axis_is_held() -> None:
    g = _graph(_two_matmuls(4))
    g.nodes["x"]["shape"] = (None, 4)
    g.nodes["W2"]["shape"] = (4, 2**32)  # 2³⁴ elements: at the bound, never made
    net = gb.Network(g)
    assert net.shapes["h"] == (None, 4)
    assert net.shapes["o"] == (None, 2**32)


def test_cli_train_with_a_hidden_width_that_cannot_be_held(tmp_path: Path) -> None:
    done = graphbp("train", "--hidden", "100000000", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "node 'W2'" in done.stderr and "more than the" in done.stderr
    assert not (tmp_path / "out").exists()


def test_parameters_beyond_physical_memory_are_refused_before_any_is_made(
    tmp_path: Path,
) -> None:
    """Within the shape bound but beyond this machine: one line, before an allocation that
    an overcommitting kernel would grant and then kill the process for."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    width = math.isqrt(memory // 8) + 1  # W2 alone, width², in float64 exceeds the memory
    if width**2 > MAX_ELEMENTS:
        pytest.skip("this machine holds more than the largest shape graphbp accepts")
    prog = gb.Network(gb.mlp((3, width, width, 1))).compile()
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"the parameters need .* GiB \(the largest, 'W2'"):
            prog.init(0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    done = graphbp("train", "--hidden", str(width), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "'W2'" in done.stderr and "use smaller shapes" in done.stderr
    assert not (tmp_path / "out").exists()


def test_mlp_builder_allocates_nothing() -> None:
    tracemalloc.start()
    try:
        g = gb.mlp((10, 10**8, 10**8, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000
    with pytest.raises(GraphError, match=r"node 'W2' \(op 'param'\) declares a value of shape"):
        gb.Network(g)
    for sizes in [(), (3,)]:
        with pytest.raises(GraphError, match="mlp needs the input and output widths"):
            gb.mlp(sizes)
    for sizes in [(3, -1, 1), (3, True, 1), (3, 2.0, 1)]:
        with pytest.raises(GraphError, match=r"node 'W1' \(op 'param'\) has shape="):
            gb.Network(gb.mlp(sizes))


# ------------------------------------------------------------------ shape-rule failures


def _graph_with(op: str, shapes: list[tuple[int, ...]], **attrs: Any) -> nx.DiGraph:
    g = nx.DiGraph(loss="L")
    for i, shape in enumerate(shapes):
        g.add_node(f"a{i}", op="param", shape=shape)
        g.add_edge(f"a{i}", "n", arg=i)
    g.add_node("n", op=op, **attrs)
    g.add_node("L", op="sum")
    g.add_edge("n", "L")
    return g


def test_operands_that_do_not_fit_name_node_op_and_shapes() -> None:
    with pytest.raises(
        GraphError,
        match=r"shape mismatch at node 'n' \(op 'matmul'\): operands 'a0' \(3, 4\), 'a1' "
        r"\(5, 6\) do not fit",
    ):
        gb.Network(_graph_with("matmul", [(3, 4), (5, 6)]))
    with pytest.raises(GraphError, match=r"shape mismatch at node 'n' \(op 'sum'\).*axis 2"):
        gb.Network(_graph_with("sum", [(3, 4)], axis=2))
    with pytest.raises(GraphError, match=r"shape mismatch at node 'n' \(op 'add'\)"):
        gb.Network(_graph_with("add", [(3, 4), (3,)]))
    with pytest.raises(GraphError, match=r"node 'n' \(op 'dense'\): activation must be"):
        gb.Network(_graph_with("dense", [(2, 3), (3, 4), (4,)], activation=["sigmoid"]))
    with pytest.raises(GraphError, match=r"node 'n' \(op 'dense'\): unknown op 'sigmoidd'"):
        gb.Network(_graph_with("dense", [(2, 3), (3, 4), (4,)], activation="sigmoidd"))


def test_op_without_a_shape_rule_is_probed_only_while_small(register: Any) -> None:
    class Flip(gb.Op):
        name = "flip_no_rule"
        local_grads = ("−1",)

        def forward(self, xp: Any, x: Any) -> Any:
            return x[::-1]

    register(Flip)
    assert gb.Network(_graph_with("flip_no_rule", [(1024, 1024)])).shapes["n"] == (1024, 1024)
    with pytest.raises(
        GraphError,
        match=r"node 'n' \(op 'flip_no_rule'\): operand 'a0' has shape \(1025, 1024\); op "
        r"'flip_no_rule' has no shape rule.*at most 1,048,576 .*give .*Flip a method shape\(self",
    ):
        gb.Network(_graph_with("flip_no_rule", [(1025, 1024)]))
    assert PROBE_LIMIT == 1024 * 1024


def test_probed_op_that_refuses_its_operands_is_a_shape_mismatch(register: Any) -> None:
    class Pair(gb.Op):
        name = "pair_no_rule"
        local_grads = ("1", "1")

        def forward(self, xp: Any, a: Any, b: Any) -> Any:
            if a.shape != b.shape:
                raise ValueError("operands differ in shape")
            return a + b

    register(Pair)
    with pytest.raises(GraphError, match=r"shape mismatch at node 'n' \(op 'pair_no_rule'\)"):
        gb.Network(_graph_with("pair_no_rule", [(2,), (3,)]))


def test_a_broken_shape_rule_is_a_plugin_error(register: Any) -> None:
    class Bad(gb.Op):
        name = "bad_rule"
        local_grads = ("1",)
        answer: Any = None

        def forward(self, xp: Any, x: Any) -> Any:
            return x

        def shape(self, x: tuple[int, ...]) -> Any:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    register(Bad)
    for answer in [None, (2.0,), (-1,), (True,), "3"]:
        Bad.answer = answer
        with pytest.raises(
            PluginError, match=r"op 'bad_rule' at node 'n': its shape rule returned"
        ):
            gb.Network(_graph_with("bad_rule", [(2,)]))
    Bad.answer = ZeroDivisionError("oops")
    with pytest.raises(PluginError, match=r"shape rule raised ZeroDivisionError: oops") as info:
        gb.Network(_graph_with("bad_rule", [(2,)]))
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    Bad.answer = ValueError("x must be 3 long")
    with pytest.raises(GraphError, match=r"shape mismatch at node 'n' .*x must be 3 long"):
        gb.Network(_graph_with("bad_rule", [(2,)]))
    Bad.answer = [2]  # a list of ints is taken as a shape
    assert gb.Network(_graph_with("bad_rule", [(2,)])).shapes["n"] == (2,)


def test_bounds_are_documented_numbers() -> None:
    assert MAX_ELEMENTS == 2**34 and 10**16 > MAX_ELEMENTS > 10**10
