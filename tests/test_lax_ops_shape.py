"""The shape ops against the JAX primitives they stand for, in float64: forward equal to the
lax primitive with the same attributes (as JSON lists) to 1e-12, and gradients through a
compiled network (both backends) equal to jax.vjp of the primitive to 1e-10. Hostile
attributes give a GraphError naming the node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import pytest

import graphbp as gb
from graphbp.errors import GraphError
from graphbp.registry import get_op
from graphbp.testing import check_network

jax = pytest.importorskip("jax")
jnp = jax.numpy
lax = jax.lax

BACKENDS = ("numpy", "jax")

Case = tuple[str, tuple[Any, ...], dict[str, Any], Callable[..., Any]]
"""An op name, its operands (float64), its attributes, and the lax function it must equal."""


def _r(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape)


def _broadcast(x: Any, shape: list[int], dims: list[int]) -> Case:
    # JAX's own transpose rule fails on unsorted broadcast_dimensions (jnp never makes
    # them): the reference sorts the operand's axes first, which means the same
    order = tuple(sorted(range(len(dims)), key=lambda i: dims[i]))
    return (
        "broadcast_in_dim",
        (x,),
        {"out_shape": shape, "broadcast_dimensions": dims},
        lambda v: lax.broadcast_in_dim(lax.transpose(v, order), tuple(shape), sorted(dims)),
    )


def _reshape(x: Any, new: list[int]) -> Case:
    return "reshape", (x,), {"new_sizes": new}, lambda v: jnp.reshape(v, tuple(new))


def _transpose(x: Any, perm: list[int]) -> Case:
    axes = tuple(p % x.ndim for p in perm)
    return "transpose", (x,), {"permutation": perm}, lambda v: lax.transpose(v, axes)


def _squeeze(x: Any, dims: list[int]) -> Case:
    return "squeeze", (x,), {"dimensions": dims}, lambda v: lax.squeeze(v, tuple(dims))


def _expand(x: Any, dims: list[int]) -> Case:
    return "expand_dims", (x,), {"dimensions": dims}, lambda v: jnp.expand_dims(v, tuple(dims))


def _rev(x: Any, dims: list[int]) -> Case:
    axes = tuple(d % x.ndim for d in dims)
    return "rev", (x,), {"dimensions": dims}, lambda v: lax.rev(v, axes)


def _tile(x: Any, reps: list[int]) -> Case:
    return "tile", (x,), {"reps": reps}, lambda v: lax.tile(v, tuple(reps))


def _concat(a: Any, b: Any, d: int) -> Case:
    return (
        "concatenate",
        (a, b),
        {"dimension": d},
        lambda u, v: lax.concatenate([u, v], d % a.ndim),
    )


def _slice(x: Any, start: list[int], limit: list[int], strides: list[int] | None) -> Case:
    return (
        "slice",
        (x,),
        {"start_indices": start, "limit_indices": limit, "strides": strides},
        lambda v: lax.slice(v, tuple(start), tuple(limit), None if strides is None else strides),
    )


def _pad(x: Any, config: list[list[int]]) -> Case:
    return (
        "pad",
        (x, np.asarray(0.75)),
        {"padding_config": config},
        lambda v, p: lax.pad(v, p, [tuple(c) for c in config]),
    )


def _compare(name: str, a: Any, b: Any) -> Case:
    prim = getattr(lax, name)
    return name, (a, b), {}, lambda u, v: prim(*jnp.broadcast_arrays(u, v))


def _select(p: Any, f: Any, t: Any) -> Case:
    return "select_n", (p, f, t), {}, lambda q, u, v: lax.select_n(q != 0, u, v)


def _convert(x: Any, dtype: str) -> Case:
    # one dtype per program: a float target keeps the program's (here float64) precision
    target = "float64" if dtype.startswith("float") else dtype
    return (
        "convert_element_type",
        (x,),
        {"new_dtype": dtype},
        lambda v: lax.convert_element_type(v, target),
    )


ties = np.array([[0.0, 1.0, -2.0], [3.0, 1.0, 0.5]])
other = np.array([[0.0, 2.0, -2.0], [1.0, 1.0, -0.5]])
mixed = np.array([[-3.7, 2.5, 0.0], [300.2, -1e10, 7.9]])

CASES: list[Case] = [
    _broadcast(_r(4), [3, 4], [1]),
    _broadcast(_r(3, 1), [3, 5], [0, 1]),
    _broadcast(_r(), [2, 3], []),
    _broadcast(_r(4, 3), [3, 2, 4], [2, 0]),
    _broadcast(_r(1, 1), [1, 1], [0, 1]),
    _broadcast(_r(2, 1), [2, 0], [0, 1]),  # to an empty result
    _reshape(_r(3, 4), [2, 6]),
    _reshape(_r(3, 4), [-1]),
    _reshape(_r(2, 3, 4), [4, -1, 2]),
    _reshape(_r(1), []),
    _reshape(_r(0, 3), [3, -1]),
    _transpose(_r(3, 4), [1, 0]),
    _transpose(_r(2, 3, 4), [2, 0, 1]),
    _transpose(_r(2, 3, 4), [-1, 0, -2]),
    _transpose(_r(), []),
    _squeeze(_r(3, 1, 4), [1]),
    _squeeze(_r(1, 3, 1), [0, -1]),
    _squeeze(_r(1), [0]),
    _squeeze(_r(3, 4), []),
    _expand(_r(3, 4), [0]),
    _expand(_r(3, 4), [-1]),
    _expand(_r(3, 4), [1, 3]),
    _expand(_r(), [0, 1]),
    _rev(_r(3, 4), [0]),
    _rev(_r(2, 3, 4), [2, -3]),
    _rev(_r(5), []),
    _tile(_r(3, 4), [2, 3]),
    _tile(_r(2, 1, 3), [1, 4, 1]),
    _tile(_r(2, 3), [0, 2]),
    _tile(_r(), []),
    _concat(_r(2, 3), _r(4, 3), 0),
    _concat(_r(2, 3), _r(2, 1), -1),
    _concat(_r(3), _r(0), 0),
    _concat(_r(2, 1, 3), _r(2, 2, 3), 1),
    _slice(_r(5, 6), [1, 0], [4, 6], None),
    _slice(_r(5, 6), [0, 1], [5, 6], [2, 3]),
    _slice(_r(7), [6], [7], [5]),
    _slice(_r(4, 5), [2, 2], [2, 5], [1, 2]),  # an empty axis
    _slice(_r(9, 2), [1, 0], [8, 2], [3, 1]),
    _pad(_r(3, 4), [[1, 2, 0], [0, 1, 0]]),
    _pad(_r(3, 4), [[0, 1, 1], [2, 0, 2]]),
    _pad(_r(3, 4), [[-1, 1, 0], [2, -2, 1]]),
    _pad(_r(3), [[-4, 2, 1]]),  # lo cuts into the interior padding
    _pad(_r(1, 2), [[1, 1, 3], [-3, -1, 2]]),  # an empty result
    _pad(_r(0, 2), [[2, 1, 1], [0, 0, 0]]),  # an empty operand
    _pad(_r(), []),
    *[_compare(n, ties, other) for n in ("eq", "ne", "lt", "le", "gt", "ge")],
    *[_compare(n, ties, np.array([1.0, 1.0, 0.5])) for n in ("eq", "lt", "ge")],
    *[_compare(n, np.asarray(1.0), ties) for n in ("ne", "le", "gt")],
    _select(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), _r(2, 3), _r(2, 3, seed=1)),
    _select(np.asarray(1.0), _r(2, 3), _r(2, 3, seed=1)),
    _select(np.asarray(0.0), _r(2, 3), _r(2, 3, seed=1)),
    *[_convert(mixed, d) for d in ("float32", "float64", "int32", "int8", "uint8", "bool")],
    _convert(np.array([np.nan, np.inf, -np.inf, -0.5]), "int16"),
]


def _id(case: Case) -> str:
    name, operands, attrs, _ = case
    return f"{name}-{[np.shape(x) for x in operands]}-{attrs}"


def _network(name: str, operands: tuple[Any, ...], attrs: dict[str, Any], g: Any) -> gb.Network:
    """L = Σ g ⊙ op(operands), each operand a param: ∂L/∂operand is the op's vjp of g."""
    graph = nx.DiGraph()
    for i, x in enumerate(operands):
        graph.add_node(f"x{i}", op="param", shape=np.shape(x))
        graph.add_edge(f"x{i}", "out", arg=i)
    graph.add_node("out", op=name, **attrs)
    graph.add_node("L", op="sum")
    if np.size(g) == 0:  # nothing to weigh (and no empty const a file could hold)
        graph.add_edge("out", "L")
        return gb.Network(graph, loss="L")
    graph.add_node("g", op="const", value=g)
    graph.add_node("weighted", op="mul")
    graph.add_edge("out", "weighted", arg=0)
    graph.add_edge("g", "weighted", arg=1)
    graph.add_edge("weighted", "L")
    return gb.Network(graph, loss="L")


def _reference(prim: Callable[..., Any], operands: tuple[Any, ...], g: Any) -> tuple[Any, list]:
    """The lax primitive's value and its cotangents (zero for an output that is not a float,
    as JAX gives float0 there)."""
    with jax.enable_x64(True):
        xs = [jnp.asarray(x, jnp.float64) for x in operands]
        want = prim(*xs)
        if not jnp.issubdtype(want.dtype, jnp.floating):
            return np.asarray(want).astype(np.float64), [np.zeros(np.shape(x)) for x in xs]
        _, pullback = jax.vjp(prim, *xs)
        return np.asarray(want), [np.asarray(c) for c in pullback(jnp.asarray(g))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_op_equals_its_lax_primitive(case: Case, backend: str) -> None:
    name, operands, attrs, prim = case
    with jax.enable_x64(True):
        shape = jax.eval_shape(prim, *[jnp.asarray(x, jnp.float64) for x in operands]).shape
    g = np.random.default_rng(7).standard_normal(shape)
    want, cts = _reference(prim, operands, g)
    net = _network(name, operands, attrs, g)
    assert net.shapes["out"] == tuple(shape)
    prog = net.compile(backend, dtype="float64")
    params = {f"x{i}": np.asarray(x, np.float64) for i, x in enumerate(operands)}
    got = prog.forward(params, {}, outputs=["out"])["out"]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=0)
    loss, grads = prog.value_and_grad(params, {})
    np.testing.assert_allclose(float(loss), float(np.sum(g * want)), rtol=1e-12, atol=1e-12)
    for i, ct in enumerate(cts):
        np.testing.assert_allclose(np.asarray(grads[f"x{i}"]), ct, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES[::3], ids=_id)
def test_op_keeps_a_float32_program_in_float32(case: Case, backend: str) -> None:
    name, operands, attrs, prim = case
    with jax.enable_x64(True):
        shape = jax.eval_shape(prim, *[jnp.asarray(x, jnp.float64) for x in operands]).shape
    g = np.random.default_rng(7).standard_normal(shape)
    want, cts = _reference(prim, operands, g)
    prog = _network(name, operands, attrs, g).compile(backend, dtype="float32")
    params = {f"x{i}": np.asarray(x, np.float32) for i, x in enumerate(operands)}
    got = prog.forward(params, {}, outputs=["out"])["out"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
    _, grads = prog.value_and_grad(params, {})
    for i, ct in enumerate(cts):
        assert grads[f"x{i}"].dtype == np.float32
        np.testing.assert_allclose(np.asarray(grads[f"x{i}"]), ct, rtol=1e-5, atol=1e-5)


HOSTILE: list[tuple[str, tuple[tuple[int, ...], ...], dict[str, Any], str]] = [
    ("broadcast_in_dim", ((3,),), {"out_shape": "34", "broadcast_dimensions": [0]}, "out_shape"),
    ("broadcast_in_dim", ((3,),), {"out_shape": [3, -4], "broadcast_dimensions": [0]}, "negative"),
    ("broadcast_in_dim", ((3,),), {"out_shape": [4, 3], "broadcast_dimensions": [0]}, "size 3"),
    ("broadcast_in_dim", ((3,),), {"out_shape": [2, 3], "broadcast_dimensions": [2]}, "axis"),
    ("broadcast_in_dim", ((3,),), {"out_shape": [3], "broadcast_dimensions": []}, "entries"),
    ("broadcast_in_dim", ((1, 1),), {"out_shape": [3], "broadcast_dimensions": [0, 0]}, "axes"),
    ("broadcast_in_dim", ((3,),), {"out_shape": [3], "broadcast_dimensions": [True]}, "bool"),
    ("broadcast_in_dim", ((1,),), {"out_shape": [2**40], "broadcast_dimensions": [0]}, ""),
    ("reshape", ((3, 4),), {"new_sizes": [5, -1]}, "cannot reshape"),
    ("reshape", ((3, 4),), {"new_sizes": [-1, -1]}, "one -1"),
    ("reshape", ((3, 4),), {"new_sizes": [12.0]}, "float"),
    ("reshape", ((3, 4),), {"new_sizes": 12}, "list"),
    ("reshape", ((3, 4),), {"new_sizes": [12], "dimensions": [1, 0]}, "not supported"),
    ("reshape", ((0, 4),), {"new_sizes": [0, -1]}, "cannot reshape"),
    ("transpose", ((3, 4),), {"permutation": [0, 0]}, "twice"),
    ("transpose", ((3, 4),), {"permutation": [0]}, "every axis"),
    ("transpose", ((3, 4),), {"permutation": [0, 2]}, "out of"),
    ("squeeze", ((3, 1),), {"dimensions": [0]}, "size 3"),
    ("squeeze", ((3, 1),), {"dimensions": [2]}, "out of"),
    ("expand_dims", ((3,),), {"dimensions": [0, 0]}, "twice"),
    ("expand_dims", ((3,),), {"dimensions": [5]}, "out of"),
    ("rev", ((2, 3),), {"dimensions": [2]}, "out of bounds"),
    ("rev", ((2, 3),), {"dimensions": [1, -1]}, "twice"),
    ("tile", ((2, 3),), {"reps": [2]}, "entries"),
    ("tile", ((2, 3),), {"reps": [2, -1]}, "negative"),
    ("concatenate", ((2, 3), (2, 4)), {"dimension": 0}, "differ"),
    ("concatenate", ((2, 3), (3,)), {"dimension": 0}, "same number of axes"),
    ("concatenate", ((2, 3), (2, 3)), {"dimension": 2}, "out of range"),
    ("concatenate", ((2, 3), (2, 3)), {"dimension": 1.0}, "int"),
    ("slice", ((5,),), {"start_indices": [3], "limit_indices": [2]}, "start"),
    ("slice", ((5,),), {"start_indices": [-1], "limit_indices": [5]}, "start"),
    ("slice", ((5,),), {"start_indices": [0], "limit_indices": [6]}, "limit"),
    ("slice", ((5,),), {"start_indices": [0], "limit_indices": [5], "strides": [0]}, "stride"),
    ("slice", ((5, 2),), {"start_indices": [0], "limit_indices": [5, 2]}, "entries"),
    ("pad", ((3,), ()), {"padding_config": [[0, 0, -1]]}, "interior"),
    ("pad", ((3,), ()), {"padding_config": [[-2, -2, 0]]}, "leaves"),
    ("pad", ((3,), ()), {"padding_config": [[0, 0]]}, "entries"),
    ("pad", ((3,), ()), {"padding_config": [[0, 0, 0], [0, 0, 0]]}, "per axis"),
    ("pad", ((3,), (1,)), {"padding_config": [[0, 0, 0]]}, "scalar"),
    ("convert_element_type", ((3,),), {"new_dtype": "complex64"}, "not supported"),
    ("convert_element_type", ((3,),), {"new_dtype": 5}, "dtype name"),
    ("select_n", ((2,), (3,), (3,)), {}, "broadcast"),
    ("lt", ((2,), (3,)), {}, "broadcast"),
    # hostile lengths are refused before any per-entry work; huge ints are cut in messages
    ("expand_dims", ((3,),), {"dimensions": list(range(-1, -20001, -1))}, "20,000 entries"),
    ("reshape", ((3,),), {"new_sizes": [2**60] * 20000}, "new_sizes has 20,000 entries"),
    ("broadcast_in_dim", ((3,),), {"out_shape": [3] * 40, "broadcast_dimensions": [0]}, "40"),
    ("slice", ((5,),), {"start_indices": [10**400], "limit_indices": [5]}, "start_indices 1000"),
    ("pad", ((3,), ()), {"padding_config": [[0, 0, -(10**400)]]}, "interior padding -1000"),
    ("pad", ((3,), ()), {"padding_config": [[-(10**400), 0, 0]]}, "leaves"),
]


@pytest.mark.parametrize(("name", "shapes", "attrs", "says"), HOSTILE)
def test_hostile_attributes_are_a_graph_error_naming_the_node(
    name: str, shapes: tuple[tuple[int, ...], ...], attrs: dict[str, Any], says: str
) -> None:
    graph = nx.DiGraph()
    for i, shape in enumerate(shapes):
        graph.add_node(f"x{i}", op="input", shape=shape)
        graph.add_edge(f"x{i}", "culprit", arg=i)
    graph.add_node("culprit", op=name, **attrs)
    graph.add_node("L", op="sum")
    graph.add_edge("culprit", "L")
    with pytest.raises(GraphError, match="culprit") as info:
        gb.Network(graph, loss="L")
    assert says in str(info.value)
    assert "\n" not in str(info.value) and len(str(info.value)) < 500, str(info.value)


def _as_attrs(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """A jaxpr equation's params as the importer gives them to the op (contract12): JSON-plain,
    ``shape`` renamed ``out_shape``, dtypes by name, sharding and weak types dropped."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        return int(v) if isinstance(v, np.integer) else v

    attrs = {k: plain(v) for k, v in params.items() if k not in ("sharding", "weak_type")}
    if name == "broadcast_in_dim":
        attrs["out_shape"] = attrs.pop("shape")
    if name == "convert_element_type":
        attrs["new_dtype"] = np.dtype(params["new_dtype"]).name
    return attrs


def _model(params: Any, x: Any, ids: Any) -> Any:
    """Every shape op as jnp and jax.nn write them: an MLP with layer norm, slicing, padding,
    concatenation, where, one-hot and log-softmax (max-subtraction, stop_gradient)."""
    h = jax.nn.gelu(x @ params["W"] + params["b"])
    h = (h - h.mean(-1, keepdims=True)) * lax.rsqrt(h.var(-1, keepdims=True) + 1e-5)
    h = jnp.concatenate([h, h[:, :2], jnp.pad(h, ((0, 0), (1, 2)))[:, ::3]], axis=1)
    z = jax.nn.relu(h) + jnp.where(h > 0.1, h, -h) + jnp.expand_dims(h, 0).squeeze(0).T.T
    lp = jax.nn.log_softmax(z)
    return -jnp.mean(jnp.sum(jax.nn.one_hot(ids, z.shape[-1]) * lp, -1)) + jnp.mean(
        jnp.maximum(z, 0).astype(jnp.int32).reshape(-1, 2)
    )


def test_ops_compute_the_equations_of_a_real_jaxpr() -> None:
    """Each equation of a traced model whose primitive is a shape op, run by the op on the
    values JAX computed for its inputs, equals JAX's own output (booleans and ints as 0/1 and
    integer-valued floats)."""
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((4, 5)), "b": rng.standard_normal(5)}
    args = (params, rng.standard_normal((3, 4)), np.array([0, 3, 2]))
    seen: set[str] = set()
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(_model)(*args)

        def run(jaxpr: Any, consts: list[Any], values: list[Any]) -> list[Any]:
            env = dict(zip(jaxpr.constvars, consts, strict=True))
            env.update(zip(jaxpr.invars, values, strict=True))

            def read(v: Any) -> Any:
                return v.val if type(v).__name__ == "Literal" else env[v]

            for eqn in jaxpr.eqns:
                ins = [read(v) for v in eqn.invars]
                inner = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr")
                if inner is not None and eqn.primitive.name in ("jit", "pjit", "custom_jvp_call"):
                    outs = run(inner.jaxpr, list(inner.consts), ins)
                else:
                    outs = eqn.primitive.bind(*ins, **eqn.params)
                    outs = outs if eqn.primitive.multiple_results else [outs]
                    _compare_equation(eqn, ins, outs[0], seen)
                env.update(zip(eqn.outvars, outs, strict=True))
            return [read(v) for v in jaxpr.outvars]

        run(closed.jaxpr, list(closed.consts), jax.tree_util.tree_leaves(args))
    mine = {"broadcast_in_dim", "reshape", "transpose", "squeeze", "concatenate", "slice"}
    mine |= {"pad", "convert_element_type", "stop_gradient", "select_n", "eq", "gt"}
    assert mine <= seen


def _compare_equation(eqn: Any, ins: list[Any], want: Any, seen: set[str]) -> None:
    name = eqn.primitive.name
    if name not in gb.ops() or type(get_op(name)).__module__ != "graphbp_ops.structure":
        return
    op = get_op(name)
    seen.add(name)
    attrs = _as_attrs(name, dict(eqn.params))
    operands = [np.asarray(x, np.float64) for x in ins]
    if name == "concatenate":  # n-ary in the jaxpr: a chain of binary ones
        got = operands[0]
        for x in operands[1:]:
            got = op.forward(np, got, x, **attrs)
    else:
        got = op.forward(np, *operands, **attrs)
    np.testing.assert_allclose(got, np.asarray(want, np.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_a_network_of_the_op_round_trips_through_json(case: Case, tmp_path: Any) -> None:
    name, operands, attrs, prim = case
    with jax.enable_x64(True):
        shape = jax.eval_shape(prim, *[jnp.asarray(x, jnp.float64) for x in operands]).shape
    net = _network(name, operands, attrs, np.ones(shape))
    net.to_json(tmp_path / "net.json")
    back = gb.Network.from_json(tmp_path / "net.json")
    assert dict(back.graph.nodes["out"]) == {"op": name, **attrs}
    params = {f"x{i}": np.asarray(x, np.float64) for i, x in enumerate(operands)}
    want = net.compile().value_and_grad(params, {})
    got = back.compile().value_and_grad(params, {})
    assert float(got[0]) == float(want[0])
    for k in want[1]:
        np.testing.assert_array_equal(got[1][k], want[1][k])


def _more_structure(params: Any, x: Any) -> Any:
    """jnp.flip, jnp.tile, jnp.stack, jnp.split and a dynamic_slice at constant starts (one
    clamped as JAX clamps it), each a primitive of its own in the jaxpr."""
    h = jnp.tanh(x @ params["W"])
    a, b = jnp.split(h, 2, axis=1)
    s = jnp.stack([a, jnp.flip(b, 0), a * b], axis=1)
    t = jnp.tile(s, (1, 2, 1))
    d = lax.dynamic_slice(s, (0, 4, 0), (s.shape[0], 2, 2))  # starts at 1: 4 is past the end
    return jnp.sum(t**2) + jnp.sum(d * t[:, :2]) + jnp.sum(jnp.stack([params["b"]]) * t[:, 0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_flip_tile_stack_split_and_constant_dynamic_slice_import_with_jax_gradients(
    dtype: str,
) -> None:
    rng = np.random.default_rng(1)
    params = {"W": rng.standard_normal((3, 4)).astype(dtype), "b": rng.standard_normal(2)}
    params["b"] = params["b"].astype(dtype)
    x = rng.standard_normal((5, 3)).astype(dtype)
    with jax.enable_x64(dtype == "float64"):
        want, want_grads = jax.value_and_grad(_more_structure)(params, x)
    net, p, inputs = gb.from_jax(_more_structure, params, x)
    ops = {net.op_name(n) for n in net.order}
    assert {"rev", "tile", "expand_dims", "concatenate", "slice"} <= ops
    assert "opaque" not in ops
    rtol = 1e-10 if dtype == "float64" else 1e-5
    for backend in BACKENDS:
        loss, grads = net.compile(backend, dtype=dtype).value_and_grad(p, inputs)
        np.testing.assert_allclose(float(loss), float(want), rtol=rtol)
        for k in ("W", "b"):
            np.testing.assert_allclose(grads[k], want_grads[k], rtol=rtol, atol=rtol)


def _semi_gradient(params: Any, x: Any) -> Any:
    """A loss against a target whose gradient is stopped (as in TD learning): the gradient is
    not the loss's derivative, yet it is what JAX computes."""
    h = jnp.tanh(x @ params["W"])
    target = lax.stop_gradient(h * 2.0 + params["b"])
    return jnp.sum((h - target) ** 2) + jnp.sum(jax.nn.softmax(h))


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_network_holds_stopped_values_fixed(backend: str) -> None:
    rng = np.random.default_rng(2)
    p = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    net, params, inputs = gb.from_jax(_semi_gradient, p, rng.standard_normal((5, 3)))
    prog = net.compile(backend)
    loss, grads = prog.value_and_grad(params, inputs)
    np.testing.assert_array_equal(grads["b"], 0.0)  # b reaches the loss only through the stop
    moved = prog.loss({**params, "b": params["b"] + 0.1}, inputs)
    assert abs(float(moved) - float(loss)) > 1e-3  # ... though the loss depends on b
    report = check_network(net, backend, params=params, inputs=inputs)
    assert report.compared > 0 and report.max_rel_error < 1e-6
