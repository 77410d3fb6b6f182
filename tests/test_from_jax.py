"""gb.from_jax: a JAX function becomes a graphbp network — naming, scopes, source lines,
inlining, dead code, constant folding, the opaque path, JSON, and everything a hand-built
network supports. The model families and the random-function test are tests/test_jax_models.py.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import graphbp as gb  # noqa: E402
from graphbp.testing import check_network  # noqa: E402

HERE = Path(__file__).name


def _line(fn: Any, text: str) -> str:
    """``test_from_jax.py:N``: the line of ``fn``'s source that contains ``text``."""
    lines, start = inspect.getsourcelines(fn)
    (k,) = [i for i, line in enumerate(lines) if text in line]
    return f"{HERE}:{start + k}"


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def mlp_loss(params: dict[str, Any], x: Any, y: Any) -> Any:
    h = jax.nn.gelu(x @ params["W1"] + params["b1"])
    return jnp.mean((h @ params["W2"] + params["b2"] - y) ** 2)


def _mlp_args(dtype: Any = np.float64) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = _rng()
    params = {
        "W1": rng.standard_normal((3, 4)),
        "b1": rng.standard_normal(4),
        "W2": rng.standard_normal((4, 2)),
        "b2": rng.standard_normal(2),
    }
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    cast = {k: v.astype(dtype) for k, v in params.items()}
    return cast, x.astype(dtype), y.astype(dtype)


def _jax_value_and_grad(fn: Any, args: tuple[Any, ...], argnums: Any = 0) -> tuple[Any, Any]:
    x64 = any(np.asarray(v).dtype == np.float64 for v in jax.tree_util.tree_leaves(args))
    with jax.enable_x64(x64):
        loss, grads = jax.value_and_grad(fn, argnums=argnums)(*args)
    return float(loss), jax.tree_util.tree_map(np.asarray, grads)


def _by_name(grads: Any) -> dict[str, np.ndarray]:
    """JAX's gradient pytree flattened to graphbp's names (keys joined by ".")."""
    flat, _ = jax.tree_util.tree_flatten_with_path(grads)
    names = {}
    for path, leaf in flat:
        keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        names[".".join(keys)] = np.asarray(leaf)
    return names


def _assert_matches(
    fn: Any, args: tuple[Any, ...], backend: str, dtype: str, rtol: float, argnums: Any = 0
) -> gb.Network:
    net, params, inputs = gb.from_jax(fn, *args, argnums=argnums)
    loss, grads = net.compile(backend, dtype=dtype).value_and_grad(params, inputs)
    want_loss, want = _jax_value_and_grad(fn, args, argnums)
    assert loss == pytest.approx(want_loss, rel=rtol)
    want_named = _by_name(want) if not isinstance(want, np.ndarray) else {net.params[0]: want}
    assert set(grads) == set(want_named)
    for name, value in want_named.items():
        scale = max(float(np.max(np.abs(value))), 1e-30)
        err = float(np.max(np.abs(np.asarray(grads[name], np.float64) - value))) / scale
        assert err < rtol, (name, err)
    return net


# ------------------------------------------------------------------ the README example


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-10), ("float32", 1e-5)])
def test_readme_gelu_mlp_value_and_grad_equal_jax(backend: str, dtype: str, rtol: float) -> None:
    net = _assert_matches(mlp_loss, _mlp_args(np.dtype(dtype)), backend, dtype, rtol)
    assert net.loss == "loss"
    assert sorted(net.params) == ["W1", "W2", "b1", "b2"]
    assert sorted(net.inputs) == ["x", "y"]


def test_returned_arrays_are_copies_with_their_dtypes() -> None:
    p = {"emb": np.arange(12.0).reshape(6, 2)}
    ids = np.array([1, 4, 5], dtype=np.int32)

    def loss(p: Any, ids: Any) -> Any:
        return jnp.sum(p["emb"][ids] ** 2)

    _net, params, inputs = gb.from_jax(loss, p, ids)
    assert inputs["ids"].dtype == np.int32 and params["emb"].dtype == np.float64
    assert params["emb"] is not p["emb"] and inputs["ids"] is not ids
    params["emb"][0, 0] = 99.0
    assert p["emb"][0, 0] == 0.0


# ------------------------------------------------------------------ naming


def test_parameter_leaves_are_named_by_their_path_inputs_by_the_argument() -> None:
    params = {"layers": [{"w": np.ones((2, 2))}, {"w": np.ones((2, 1))}], "scale": np.ones(())}
    batch = {"x": np.ones((3, 2)), "y": np.ones((3, 1))}

    def loss(params: Any, batch: Any) -> Any:
        h = batch["x"]
        for layer in params["layers"]:
            h = jnp.tanh(h @ layer["w"])
        return jnp.sum((h * params["scale"] - batch["y"]) ** 2)

    net, p, x = gb.from_jax(loss, params, batch)
    assert sorted(net.params) == sorted(p) == ["layers.0.w", "layers.1.w", "scale"]
    assert sorted(net.inputs) == sorted(x) == ["batch.x", "batch.y"]


def test_a_bare_array_parameter_is_named_by_the_functions_parameter() -> None:
    def loss(w: Any, b: Any, x: Any) -> Any:
        return jnp.sum(jnp.tanh(x @ w + b))

    _net, params, inputs = gb.from_jax(
        loss, np.ones((2, 3)), np.ones(3), np.ones((4, 2)), argnums=(0, 1)
    )
    assert sorted(params) == ["b", "w"] and list(inputs) == ["x"]


def test_tuples_namedtuples_and_objects_in_paths() -> None:
    from typing import NamedTuple

    class Layer(NamedTuple):
        w: Any
        b: Any

    def loss(layers: Any, x: Any) -> Any:
        return jnp.sum(x @ layers[0].w + layers[0].b) + jnp.sum(layers[1][0])

    _net, params, _ = gb.from_jax(
        loss, (Layer(np.ones((2, 2)), np.ones(2)), (np.ones(3),)), np.ones((1, 2))
    )
    assert sorted(params) == ["0.b", "0.w", "1.0"]


def test_names_fall_back_to_arg_i_without_a_signature() -> None:
    def loss(*args: Any) -> Any:
        return jnp.sum(args[0] * args[1])

    _, params, inputs = gb.from_jax(loss, np.ones(3), np.ones(3))
    assert list(params) == ["arg0"] and list(inputs) == ["arg1"]
    _, params, inputs = gb.from_jax(lambda *a: jnp.sum(a[0] * a[1]), np.ones(3), np.ones(3))
    assert list(params) == ["arg0"] and list(inputs) == ["arg1"]


def test_a_partial_keeps_the_names_of_its_remaining_positional_parameters() -> None:
    def loss(scale: Any, w: Any, x: Any) -> Any:
        return jnp.sum(scale * w * x)

    _net, params, inputs = gb.from_jax(functools.partial(loss, 2.0), np.ones(3), np.ones(3))
    assert list(params) == ["w"] and list(inputs) == ["x"]


def test_clashing_leaves_are_prefixed_with_their_argument() -> None:
    def loss(enc: Any, dec: Any, x: Any) -> Any:
        return jnp.sum(x * enc["W"] * dec["W"] * enc["b"])

    w = {"W": np.ones(3), "b": np.ones(3)}
    _net, params, _ = gb.from_jax(loss, w, {"W": np.ones(3)}, np.ones(3), argnums=(0, 1))
    assert sorted(params) == ["b", "dec.W", "enc.W"]


def test_a_leaf_named_loss_or_like_an_intermediate_node_does_not_clash() -> None:
    def f(p: Any, x: Any) -> Any:
        return jnp.sum(p["loss"] * x + p["add_1"])

    net, params, _ = gb.from_jax(f, {"loss": np.ones(3), "add_1": np.ones(3)}, np.ones(3))
    assert sorted(params) == ["add_1", "p.loss"]
    assert net.loss == "loss" and net.kind["loss"] == "op"
    assert net.kind["add_1"] == "param"
    ops = [n for n in net.order if net.kind[n] == "op"]
    assert all(n == "loss" or n.rsplit("_", 1)[1].isdigit() for n in ops)


def test_a_key_that_breaks_the_name_rule_is_refused_clearly() -> None:
    with pytest.raises(gb.InputError, match=r"params\['a\\nb'\].*control character.*rename"):
        gb.from_jax(lambda params: jnp.sum(params["a\nb"]), {"a\nb": np.ones(2)})


def test_intermediate_and_constant_names() -> None:
    net, _, _ = gb.from_jax(mlp_loss, *_mlp_args())
    ops = {n: net.op_name(n) for n in net.order if net.kind[n] == "op" and n != "loss"}
    assert all(name.startswith(f"{op}_") for name, op in ops.items())
    consts = [n for n in net.order if net.kind[n] == "const"]
    assert consts and all(n.startswith("const_") for n in consts)
    values = [float(net.attrs[n]["value"]) for n in consts]
    assert len(values) == len(set(values))  # equal scalar literals share one const node


# ------------------------------------------------------------------ argnums and the loss


def test_argnums_forms() -> None:
    args = _mlp_args()
    _, params, inputs = gb.from_jax(mlp_loss, *args, argnums=(0, 2))
    assert sorted(params) == ["W1", "W2", "b1", "b2", "y"] and list(inputs) == ["x"]
    _, params, _ = gb.from_jax(mlp_loss, *args, argnums=-1)
    assert list(params) == ["y"]
    net, params, inputs = gb.from_jax(mlp_loss, *args, argnums=(0, 2))
    _, grads = net.compile().value_and_grad(params, inputs)
    _, (gp, gy) = _jax_value_and_grad(mlp_loss, args, (0, 2))
    np.testing.assert_allclose(grads["y"], gy, rtol=1e-10)
    np.testing.assert_allclose(grads["W1"], gp["W1"], rtol=1e-10)


@pytest.mark.parametrize(
    ("argnums", "message"),
    [
        (3, "3 is out of range for 3 argument"),
        ((0, 0), "names argument 0 twice"),
        ((0, -3), "names argument 0 twice"),
        (True, "holds True, not an int"),
        ("0", "holds '0', not an int"),
        ((), "names no argument"),
    ],
)
def test_bad_argnums_are_refused(argnums: Any, message: str) -> None:
    with pytest.raises(gb.InputError, match=message):
        gb.from_jax(mlp_loss, *_mlp_args(), argnums=argnums)


def test_an_integer_parameter_is_refused() -> None:
    with pytest.raises(gb.InputError, match="parameter 'n'.*int64.*not in argnums"):
        gb.from_jax(lambda n, x: jnp.sum(x * n), np.array(2), np.ones(3))


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda w: (jnp.sum(w), w), "returned tuple of 2 array"),
        (lambda w: w * 2, r"returned an array of shape \(3,\)"),
        (lambda w: jnp.sum(w).astype(jnp.int32), "returned a scalar of dtype int32"),
    ],
)
def test_fn_must_return_one_float_scalar(fn: Any, message: str) -> None:
    with pytest.raises(gb.InputError, match=message + ".*one float scalar"):
        gb.from_jax(fn, np.ones(3))


def test_a_leaf_that_is_not_an_array_of_numbers_is_refused() -> None:
    with pytest.raises(gb.InputError, match=r"argument leaf p\['s'\] is 'text'"):
        gb.from_jax(lambda p: jnp.sum(p["w"]), {"w": np.ones(2), "s": "text"})


# ------------------------------------------------------------------ scopes and source lines


@jax.jit
def attention(q: Any, k: Any) -> Any:
    with jax.named_scope("scores"):
        s = jnp.einsum("qd,kd->qk", q, k) / 2.0
    return jax.nn.softmax(s, axis=-1)


def scoped_loss(p: Any, x: Any) -> Any:
    with jax.named_scope("block"):
        a = attention(x @ p["wq"], x @ p["wk"])
        h = jnp.where(a > 0.1, a, 0.0)
    return jnp.sum(jax.nn.relu(h)) + jnp.var(x @ p["wq"])


def _scoped() -> gb.Network:
    rng = _rng()
    p = {"wq": rng.standard_normal((3, 2)), "wk": rng.standard_normal((3, 2))}
    net, _, _ = gb.from_jax(scoped_loss, p, rng.standard_normal((4, 3)))
    return net


def test_scopes_are_named_scopes_and_the_users_jit_functions() -> None:
    net = _scoped()
    scopes = {net.graph.nodes[n].get("scope") for n in net.order}
    assert {"block", "block/attention", "block/attention/scores"} <= scopes
    # jnp.where, jax.nn.relu, jax.nn.softmax, jnp.var and einsum are jitted or scoped by JAX
    # itself: none of their names is a scope
    names = ("_where", "relu", "softmax", "_var", "_einsum", "qd,kd->qk")
    assert not any(part in names for s in scopes if s for part in s.split("/"))
    div = [n for n in net.order if net.graph.nodes[n].get("scope") == "block/attention/scores"]
    assert [net.op_name(n) for n in div] == ["dot_general", "div"]
    leaves = [n for n in net.order if net.kind[n] != "op"]
    assert all("scope" not in net.graph.nodes[n] for n in leaves)
    assert "scope" not in net.graph.nodes["loss"]  # the final add sits in no scope


def test_named_scopes_with_empty_parts_import_as_their_named_parts() -> None:
    def loss(w: Any) -> Any:
        with jax.named_scope("/lead"), jax.named_scope("a//b/"):
            y = jnp.tanh(w)
        return jnp.sum(y)

    net, _, _ = gb.from_jax(loss, np.ones(3))
    scopes = {net.graph.nodes[n].get("scope") for n in net.order}
    assert "lead/a/b" in scopes


def test_source_lines_point_at_the_users_code() -> None:
    net = _scoped()
    scoped = {n for n in net.order if "scope" in net.graph.nodes[n]}
    sources = {net.graph.nodes[n].get("source") for n in net.order if net.kind[n] == "op"}
    assert _line(attention, "jnp.einsum") in sources
    assert _line(scoped_loss, "jnp.where") in sources
    assert net.graph.nodes["loss"]["source"] == _line(scoped_loss, "return")
    # JAX's relu (a custom_jvp function, one relu node) gets the line that called it
    (relu,) = [n for n in net.order if net.op_name(n) == "relu" and n not in scoped]
    assert net.graph.nodes[relu]["source"] == _line(scoped_loss, "return")
    assert all(net.graph.nodes[n].get("source") is None for n in net.inputs + net.params)


def test_source_is_reserved_and_validated_as_text() -> None:
    g = nx.DiGraph()
    g.add_node("w", op="param", shape=(2,))
    g.add_node("L", op="sum", source="model.py:3")
    g.add_edge("w", "L")
    net = gb.Network(g, loss="L")
    assert net.attrs["L"] == {}  # not passed to the op
    g.nodes["L"]["source"] = "a\nb"
    with pytest.raises(gb.GraphError, match="source='a\\\\nb'.*control character"):
        gb.Network(g, loss="L")


def test_the_drawing_shows_the_source_line_in_the_tooltip() -> None:
    net = _scoped()
    dot = gb.render(net, wrt="wq").source
    assert f'tooltip="loss (add) — {_line(scoped_loss, "return")}"' in dot


# ------------------------------------------------------------------ inlining, dead code, folding


@jax.custom_vjp
def clipped_sin(x: Any) -> Any:
    return jnp.sin(x)


clipped_sin.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x),))


@jax.custom_jvp
def soft(x: Any) -> Any:
    return jnp.log1p(jnp.exp(x)) if False else jnp.tanh(x) * 2.0


soft.defjvp(
    lambda primals, tangents: (
        soft(primals[0]),
        2.0 * (1 - jnp.tanh(primals[0]) ** 2) * tangents[0],
    )
)


def test_jit_checkpoint_and_jaxs_own_custom_rules_are_inlined() -> None:
    def loss(w: Any, x: Any) -> Any:
        h = jax.jit(lambda a: a @ w)(x)
        h = jax.checkpoint(lambda a: jnp.tanh(a))(h)
        return jnp.sum(jax.nn.softplus(h) + jax.nn.relu(h) + jax.nn.softmax(h))

    rng = _rng()
    args = (rng.standard_normal((3, 2)), rng.standard_normal((4, 3)))
    for backend in ("numpy", "jax"):
        net = _assert_matches(loss, args, backend, "float64", 1e-10)
    assert "opaque" not in {net.op_name(n) for n in net.order}


@jax.custom_vjp
def straight_through(x: Any) -> Any:
    return jnp.round(x)


straight_through.defvjp(lambda x: (jnp.round(x), None), lambda _, g: (g,))


def test_a_users_own_derivative_rule_is_honoured_by_an_opaque_node() -> None:
    """A custom_vjp/custom_jvp of the user's has a rule its body's derivative does not give
    (here a straight-through estimator, whose body's derivative is 0): it runs on JAX."""

    def loss(w: Any, x: Any) -> Any:
        h = x @ w
        return jnp.sum((straight_through(h) - 1.0) ** 2 + clipped_sin(h) + soft(h))

    rng = _rng()
    args = (rng.standard_normal((3, 2)), 3 * rng.standard_normal((4, 3)))
    net = _assert_matches(loss, args, "jax", "float64", 1e-10)
    primitives = sorted(net.attrs[n]["primitive"] for n in net.order if net.op_name(n) == "opaque")
    assert primitives == ["custom_jvp_call", "custom_vjp_call", "custom_vjp_call"]
    with pytest.raises(gb.GraphError, match=r"JAX primitive .custom_vjp_call., from test_from_jax"):
        net.compile("numpy")


def test_dead_code_and_unused_outputs_are_dropped() -> None:
    def loss(w: Any, x: Any) -> Any:
        unused = jnp.exp(x) @ w  # noqa: F841  (dead code)
        carry, _ = jax.lax.scan(lambda c, xi: (c + xi @ w, jnp.sin(c)), jnp.zeros(2), x)
        return jnp.sum(carry)

    rng = _rng()
    net, _, _ = gb.from_jax(loss, rng.standard_normal((3, 2)), rng.standard_normal((4, 3)))
    ops = [net.op_name(n) for n in net.order]
    assert "exp" not in ops
    # scan's second output is unused (a DropVar): one output, so no packing slices
    assert ops.count("opaque") == 1 and "slice" not in ops


def test_equations_of_constants_are_folded_and_big_ones_stay_ops() -> None:
    small = np.arange(6.0).reshape(2, 3)
    big = np.ones((2000, 3))

    def loss(w: Any) -> Any:
        scale = jnp.exp(jnp.arange(3.0) / 3.0) * 2.0  # constants only: folded
        return jnp.sum(w * scale) + jnp.sum(small.T @ w[:2]) + jnp.sum((big * 2.0) @ w[:1].T)

    net, _, _ = gb.from_jax(loss, np.ones((3, 3)))
    ops = [net.op_name(n) for n in net.order]
    assert "exp" not in ops and "iota" not in ops
    consts = {n: np.shape(net.attrs[n]["value"]) for n in net.order if net.kind[n] == "const"}
    assert (3,) in consts.values()  # the folded scale (its broadcast left to the product)
    assert (2000, 3) in consts.values()  # the big closed-over array, a const node...
    assert "mul" in ops  # ... whose product with 2 (6,000 elements) stays an op
    _assert_matches(loss, (np.ones((3, 3)),), "numpy", "float64", 1e-12)


def causal_attention_loss(p: Any, x: Any) -> Any:
    """Attention with a causal mask: ``-jnp.inf`` above the diagonal."""
    t = x.shape[1]
    s = (x @ p["q"]) @ jnp.swapaxes(x @ p["k"], 1, 2)
    s = jnp.where(jnp.tril(jnp.ones((t, t), bool)), s, -jnp.inf)
    return jnp.mean(jax.nn.softmax(s, -1) @ x)


def test_a_non_finite_constant_is_a_const_node_that_trains_and_saves(tmp_path: Path) -> None:
    rng = _rng()
    p = {"q": rng.standard_normal((3, 3)), "k": rng.standard_normal((3, 3))}
    x = rng.standard_normal((8, 4, 3))
    net, params, inputs = gb.from_jax(causal_attention_loss, p, x)
    assert list(inputs) == ["x"]
    consts = [net.attrs[n]["value"] for n in net.order if net.kind[n] == "const"]
    assert any(np.any(np.isneginf(v)) for v in consts)
    for backend in ("numpy", "jax"):
        _assert_matches(causal_attention_loss, (p, x), backend, "float64", 1e-10)
    trained, history = gb.train(
        net.compile("numpy"), params, inputs, lr=0.1, epochs=3, batch_size=8, progress=False
    )
    assert len(history) == 3 and all(np.isfinite(history))
    net.to_json(tmp_path / "net.json")
    back = gb.Network.from_json(tmp_path / "net.json")
    assert back.to_json_bytes() == net.to_json_bytes()
    assert back.compile("numpy").loss(trained, inputs) == net.compile("numpy").loss(trained, inputs)
    for backend, traversal in [("numpy", "generated"), ("numpy", "interpreted"), ("jax", None)]:
        # the mask's -inf is passed on by select_n and sub: no node went non-finite
        prog = net.compile(backend, check_finite=True, traversal=traversal)
        assert np.isfinite(float(prog.value_and_grad(trained, inputs)[0]))


def scaled_loss(w: Any, x: Any, scale: Any) -> Any:
    return jnp.mean((x @ w) ** 2) * scale


def mixed_loss(w: Any, x: Any, m: Any) -> Any:
    return jnp.mean((x @ m @ w) ** 2)


def test_training_an_input_with_no_batch_axis_names_it_and_the_fix() -> None:
    rng = _rng()
    w, x = rng.standard_normal((4, 2)), rng.standard_normal((8, 4))
    cases = [
        (scaled_loss, np.float64(2.0), r"input 'scale' is a scalar, with no batch axis"),
        (mixed_loss, rng.standard_normal((4, 4)), r"input 'm' has 4 rows .* input 'x' has 8"),
    ]
    for fn, extra, match in cases:
        net, params, inputs = gb.from_jax(fn, w, x, extra)
        prog = net.compile("numpy")
        with pytest.raises(gb.InputError, match=match) as info:
            gb.train(prog, params, inputs, epochs=1, batch_size=8, progress=False)
        assert "functools.partial" in str(info.value) and "argnums" in str(info.value)
        bound = functools.partial(fn, **{list(inspect.signature(fn).parameters)[2]: extra})
        net, params, inputs = gb.from_jax(bound, w, x)  # the fix the message gives
        _, history = gb.train(
            net.compile("numpy"), params, inputs, epochs=2, batch_size=8, progress=False
        )
        assert len(history) == 2


def fft_loss(w: Any) -> Any:
    return jnp.real(jnp.sum(jnp.fft.fft(w) ** 2))


def complex_scale_loss(w: Any) -> Any:
    return jnp.sum(jnp.abs(w * (1 + 2j)))


def test_a_complex_value_is_refused_naming_the_primitive_and_line() -> None:
    w = np.array([0.3, -1.2, 0.7, 0.4, 1.1])
    with pytest.raises(gb.InputError, match="graphbp values are real") as info:
        gb.from_jax(fft_loss, w)
    assert str(info.value).startswith(f"convert_element_type at {_line(fft_loss, 'jnp.fft')}:")
    with pytest.raises(gb.InputError, match=r"complex numbers \(dtype complex128\)") as info:
        gb.from_jax(complex_scale_loss, w)
    assert str(info.value).startswith(
        f"convert_element_type at {_line(complex_scale_loss, '1 + 2j')}:"
    )


def test_bfloat16_arguments_are_converted_to_float32_and_float8_refused() -> None:
    rng = _rng()
    w, x = rng.standard_normal((3, 2)), rng.standard_normal((4, 3))
    wb, xb = jnp.asarray(w, jnp.bfloat16), jnp.asarray(x, jnp.bfloat16)
    net, params, inputs = gb.from_jax(mlp_like_loss, {"w": wb}, xb)
    assert params["w"].dtype == inputs["x"].dtype == np.float32
    assert np.array_equal(params["w"], np.asarray(wb, np.float32))
    exact = (np.asarray(wb, np.float32), np.asarray(xb, np.float32))
    loss, grads = net.compile("numpy", dtype="float32").value_and_grad(params, inputs)
    want_loss, want = jax.value_and_grad(mlp_like_loss)({"w": exact[0]}, exact[1])
    assert loss == pytest.approx(float(want_loss), rel=1e-5)
    assert np.allclose(grads["w"], want["w"], rtol=1e-5, atol=1e-6)
    with pytest.raises(gb.InputError, match=r"leaf x is an array of dtype float8_e4m3fn, a float"):
        gb.from_jax(mlp_like_loss, {"w": w}, jnp.asarray(x, jnp.float8_e4m3fn))


def mlp_like_loss(p: Any, x: Any) -> Any:
    return jnp.sum(jnp.tanh(x @ p["w"]) ** 2)


def u8_sum_loss(w: Any, a: Any) -> Any:
    return jnp.sum(w * (a + a))


def narrowing_loss(w: Any, a: Any) -> Any:
    return jnp.sum(w * a.astype(jnp.int8))


def widening_loss(w: Any, a: Any) -> Any:
    return jnp.sum(w * (a.astype(jnp.int32) + a.astype(jnp.float32)) + w[a])


def big_int_loss(w: Any, a: Any) -> Any:
    return jnp.sum(w * (a + 2**30))


def test_integers_that_would_wrap_or_round_are_refused_and_safe_ones_kept() -> None:
    w = np.ones(3, np.float32)
    small = np.array([200, 100, 2], np.uint8)
    with pytest.raises(gb.InputError, match=r"uint8 values, which wrap around past 255") as info:
        gb.from_jax(u8_sum_loss, w, small)
    assert str(info.value).startswith(f"add at {_line(u8_sum_loss, 'a + a')}:")
    wide = np.array([200, 1, 2], np.int32)  # int32 → int8 wraps 200
    with pytest.raises(gb.InputError, match=r"^convert_element_type at .*int32 to int8"):
        gb.from_jax(narrowing_loss, w, wide)
    with pytest.raises(gb.InputError, match=r"input 'a' holds integers beyond 2\*\*24"):
        gb.from_jax(widening_loss, w, np.array([2**24 + 1, 0, 1], np.int32))
    with pytest.raises(gb.InputError, match=r"^add at .*a constant holds integers beyond 2\*\*24"):
        gb.from_jax(big_int_loss, w, np.array([0, 1, 2], np.int32))
    # widening conversions and indexing with small ints compute exactly as JAX does
    net, params, inputs = gb.from_jax(widening_loss, w, np.array([2, 0, 1], np.uint8))
    loss = net.compile("numpy", dtype="float32").loss(params, inputs)
    assert loss == pytest.approx(float(widening_loss(w, np.array([2, 0, 1], np.uint8))))
    with jax.enable_x64(True):  # float64: integers up to 2**53 are exact
        big = np.array([2**30, 0, 1], np.int64)
        net, params, inputs = gb.from_jax(big_int_loss, w.astype(np.float64), big)
        assert net.compile("numpy").loss(params, inputs) == float(np.sum(big + 2**30))


def test_max_with_minus_infinity_is_its_other_operand_so_training_needs_no_extra_input() -> None:
    def loss(w: Any, x: Any, y: Any) -> Any:  # log_softmax and logsumexp write max(-inf, m)
        z = x @ w
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(z), axis=-1)) + jnp.min(
            jnp.minimum(jnp.inf, z)
        )

    rng = _rng()
    args = (rng.standard_normal((3, 4)), rng.standard_normal((6, 3)), np.eye(4)[[0, 1, 2, 3, 0, 1]])
    net, params, inputs = gb.from_jax(loss, *args)
    assert sorted(inputs) == ["x", "y"]
    assert "max" not in [net.op_name(n) for n in net.order]
    _assert_matches(loss, args, "numpy", "float64", 1e-12)
    prog = net.compile("numpy")
    trained, history = gb.train(prog, params, inputs, lr=0.1, epochs=2, batch_size=6)
    assert history[-1] < history[0] and trained["w"].shape == (3, 4)


# ------------------------------------------------------------------ the opaque path


def control_flow_loss(p: Any, x: Any) -> Any:
    h = jnp.tanh(x @ p["w"])
    h = jax.lax.cond(h.sum() > 0, lambda a: a * 2.0, jnp.sin, h)
    h = jax.lax.fori_loop(0, 3, lambda i, a: a * p["s"] + 0.1, h)
    carry, ys = jax.lax.scan(lambda c, r: (c * 0.5 + r, c * r), jnp.zeros(4) + p["s"], h)
    return jnp.sum(h**2) + jnp.sum(carry) + jnp.sum(ys)


def _control_args(dtype: Any) -> tuple[Any, Any]:
    rng = _rng()
    p = {"w": rng.standard_normal((3, 4)), "s": np.array(0.7)}
    return {k: v.astype(dtype) for k, v in p.items()}, rng.standard_normal((5, 3)).astype(dtype)


@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-10), ("float32", 1e-5)])
def test_cond_scan_and_fori_loop_run_on_jax_as_opaque_nodes(dtype: str, rtol: float) -> None:
    args = _control_args(np.dtype(dtype))
    net = _assert_matches(control_flow_loss, args, "jax", dtype, rtol)
    primitives = sorted(net.attrs[n]["primitive"] for n in net.order if net.op_name(n) == "opaque")
    assert primitives == ["cond", "scan", "scan"]  # fori_loop with static bounds is a scan
    assert {net.op_name(n) for n in net.order} >= {"slice", "reshape", "concatenate"}


def test_compiling_an_opaque_network_on_numpy_names_node_primitive_and_line() -> None:
    net, _, _ = gb.from_jax(control_flow_loss, *_control_args(np.float64))
    line = _line(control_flow_loss, "lax.cond")
    with pytest.raises(gb.GraphError) as info:
        net.compile("numpy")
    assert str(info.value) == (
        f"node 'cond_1' (op 'opaque', JAX primitive 'cond', from {line}) runs only on the "
        "'jax' backend, not on 'numpy'; compile with backend='jax', or rewrite that part of "
        "the function with operations graphbp has ops for (`graphbp ops` lists them)"
    )


def test_an_opaque_network_cannot_be_saved(tmp_path: Path) -> None:
    net, _, _ = gb.from_jax(control_flow_loss, *_control_args(np.float64))
    line = _line(control_flow_loss, "lax.cond")
    for save in (lambda: net.to_json(tmp_path / "net.json"), net.to_dict):
        with pytest.raises(
            gb.GraphError, match=f"node 'cond_1' .*primitive cond, source {line}.*JAX function"
        ):
            save()
    assert not (tmp_path / "net.json").exists()


def test_the_opaque_box_is_labelled_by_its_primitive() -> None:
    net, _, _ = gb.from_jax(control_flow_loss, *_control_args(np.float64))
    dot = gb.render(net).source
    assert ">cond<" in dot and ">scan<" in dot


# ------------------------------------------------------------------ JSON and item 4


def test_an_imported_network_round_trips_through_json(tmp_path: Path) -> None:
    net, params, inputs = gb.from_jax(
        scoped_loss,
        *(
            lambda r: (
                {"wq": r.standard_normal((3, 2)), "wk": r.standard_normal((3, 2))},
                r.standard_normal((4, 3)),
            )
        )(_rng()),
    )
    net.to_json(tmp_path / "net.json")
    back = gb.Network.from_json(tmp_path / "net.json")
    assert back.to_dict() == net.to_dict()
    assert json.loads((tmp_path / "net.json").read_text())["graph"]["loss"] == "loss"
    for backend in ("numpy", "jax"):
        a = net.compile(backend).value_and_grad(params, inputs)
        b = back.compile(backend).value_and_grad(params, inputs)
        assert a[0] == b[0] and all(np.array_equal(a[1][k], b[1][k]) for k in params)


def test_chain_rule_explain_check_render_page_and_train_on_an_imported_network(
    tmp_path: Path,
) -> None:
    args = _mlp_args()
    net, params, inputs = gb.from_jax(mlp_loss, *args)
    prog = net.compile("numpy")
    _, grads = prog.value_and_grad(params, inputs)
    values = prog.forward(params, inputs, net.order)
    rule = gb.chain_rule(net, "W1", values=values)
    assert rule.complete and rule.path_count >= 1
    np.testing.assert_allclose(
        sum(p.contribution for p in rule.paths), grads["W1"], rtol=1e-12, atol=1e-14
    )
    np.testing.assert_allclose(rule.gradient, grads["W1"], rtol=1e-12, atol=1e-14)
    cost = gb.explain(net)
    assert cost.params == 4 and cost.nodes == len(net.order)
    for backend in ("numpy", "jax"):
        assert check_network(net, backend, params=params, inputs=inputs).max_rel_error < 1e-6
    assert "∂dot_general_1/∂W<SUB>" in gb.render(net, wrt="W1").source
    page = gb.write_diagram(_scoped(), tmp_path / "page.html", wrt="wq")
    text = page.read_text()
    assert "block/attention" in text
    assert f"— {_line(scoped_loss, 'return')}" in text  # a node's tooltip: its source line
    collapsed = gb.write_diagram(_scoped(), tmp_path / "collapsed.svg", scopes="collapse")
    assert "block/attention/scores" in collapsed.read_text()
    data = {**inputs}
    trained, history = gb.train(
        prog, params, data, lr=0.05, epochs=20, batch_size=6, progress=False
    )
    assert history[-1] < history[0]
    assert set(trained) == set(params)


def test_chain_rule_contributions_through_opaque_nodes_sum_to_the_gradient() -> None:
    """An opaque node has no NumPy vjp: its factor of each path is jax.vjp of its forward."""
    net, params, inputs = gb.from_jax(control_flow_loss, *_control_args(np.float64))
    prog = net.compile("jax")
    _, grads = prog.value_and_grad(params, inputs)
    values = prog.forward(params, inputs, net.order)
    for wrt in ("w", "s"):
        rule = gb.chain_rule(net, wrt, values=values)
        assert rule.complete and any("scan" in str(e.target) for p in rule.paths for e in p.edges)
        total = sum(np.asarray(p.contribution) for p in rule.paths)
        np.testing.assert_allclose(total, grads[wrt], rtol=1e-10, atol=1e-12)
    assert "scan" in gb.render(net, wrt="s", values=values).source


def test_an_opaque_equation_traced_in_float64_refuses_a_float32_program() -> None:
    net, params, inputs = gb.from_jax(control_flow_loss, *_control_args(np.float64))
    prog = net.compile("jax", dtype="float32")
    with pytest.raises(gb.InputError, match="opaque cond equation .*traced in float64"):
        prog.value_and_grad(params, inputs)


def test_a_jitted_whole_function_or_lambda_is_no_scope() -> None:
    def loss(w: Any, x: Any) -> Any:
        return jnp.sum(jax.jit(lambda a: a * x)(w) ** 2)

    for fn in (jax.jit(loss), loss):
        net, _, _ = gb.from_jax(fn, np.ones(2), np.ones(2))
        assert all("scope" not in net.graph.nodes[n] for n in net.order)


@pytest.mark.parametrize(
    ("fn", "ops"),
    [
        (lambda p: p["s"], ["param", "sum"]),  # the loss is a parameter itself
        (lambda w: jnp.float32(3.0), ["param", "const", "sum"]),  # a constant loss
    ],
)
def test_a_loss_that_is_a_leaf_or_constant_gets_its_own_node(fn: Any, ops: list[str]) -> None:
    net, params, inputs = gb.from_jax(fn, {"s": np.array(2.0)})
    assert [net.op_name(n) for n in net.order] == ops and net.op_name("loss") == "sum"
    loss, grads = net.compile().value_and_grad(params, inputs)
    want, want_grads = _jax_value_and_grad(fn, ({"s": np.array(2.0)},))
    assert loss == want and grads["s"] == want_grads["s"]


TABLE = np.arange(20.0).reshape(4, 5)


@jax.jit
def project(x: Any) -> Any:
    return x @ TABLE


def test_an_array_closed_over_by_a_function_called_twice_is_one_const_node() -> None:
    def loss(w: Any) -> Any:
        return jnp.sum(project(w) * project(w * 2.0))

    net, _, _ = gb.from_jax(loss, np.ones((3, 4)))
    tables = [n for n in net.order if np.shape(net.attrs[n].get("value")) == (4, 5)]
    assert len(tables) == 1
    assert len(list(net.graph.successors(tables[0]))) == 2  # each call's product reads it
    _assert_matches(loss, (np.ones((3, 4)),), "numpy", "float64", 1e-12)


def test_vmap_and_an_inner_grad_add_no_scopes_and_match_jax() -> None:
    def per(w: Any, x: Any) -> Any:
        return jnp.tanh(x @ w).sum()

    def loss(w: Any, xs: Any) -> Any:
        return jax.vmap(per, in_axes=(None, 0))(w, xs).mean() + jax.grad(per)(w, xs[0]).sum()

    rng = _rng()
    args = (rng.standard_normal((3, 2)), rng.standard_normal((4, 3)))
    for backend in ("numpy", "jax"):
        net = _assert_matches(loss, args, backend, "float64", 1e-10)
    assert all("scope" not in net.graph.nodes[n] for n in net.order)  # no "vmap()", "jvp()"


def test_a_bias_enters_its_add_unbroadcast_as_in_a_hand_built_network() -> None:
    net, _, _ = gb.from_jax(mlp_loss, *_mlp_args())
    assert [net.op_name(s) for s in net.graph.successors("b1")] == ["add"]
    assert "broadcast_in_dim" not in {net.op_name(n) for n in net.order}


def test_random_keys_as_arguments_are_refused_clearly() -> None:
    def loss(w: Any, k: Any) -> Any:
        return jnp.sum(w * jax.random.normal(k, (2,)))

    with pytest.raises(gb.InputError, match="argument leaf k is an array of dtype key<fry>"):
        gb.from_jax(loss, np.ones(2), jax.random.key(0))
    with pytest.raises(gb.InputError, match="random_wrap at .*PRNG key.*pass them in"):
        gb.from_jax(loss, np.ones(2), jax.random.PRNGKey(0))
    # a key fixed inside the function is a constant: its random numbers are folded
    net, _params, _inputs = gb.from_jax(lambda w: loss(w, jax.random.key(1)), np.ones(2))
    assert {net.op_name(n) for n in net.order} == {"param", "const", "mul", "sum"}
