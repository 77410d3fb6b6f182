"""One implementation per contract: the two traversals agree on every op, graph and failure;
every caller of a plugin goes through call_forward/call_vjp; leaves belong to the core; op
names are claimed the same way in every order; one Program serves every backend."""

from __future__ import annotations

import importlib.util as importlib_util
import inspect
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_random_graphs import SETTINGS, moderate_example, random_networks

import graphbp as gb
from graphbp import engine
from graphbp.op import runs_on
from graphbp.testing import check_op

TRAVERSALS = ("generated", "interpreted")


def _outcome(fn: Callable[[], Any]) -> Any:
    """What calling ``fn`` gives: its result, or the type and message of what it raised."""
    try:
        return ("ok", fn())
    except Exception as exc:  # the point: compare whatever each traversal does
        return ("raised", type(exc), str(exc))


def _same(a: Any, b: Any) -> bool:
    """Exact equality of nested results (arrays compared bit for bit, dtype included)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "dtype") or hasattr(b, "dtype"):
        return np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)
    return bool(a == b)


def _both(net: gb.Network, run: Callable[[gb.Program], Any], dtype: str = "float64") -> Any:
    """``run`` on the generated and the interpreted traversal; they must agree exactly."""
    generated, interpreted = (
        _outcome(lambda t=t: run(net.compile("numpy", dtype, traversal=t))) for t in TRAVERSALS
    )
    assert _same(generated, interpreted), (generated, interpreted)
    return generated


def _op_graph(name: str, operands: tuple[Any, ...], attrs: dict[str, Any]) -> nx.DiGraph:
    """Every operand a parameter a0, a1, ... of the example's shape; L = sum(op(...))."""
    g = nx.DiGraph(loss="L")
    g.add_node("out", op=name, **attrs)
    for i, x in enumerate(operands):
        g.add_node(f"a{i}", op="param", shape=np.shape(x))
        g.add_edge(f"a{i}", "out", arg=i)
    g.add_node("L", op="sum")
    g.add_edge("out", "L")
    return g


@pytest.mark.parametrize("name", gb.ops())
def test_generated_and_interpreted_traversals_agree_on_every_op(name: str) -> None:
    op = gb.get_op(name)
    if not runs_on(op, "numpy"):  # the generated traversal is NumPy's
        pytest.skip(f"op {name!r} runs only on {op.backends}")
    for operands, attrs in op.examples(np.random.default_rng(0)):
        net = gb.Network(_op_graph(name, operands, attrs))
        params = {f"a{i}": np.asarray(x, dtype=np.float64) for i, x in enumerate(operands)}
        for dtype in ("float64", "float32"):
            result = _both(
                net,
                lambda prog, params=params: (  # type: ignore[misc]
                    prog.value_and_grad(params, {}),
                    prog.loss(params, {}),
                    prog.forward(params, {}, ["out"]),
                ),
                dtype,
            )
            assert result[0] == "ok", result
            (loss, grads), *_ = result[1]
            assert set(grads) == set(params) and np.isfinite(loss)


def test_generated_and_interpreted_traversals_agree_on_the_seed_network(
    seed_net: gb.Network,
) -> None:
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((7, 5)), "y": rng.standard_normal((7, 2))}
    params = seed_net.compile().init(3)
    result = _both(
        seed_net,
        lambda prog: (
            prog.value_and_grad(params, data),
            prog.forward(params, {"x": data["x"]}, ["h1", "h2", "yhat", "x", "W1"]),
            gb.train(prog, params, data, epochs=2, batch_size=3, progress=False),
        ),
    )
    assert result[0] == "ok", result


@SETTINGS
@given(net=random_networks(), seed=st.integers(0, 2**16))
def test_generated_and_interpreted_traversals_agree_on_random_dags(
    net: gb.Network, seed: int
) -> None:
    params, inputs = moderate_example(net, seed)
    assert _both(net, lambda prog: prog.value_and_grad(params, inputs))[0] == "ok"


class _Flaky(gb.Op):
    """Identity whose forward result and cotangents a test swaps for broken ones after the
    network was built (so that only the run-time checks can catch them)."""

    name = "flaky"
    label = "id"
    local_grads = ("1",)
    output: Callable[[Any, Any], Any] = staticmethod(lambda xp, x: x * 1.0)
    cotangents: Callable[[Any, Any], Any] = staticmethod(lambda xp, g: (g,))

    def forward(self, xp: Any, x: Any) -> Any:
        return type(self).output(xp, x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> Any:
        return type(self).cotangents(xp, g)


def _jax_array(value: Any) -> Any:
    jnp = pytest.importorskip("jax.numpy")
    return jnp.asarray(value)


BAD_OUTPUTS = {
    "None": (lambda xp, x: None, "forward returned NoneType"),
    "a list": (lambda xp, x: [x], "forward returned list"),
    "a Python float": (lambda xp, x: float(x.sum()), "forward returned float"),
    "ints": (lambda xp, x: x.astype(np.int64), "an int64 array in a float64 program"),
    "float32 in float64": (lambda xp, x: x.astype(np.float32), "a float32 array in a float64"),
    "another shape": (lambda xp, x: x[:1], r"shape \(1, 3\), but its shape was inferred as"),
    "a JAX array": (lambda xp, x: _jax_array(x), "forward returned ArrayImpl; return an array"),
}
BAD_COTANGENTS = {
    "two": (lambda xp, g: (g, g), "vjp returned 2 cotangent"),
    "a bare array": (lambda xp, g: g, "vjp returned ndarray cotangent"),
    "None": (lambda xp, g: (None,), "vjp returned NoneType for operand 0, which needs"),
    "another shape": (lambda xp, g: (g[:, :2],), r"shape \(2, 2\) for operand 0; return"),
    "float32 in float64": (lambda xp, g: (g.astype(np.float32),), "a float32 cotangent"),
    "a JAX array": (lambda xp, g: (_jax_array(g),), "vjp returned ArrayImpl for operand 0"),
}


@pytest.fixture
def flaky_net(register: Any, param_chain: Any) -> gb.Network:
    """p → f = flaky(p) → L, p of shape (2, 3); tests swap flaky's results with monkeypatch."""
    register(_Flaky)
    return gb.Network(param_chain(["flaky"], shape=(2, 3), init="normal", names=["f"]))


@pytest.mark.parametrize("case", BAD_OUTPUTS)
def test_a_forward_that_breaks_the_contract_fails_alike_in_both_traversals(
    flaky_net: gb.Network, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad, message = BAD_OUTPUTS[case]
    params = flaky_net.compile().init(0)
    monkeypatch.setattr(_Flaky, "output", staticmethod(bad))
    for run in (lambda p: p.value_and_grad(params, {}), lambda p: p.loss(params, {})):
        outcome = _both(flaky_net, run)
        assert outcome[:2] == ("raised", gb.PluginError), outcome
        assert "op 'flaky' at node 'f'" in outcome[2]
        assert re.search(message, outcome[2]), outcome[2]


@pytest.mark.parametrize("case", BAD_COTANGENTS)
def test_a_vjp_that_breaks_the_contract_fails_alike_in_both_traversals(
    flaky_net: gb.Network, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad, message = BAD_COTANGENTS[case]
    params = flaky_net.compile().init(0)
    monkeypatch.setattr(_Flaky, "cotangents", staticmethod(bad))
    outcome = _both(flaky_net, lambda p: p.value_and_grad(params, {}))
    assert outcome[:2] == ("raised", gb.PluginError), outcome
    assert outcome[2].startswith("op 'flaky' at node 'f': vjp returned")
    assert re.search(message, outcome[2]), outcome[2]


@pytest.mark.parametrize("case", [c for c in BAD_OUTPUTS if c != "another shape"])
def test_a_forward_that_breaks_the_contract_is_named_when_the_network_is_built(
    register: Any, param_chain: Any, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shapes are inferred by running forward, so it is held to the contract right there
    (a wrong shape cannot show yet: whatever it returns is the inferred shape)."""
    bad, message = BAD_OUTPUTS[case]
    register(_Flaky)
    monkeypatch.setattr(_Flaky, "output", staticmethod(bad))
    with pytest.raises(gb.PluginError, match=message) as info:
        gb.Network(param_chain(["flaky"], shape=(2, 3), names=["f"]))
    assert "op 'flaky' at node 'f'" in str(info.value)


def test_every_caller_of_a_plugin_holds_it_to_the_contract(
    register: Any, param_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chain-rule contributions and the gradient checker call call_vjp too: a wrong count is
    an error there as well (path contributions used to skip that check)."""
    register(_Flaky)
    net = gb.Network(param_chain(["flaky"], shape=(2, 3), init="normal", names=["f"]))
    prog = net.compile()
    params = prog.init(0)
    values = prog.forward(params, {}, net.order)
    monkeypatch.setattr(_Flaky, "cotangents", staticmethod(lambda xp, g: (g, g)))
    with pytest.raises(gb.PluginError, match="op 'flaky' at node 'f': vjp returned 2 cotangent"):
        gb.chain_rule(net, "p", values=values)
    with pytest.raises(gb.GradientCheckError, match="op 'flaky': vjp returned 2 cotangent"):
        check_op("flaky")


def test_the_jax_bridge_holds_plugins_to_the_contract_under_jax_grad(
    register: Any, param_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    jax = pytest.importorskip("jax")
    register(_Flaky)
    prog = gb.Network(param_chain(["flaky"], shape=(2, 3), names=["f"])).compile("jax")
    params = prog.init(0)
    monkeypatch.setattr(_Flaky, "cotangents", staticmethod(lambda xp, g: (np.ones((2, 3)),)))
    with pytest.raises(gb.PluginError, match="vjp returned ndarray for operand 0.* jax backend"):
        jax.grad(prog.loss)(params, {})
    with pytest.raises(gb.PluginError, match="vjp returned ndarray for operand 0.* jax backend"):
        prog.value_and_grad(params, {})


# ------------------------------------------------------------------------------- leaves


def test_leaves_belong_to_the_core(seed_net: gb.Network) -> None:
    assert not {"input", "param", "const"} & set(gb.ops())
    assert {n: seed_net.kind[n] for n in ("x", "W1", "h1", "L")} == {
        "x": "input",
        "W1": "param",
        "h1": "op",
        "L": "op",
    }
    assert set(seed_net.ops) == {n for n in seed_net.order if seed_net.kind[n] == "op"}
    with pytest.raises(gb.GraphError, match="'input' is a leaf kind of the graph schema"):
        gb.get_op("input")

    class Param(gb.Op):
        name = "param"

        def forward(self, xp: Any) -> Any:
            return xp.zeros(())

    for replace in (False, True):  # not even on purpose
        with pytest.raises(gb.PluginError, match="named 'param', a leaf kind"):
            gb.register_op(Param, replace=replace)
    g = nx.DiGraph(loss="x")
    g.add_node("x", op="inptu")
    with pytest.raises(gb.GraphError, match="unknown op 'inptu'; did you mean 'input'"):
        gb.Network(g)


REGISTER_IN_EVERY_ORDER = """
import graphbp as gb
from graphbp.registry import unregister_op

class Mine(gb.Op):
    name = "sigmoid"
    local_grads = ("1",)
    def forward(self, xp, z):
        return z * 1.0
    def vjp(self, xp, g, out, z):
        return (g,)

def attempt(**kw):
    try:
        return type(gb.register_op(Mine, **kw)).__name__
    except gb.PluginError as exc:
        return f"refused: {exc}"

print(attempt())  # the built-in is installed but not loaded yet
if "ORDER" == "load first":
    print(type(gb.get_op("sigmoid")).__name__)
    print(attempt())
print(attempt(replace=True), type(gb.get_op("sigmoid")).__name__)
prog = gb.Network(gb.mlp((2, 3, 1))).compile()
print(float(prog.forward({"W1": [[1, 0, 0], [0, 1, 0]], "b1": [0, 0, 0], "W2": [[1], [1], [1]],
                          "b2": [0]}, {"x": [[2.0, 3.0]]}, ["yhat"])["yhat"][0, 0]))
unregister_op("sigmoid")
print(type(gb.get_op("sigmoid")).__module__)
"""


@pytest.mark.parametrize("order", ["register first", "load first"])
def test_taking_a_builtin_name_needs_replace_in_every_order(order: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", REGISTER_IN_EVERY_ORDER.replace("ORDER", order)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    refusal = (
        "refused: op name 'sigmoid' is already registered by the entry point "
        "'graphbp_ops.elementwise:Sigmoid' of package graphbp"
    )
    assert lines[0].startswith(refusal) and "replace=True" in lines[0]
    if order == "load first":
        assert lines[1] == "Sigmoid"
        assert lines[2].startswith("refused: op name 'sigmoid' is already registered by <op")
        lines = [lines[0], *lines[3:]]
    assert lines[1] == "Mine Mine"
    assert float(lines[2]) == 5.0  # the dense layer's activation is now the user's identity
    assert lines[3] == "graphbp_ops.elementwise"  # unregistered: the built-in comes back


def test_registering_the_class_that_holds_a_name_changes_nothing() -> None:
    tanh = gb.get_op("tanh")
    assert gb.register_op(type(tanh)) is tanh
    assert gb.register_op(tanh) is tanh


# ----------------------------------------------------------------------------- Program


def test_one_program_class_serves_every_backend(seed_net: gb.Network) -> None:
    assert gb.Program.__subclasses__() == []
    assert type(seed_net.compile("numpy")) is gb.Program
    pytest.importorskip("jax")
    assert type(seed_net.compile("jax")) is gb.Program
    with pytest.raises(gb.InputError, match="traversal='generated' on the jax backend"):
        seed_net.compile("jax", traversal="generated")
    with pytest.raises(gb.InputError, match="traversal='compiled'; use 'generated' or"):
        seed_net.compile("numpy", traversal="compiled")  # type: ignore[arg-type]


def test_large_plans_are_interpreted_by_default(
    param_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphbp import program

    net = gb.Network(param_chain(["tanh", "sigmoid"] * 5, init="normal"))
    small = net.compile()
    assert small._generates(small.plan(with_grad=True))
    monkeypatch.setattr(program, "GENERATED_MAX_STEPS", 20)  # the plan has 11 + 11 steps
    large = net.compile()
    assert not large._generates(large.plan(with_grad=True))
    params = small.init(0)
    assert _same(small.value_and_grad(params, {}), large.value_and_grad(params, {}))
    assert "∂L/∂p" in large.source()  # the chain rule can still be read as code


def test_the_interpreted_traversal_is_one_screen() -> None:
    lines = [
        line
        for line in inspect.getsource(engine.interpret).splitlines()
        if line.strip() and not line.strip().startswith(("#", '"""'))
    ]
    assert len(lines) <= 40, len(lines)


# ------------------------------------------------------- results that look almost right


class _Subclass(np.ndarray):
    """An ndarray subclass (as np.matrix and masked arrays are): its operations may differ."""


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        # more axes than the operand and the output: summing them away would multiply ∂L/∂p
        (lambda xp, g: (xp.broadcast_to(g, (5, *g.shape)) * 1.0,), r"shape \(5, 2, 3\)"),
        # an ndarray subclass: a masked gradient, a matrix that stays 2-D when summed
        (lambda xp, g: (np.ma.masked_array(g, mask=g > 0),), "returned MaskedArray for"),
        (lambda xp, g: (g.view(_Subclass),), "returned _Subclass for operand 0"),
    ],
)
def test_cotangents_that_would_pass_for_right_are_refused(
    flaky_net: gb.Network, bad: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = flaky_net.compile().init(0)
    monkeypatch.setattr(_Flaky, "cotangents", staticmethod(bad))
    outcome = _both(flaky_net, lambda p: p.value_and_grad(params, {}))
    assert outcome[:2] == ("raised", gb.PluginError), outcome
    assert re.search(message, outcome[2]), outcome[2]


def test_a_forward_returning_an_ndarray_subclass_is_refused(
    register: Any, param_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(_Flaky)
    monkeypatch.setattr(_Flaky, "output", staticmethod(lambda xp, x: x.view(_Subclass)))
    with pytest.raises(gb.PluginError, match="op 'flaky' at node 'f': forward returned _Subcl"):
        gb.Network(param_chain(["flaky"], shape=(2, 3), names=["f"]))


class _Twice(gb.Op):
    """2z, with a rule that takes ``needs`` (as affine's does)."""

    name = "twice"
    label = "2z"
    local_grads = ("2",)
    vjp_reads = ()

    def forward(self, xp: Any, z: Any) -> Any:
        return 2 * z

    def vjp(self, xp: Any, g: Any, out: Any, z: Any, needs: Any = (True,)) -> Any:
        assert needs == (True,)  # dense always needs ∂L/∂z
        return (2 * g,)


def test_a_dense_layer_calls_its_activation_as_the_engine_calls_an_op(
    register: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(_Twice)
    graph = gb.mlp((2, 3, 1), activation="twice")
    fused = gb.Network(graph)
    split = nx.relabel_nodes(gb.mlp((2, 3, 1), activation="twice"), {})
    split.nodes["h1"].update(op="affine")
    del split.nodes["h1"]["activation"]
    nx.relabel_nodes(split, {"h1": "z1"}, copy=False)
    split.add_node("h1", op="twice")
    split.add_edge("z1", "h1")
    split.remove_edge("z1", "yhat")
    split.add_edge("h1", "yhat", arg=0)
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((4, 2)), "y": rng.standard_normal((4, 1))}
    params = fused.compile().init(0)
    want = gb.Network(split).compile().value_and_grad(params, data)
    assert _same(_both(fused, lambda p: p.value_and_grad(params, data)), ("ok", want))
    # A wrong cotangent from the activation's rule is named where it shows: the activation
    # when dense cannot use it, else dense's own result, checked by the engine.
    for bad, message in (
        (lambda g: (g[:1],), "op 'twice': vjp returned a cotangent of shape (1, 3)"),
        (lambda g: [g, g], "op 'twice': vjp returned 2 cotangent(s)"),
        (lambda g: (g[:, :1],), "op 'dense' at node 'h1': vjp returned a cotangent of shape"),
        (lambda g: (g.astype(np.float32),), "op 'dense' at node 'h1': vjp returned a float32"),
    ):
        monkeypatch.setattr(_Twice, "vjp", lambda self, xp, g, out, z, needs=(), b=bad: b(g))
        outcome = _both(fused, lambda p: p.value_and_grad(params, data))
        assert outcome[:2] == ("raised", gb.PluginError), outcome
        assert outcome[2].startswith(message), outcome[2]


def test_a_node_name_whose_repr_fails_is_refused_by_the_name_rule(param_chain: Any) -> None:
    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    g = param_chain(["square"], shape=(2,), init=1.0, names=[Opaque()])
    with pytest.raises(gb.GraphError, match=r"node <.*Opaque object> .*a node name is a str"):
        gb.Network(g)


def test_generated_source_leaves_the_line_cache_with_its_program(param_chain: Any) -> None:
    import gc
    import linecache

    before = set(linecache.cache)
    prog = gb.Network(param_chain(["tanh"])).compile()
    prog.value_and_grad(prog.init(0), {})
    ours = {f for f in linecache.cache if f.startswith("<graphbp plan")} - before
    assert ours
    del prog
    gc.collect()
    assert not ours & set(linecache.cache)


def test_training_history_is_the_losses_even_when_the_loss_is_a_parameter(
    register: Any,
) -> None:
    """A loss that is a parameter's own array (an op may return its operand) must be read
    before the in-place update changes it."""

    class First(gb.Op):
        name = "first"
        local_grads = ("1", "0")

        def forward(self, xp: Any, a: Any, b: Any) -> Any:
            return a

        def vjp(self, xp: Any, g: Any, out: Any, a: Any, b: Any) -> Any:
            return g, xp.zeros_like(b)

    register(First)
    g = nx.DiGraph(loss="L")
    g.add_node("w", op="param", shape=(), init=5.0)
    g.add_node("x", op="input", shape=(None,))
    g.add_node("s", op="sum")
    g.add_edge("x", "s")
    g.add_node("L", op="first")
    g.add_edge("w", "L", arg=0)
    g.add_edge("s", "L", arg=1)
    net = gb.Network(g)
    for backend in ("numpy", "jax") if importlib_util.find_spec("jax") else ("numpy",):
        prog = net.compile(backend)
        data = {"x": np.ones(4)}
        _, history = gb.train(prog, prog.init(0), data, lr=1.0, epochs=1, batch_size=1)
        assert history == [3.5], backend  # the losses were 5, 4, 3, 2
