"""graphbp.outline: scopes as nested groups, parameters attached to their block, repeated
blocks folded, wide groups split into ranges, and views whose links partition the edges."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Hashable

import networkx as nx
import pytest
from graphs import chain
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphbp as gb
from graphbp.chain import Edge
from graphbp.outline import WIDTH, Group, Item, Outline

HAS_JAX = importlib.util.find_spec("jax") is not None


def _scope_of(o: Outline, node: Hashable) -> str:
    """The name of the innermost scope group holding ``node`` ("" for none)."""
    for gid in reversed((*o.ancestors(node), o.group_of[node])):
        if o.groups[gid].kind == "scope":
            return o.groups[gid].name
    return ""


def _block(b: gb.Builder, h: gb.Value, k: int, act: str = "tanh", width: int = 3) -> gb.Value:
    w = b.param(f"W{k}", (3, width), init="normal")
    return b.op(act, h @ w, name=f"a{k}")


def test_nested_scopes_are_nested_groups() -> None:
    b = gb.Builder()
    x = b.input("x", (2, 3))
    with b.scope("enc"):
        with b.scope("block1"):
            h = b.op("tanh", x, name="t1")
        h = b.op("sigmoid", h, name="s")
    loss = b.op("sum", h, name="L")
    o = Outline(b.network(loss))
    enc, block = o.find("enc"), o.find("enc/block1")
    assert enc is not None and block is not None
    assert o.groups[enc].kind == "scope" and o.groups[enc].parent == o.root == "g0"
    assert o.groups[block].parent == enc and o.groups[block].name == "enc/block1"
    assert o.groups[block].members == ("t1",)
    assert set(o.groups[enc].members) == {"t1", "s"}
    assert o.group_of["t1"] == block and o.group_of["s"] == enc and o.group_of["x"] == o.root
    assert o.ancestors("t1") == ("g0", enc, block)
    assert o.ancestors(block) == ("g0", enc)
    assert o.groups["g0"].members == tuple(o.net.order)
    assert o.box("t1", frozenset()) == enc
    assert o.box("t1", frozenset({enc})) == block
    assert o.box("t1", frozenset({enc, block})) == "t1"
    assert o.box("t1", frozenset({block})) == enc  # the outermost closed group
    assert o.box("x", frozenset()) == "x"


def test_leaves_join_the_scope_of_all_their_consumers() -> None:
    b = gb.Builder()
    x = b.input("x", (2, 3))
    shared = b.param("shared", (3,), init="normal")
    c = b.const(2.0, name="two")
    with b.scope("a"):
        with b.scope("inner"):
            h = b.op("mul", x @ b.param("Wa", (3, 3), init="normal"), c, name="ha")
        h = b.op("add", h, shared, name="ha2")
    with b.scope("b"):
        h = b.op("add", h, shared, name="hb")
    o = Outline(b.network(b.op("sum", h, name="L")))
    assert _scope_of(o, "Wa") == "a/inner"  # its one consumer's scope
    assert _scope_of(o, "two") == "a/inner"  # a const, likewise
    assert _scope_of(o, "shared") == ""  # used in a and b: their common scope, the root
    assert _scope_of(o, "x") == ""  # an input stays where it is: the model's interface


def test_mlp_layers_are_scopes_and_identical_layers_fold() -> None:
    net = gb.Network(gb.mlp((4, 8, 8, 8, 8, 2)))
    assert [net.graph.nodes[n]["scope"] for n in ("W1", "b1", "h1", "W5", "yhat")] == [
        "layer1",
        "layer1",
        "layer1",
        "layer5",
        "layer5",
    ]
    o = Outline(net)
    folds = [g for g in o.groups.values() if g.kind == "fold"]
    assert len(folds) == 1
    (fold,) = folds
    # layer1 reads 4 inputs and layer5 is the linear output: layers 2-4 are alike
    assert fold.repeats == 3 and fold.name == "layer2 … layer4"
    assert [o.groups[c].name for c in fold.children] == ["layer2", "layer3", "layer4"]
    assert set(fold.members) == {f"{v}{k}" for v in "Wbh" for k in (2, 3, 4)}
    assert fold.parent == o.root
    # folded, the drawing is the input, layer1, the fold, layer5, the loss and y
    view = o.view()
    assert len(view.boxes) == 6
    assert view.links[(o.find("layer1"), fold.id)] == (Edge("h1", "h2", 0),)


def test_blocks_differing_in_one_attribute_or_shape_do_not_fold() -> None:
    def stack(acts: list[str], widths: list[int]) -> Outline:
        b = gb.Builder()
        h = b.input("x", (2, 3))
        for k, (act, width) in enumerate(zip(acts, widths, strict=True)):
            with b.scope(f"block{k}"):
                h = _block(b, h, k, act, width)
            if width != 3:
                h = h @ b.param(f"back{k}", (width, 3), init="normal")
        return Outline(b.network(b.op("sum", h, name="L")))

    same = stack(["tanh"] * 4, [3] * 4)
    assert [g.repeats for g in same.groups.values() if g.kind == "fold"] == [4]
    attr = stack(["tanh", "tanh", "sigmoid", "tanh"], [3] * 4)
    assert [g.repeats for g in attr.groups.values() if g.kind == "fold"] == [2]
    shape = stack(["tanh"] * 3, [3, 3, 5])
    assert [g.repeats for g in shape.groups.values() if g.kind == "fold"] == [2]
    # an unscoped node between two identical blocks: they are not consecutive
    apart = stack(["tanh", "tanh", "tanh"], [3, 5, 3])
    assert not [g for g in apart.groups.values() if g.kind == "fold"]


def test_blocks_with_different_wiring_do_not_fold() -> None:
    b = gb.Builder()
    h = b.input("x", (2, 3))
    for k in range(2):
        with b.scope(f"block{k}"):
            u = b.op("tanh", h, name=f"u{k}")
            v = b.op("sigmoid", h, name=f"v{k}")
            # same ops, operands swapped in the second block
            h = b.op("sub", u, v, name=f"s{k}") if k == 0 else b.op("sub", v, u, name=f"s{k}")
    o = Outline(b.network(b.op("sum", h, name="L")))
    assert not [g for g in o.groups.values() if g.kind == "fold"]


def _sums(reads_input: bool) -> Outline:
    """Three blocks ``h = tanh((h + other) @ W)``: ``other`` is ``h``, except in the second
    block with ``reads_input``, where it is the model's input ``x``."""
    b = gb.Builder()
    x = h = b.input("x", (2, 3))
    for k in range(3):
        with b.scope(f"block{k}"):
            other = x if k == 1 and reads_input else h
            h = _block(b, h + other, k)
    return Outline(b.network(b.op("sum", h, name="L")))


def test_blocks_reading_one_or_two_outside_values_do_not_fold() -> None:
    # block0 and block2 compute h + h, block1 h + x: same ops and shapes, other wiring
    assert not [g for g in _sums(True).groups.values() if g.kind == "fold"]
    # each block reading only the previous block's output twice: all three fold
    (fold,) = [g for g in _sums(False).groups.values() if g.kind == "fold"]
    assert fold.repeats == 3


@pytest.mark.skipif(not HAS_JAX, reason="needs jax")
def test_the_twelve_blocks_of_an_imported_transformer_fold() -> None:
    from graphbp import jax_examples

    fn, args = jax_examples.residual_attention(12)
    net, _, _ = gb.from_jax(fn, *args)
    o = Outline(net)
    (fold,) = [g for g in o.groups.values() if g.kind == "fold"]
    assert fold.repeats == 12 and fold.name == "block0 … block11"
    assert [o.groups[c].name for c in fold.children] == [f"block{k}" for k in range(12)]
    # each block's parameters are inside it, so the twelve are alike
    counts = [sum(net.kind[n] == "param" for n in o.groups[c].members) for c in fold.children]
    assert counts == [counts[0]] * 12 and counts[0] > 0
    assert all(len(g.children) <= WIDTH for g in o.groups.values())


def test_ranges_bound_every_group() -> None:
    net = gb.Network(chain(["tanh"] * 500))
    for width in (2, 3, 7, WIDTH):
        o = Outline(net, width=width)
        assert all(len(g.children) <= width for g in o.groups.values())
        ranges = [g for g in o.groups.values() if g.kind == "range"]
        assert ranges and all(len(g.children) >= 2 for g in ranges)
        for group in ranges:  # named by their first and last items and their count
            first, last = _items(o, group)
            assert group.name == f"{first} … {last} ({len(_leaves(o, group)):,} items)"
        names = [g.name for g in ranges]
        assert len(set(names)) == len(names)
        _check_structure(o)
    with pytest.raises(gb.GraphbpError, match="width"):
        Outline(net, width=1)


def _leaves(o: Outline, group: Group) -> list[Item]:
    """A range's items: its children, through the ranges it holds."""
    out: list[Item] = []
    for child in group.children:
        inner = o.groups.get(str(child)) if o.is_group(child) else None
        out.extend(_leaves(o, inner) if inner is not None and inner.kind == "range" else [child])
    return out


def _items(o: Outline, group: Group) -> tuple[str, str]:
    """The names of a range's first and last items."""
    ends = [_leaves(o, group)[k] for k in (0, -1)]
    return tuple(o.groups[str(i)].name if o.is_group(i) else str(i) for i in ends)  # type: ignore[return-value]


def test_range_names_hold_their_items_and_never_overlap() -> None:
    # 1,700 unscoped nodes, then 60 scopes: two levels of ranges, nodes and scopes in them
    g = chain(["tanh"] * 1700 + ["sigmoid"] * 60)
    order = list(nx.topological_sort(g))
    for k, node in enumerate(order[-61:-1]):
        g.nodes[node]["scope"] = f"layer{k}"
    o = Outline(gb.Network(g))
    ranges = [grp for grp in o.groups.values() if grp.kind == "range"]
    assert any(
        o.groups[str(c)].kind == "range" for r in ranges for c in r.children if o.is_group(c)
    )
    for group in ranges:
        first, last = _items(o, group)
        assert group.name == f"{first} … {last} ({len(_leaves(o, group)):,} items)"
    top = [o.groups[str(c)] for c in o.groups[o.root].children if o.is_group(c)]
    spans = [(grp.members[0], grp.members[-1]) for grp in top if grp.kind == "range"]
    index = o.net.index
    assert all(index[a[1]] < index[b[0]] for a, b in itertools.pairwise(spans))


def test_a_100000_node_chain_outlines() -> None:
    net = gb.Network(chain(["tanh"] * 100_000))
    o = Outline(net)
    view = o.view()
    assert len(o.groups[o.root].children) <= WIDTH
    assert 1 < len(view.boxes) <= WIDTH
    assert sum(len(e) for e in view.links.values()) == len(view.boxes) - 1


def test_group_ids_never_equal_a_node_name() -> None:
    g = chain(["tanh", "sigmoid"], names=["g0", "g1"], source="g2")
    g.nodes["g1"]["scope"] = "s"
    o = Outline(gb.Network(g))
    assert o.root not in o.net.index and not set(o.groups) & set(o.net.index)
    assert not o.is_group("g0") and o.is_group(o.root)
    assert o.group_of["g1"] == o.find("s")


def test_group_ids_never_equal_a_scope_name() -> None:
    # scopes named like the ids the groups would get: the ids skip them, so a name given to
    # render's expanded (scope names first) always means one group
    g = chain(["tanh"] * 200)
    for k, node in enumerate(nx.topological_sort(g)):
        if k >= 190:
            g.nodes[node]["scope"] = f"g{k - 190}"
    o = Outline(gb.Network(g), width=5)
    scopes = {grp.name for grp in o.groups.values() if grp.kind == "scope"}
    assert {f"g{k}" for k in range(10)} <= scopes
    assert not set(o.groups) & scopes
    assert all(o.groups[o.find(s) or ""].name == s for s in scopes)


# ---------------------------------------------------------------- random scoped DAGs


@st.composite
def scoped_networks(draw: st.DrawFn) -> gb.Network:
    g = nx.DiGraph(loss="L")
    scopes = ["a", "a/b", "a/b/c", "d", "d/b", "e"]
    values: list[str] = []
    for i in range(draw(st.integers(1, 3))):
        g.add_node(f"p{i}", op="param", shape=(3,), init="normal")
        values.append(f"p{i}")
    g.add_node("x", op="input", shape=(3,))
    values.append("x")
    for k in range(draw(st.integers(1, 30))):
        node = f"n{k}"
        scope = draw(st.sampled_from([None, *scopes]))
        extra = {} if scope is None else {"scope": scope}
        if draw(st.booleans()):
            g.add_node(node, op=draw(st.sampled_from(["tanh", "sigmoid"])), **extra)
            g.add_edge(draw(st.sampled_from(values)), node)
        else:
            a, c = draw(st.sampled_from(values)), draw(st.sampled_from(values))
            g.add_node(node, op=draw(st.sampled_from(["add", "mul"])), **extra)
            if a == c:
                g.add_edge(a, node, arg=(0, 1))
            else:
                g.add_edge(a, node, arg=0)
                g.add_edge(c, node, arg=1)
        values.append(node)
    g.add_node("L", op="sum")
    g.add_edge(values[-1], "L")
    return gb.Network(g)


def _check_structure(o: Outline) -> None:
    net = o.net
    seen: dict[Hashable, str] = {}
    for gid, group in o.groups.items():
        for child in group.children:
            if o.is_group(child):
                assert o.groups[child].parent == gid
            else:
                assert child not in seen  # in exactly one group's children
                seen[child] = gid
        inside: list[Hashable] = []
        for child in group.children:
            inside.extend(o.groups[child].members if o.is_group(child) else [child])
        assert tuple(sorted(inside, key=net.index.__getitem__)) == group.members
        firsts = [net.index[o.groups[c].members[0] if o.is_group(c) else c] for c in group.children]
        if group.kind != "fold":
            assert firsts == sorted(firsts)
        assert group.repeats == (len(group.children) if group.kind == "fold" else 1)
    assert seen == o.group_of and set(seen) == set(net.order)
    assert o.groups[o.root].members == tuple(net.order)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    net=scoped_networks(),
    width=st.integers(2, 6),
    opened=st.sets(st.integers(0, 40), max_size=12),
)
def test_random_scoped_graphs(net: gb.Network, width: int, opened: set[int]) -> None:
    o = Outline(net, width=width)
    _check_structure(o)
    assert all(len(g.children) <= width for g in o.groups.values())
    expanded = frozenset(f"g{k}" for k in opened)
    view = o.view(expanded)
    assert len(set(view.boxes)) == len(view.boxes)
    drawn = {n: o.box(n, view.expanded) for n in net.order}
    assert set(drawn.values()) == set(view.boxes)
    linked = [e for edges in view.links.values() for e in edges]
    assert len(linked) == len(set(linked))
    between = {
        Edge(s, n, p)
        for n in net.order
        for p, s in enumerate(net.operands[n])
        if drawn[s] != drawn[n]
    }
    assert set(linked) == between
    for (a, c), edges in view.links.items():
        assert all(drawn[e.source] == a and drawn[e.target] == c for e in edges)
    for node in net.order:  # a node's scope attribute is its innermost scope group's name
        scope = net.graph.nodes[node].get("scope")
        if scope is not None:
            assert _scope_of(o, node) == scope
