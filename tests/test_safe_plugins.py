"""Issue 10, item 7 (plugins that misbehave are caught where they misbehave), the NFKC part of
item 1 (attribute keys reach the op unchanged), and gradients handed back as arrays of their
own. Every case runs on both traversals, which must fail and succeed alike."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_contracts import TRAVERSALS, _both, _outcome, _same
from test_random_graphs import SETTINGS, moderate_example, random_networks

import graphbp as gb
from graphbp.op import runs_on
from graphbp.testing import check_op

# ------------------------------------------------------------------ a plugin that misbehaves


class _Probe(gb.Op):
    """Identity (x * 1.0) whose forward and vjp a test replaces with misbehaving ones."""

    name = "probe"
    label = "id"
    local_grads = ("1",)
    forward_rule: Callable[[Any, Any], Any] = staticmethod(lambda xp, x: x * 1.0)
    vjp_rule: Callable[..., Any] = staticmethod(lambda xp, g, out, x: (g * 1.0,))

    def forward(self, xp: Any, x: Any) -> Any:
        return type(self).forward_rule(xp, x)

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> Any:
        return type(self).vjp_rule(xp, g, out, x)


@pytest.fixture
def probe_net(register: Any, param_chain: Any) -> gb.Network:
    """p (2, 3) → f = probe(p) → L = sum(f)."""
    register(_Probe)
    return gb.Network(param_chain(["probe"], shape=(2, 3), init="normal", names=["f"]))


def _raise(exc: BaseException) -> Callable[..., Any]:
    def rule(*args: Any) -> Any:
        raise exc

    return rule


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def _singular(xp: Any, *args: Any) -> Any:
    return xp.linalg.inv(xp.zeros((2, 2)))  # numpy.linalg.LinAlgError: Singular matrix


RAISES: dict[str, tuple[Callable[..., Any], type[BaseException], str]] = {
    "ZeroDivisionError": (lambda xp, *a: 1 / 0, ZeroDivisionError, "division by zero"),
    "KeyError": (lambda xp, *a: {}["scale"], KeyError, "'scale'"),
    "IndexError": (lambda xp, *a: a[-1][7], IndexError, "index 7 is out of bounds"),
    "AttributeError": (lambda xp, *a: xp.no_such_function(a[-1]), AttributeError, "no_such"),
    "a numpy error": (_singular, np.linalg.LinAlgError, "Singular matrix"),
    "RecursionError": (_raise(RecursionError("too deep")), RecursionError, "too deep"),
    "a message that cannot be printed": (_raise(_Unprintable()), _Unprintable, "<_Unprint"),
}


@pytest.mark.parametrize("case", RAISES)
@pytest.mark.parametrize("method", ["forward", "vjp"])
def test_a_plugin_that_raises_is_named_with_the_original_chained(
    probe_net: gb.Network, monkeypatch: pytest.MonkeyPatch, case: str, method: str
) -> None:
    bad, cause_type, text = RAISES[case]
    params = probe_net.compile().init(0)
    monkeypatch.setattr(_Probe, f"{method}_rule", staticmethod(bad))
    runs = [lambda p: p.value_and_grad(params, {})]
    if method == "forward":
        runs += [lambda p: p.loss(params, {}), lambda p: p.forward(params, {}, ["f"])]
    for run in runs:
        outcome = _both(probe_net, run)  # the same class and message on both traversals
        assert outcome[:2] == ("raised", gb.PluginError), outcome
        message = outcome[2]
        assert message.startswith(f"op 'probe' at node 'f': {method} raised {cause_type.__name__}")
        assert text in message and "this is a bug in the plugin" in message
        assert "_Probe." + method in message
        shapes = "operands of shapes [(2, 3)]"
        assert shapes in message and (method == "forward" or "g of shape (2, 3)" in message)
        for traversal in TRAVERSALS:
            prog = probe_net.compile(traversal=traversal)
            with pytest.raises(gb.PluginError) as info:
                run(prog)
            assert type(info.value.__cause__) is cause_type  # chained: raise ... from exc
            assert info.value.method == method


def test_the_original_exception_object_is_the_cause(
    probe_net: gb.Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ZeroDivisionError("the plugin's own")
    monkeypatch.setattr(_Probe, "vjp_rule", staticmethod(_raise(original)))
    for traversal in TRAVERSALS:
        prog = probe_net.compile(traversal=traversal)
        with pytest.raises(gb.PluginError) as info:
            prog.value_and_grad(prog.init(0), {})
        assert info.value.__cause__ is original


@pytest.mark.parametrize("method", ["forward", "vjp"])
def test_a_graphbp_error_from_a_plugin_passes_unchanged(
    probe_net: gb.Network, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    params = probe_net.compile().init(0)
    error = gb.InputError("probe: the plugin's own, deliberate error")
    monkeypatch.setattr(_Probe, f"{method}_rule", staticmethod(_raise(error)))
    outcome = _both(probe_net, lambda p: p.value_and_grad(params, {}))
    assert outcome == ("raised", gb.InputError, str(error))
    for traversal in TRAVERSALS:
        with pytest.raises(gb.InputError) as info:
            probe_net.compile(traversal=traversal).value_and_grad(params, {})
        assert info.value is error


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("method", ["forward", "vjp"])
def test_interrupts_and_exits_are_never_wrapped(
    probe_net: gb.Network, monkeypatch: pytest.MonkeyPatch, stop: type, method: str
) -> None:
    params = probe_net.compile().init(0)
    monkeypatch.setattr(_Probe, f"{method}_rule", staticmethod(_raise(stop())))
    for traversal in TRAVERSALS:
        with pytest.raises(stop):
            probe_net.compile(traversal=traversal).value_and_grad(params, {})


def test_the_failing_node_is_the_one_named_deep_in_a_graph(register: Any) -> None:
    """Two probes in a chain, the second raising, named by their node names (any str)."""

    class Picky(_Probe):
        name = "picky"

        def forward(self, xp: Any, x: Any) -> Any:
            return x * 1.0

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> Any:
            return ({"a": g}[""],)  # KeyError: ''

    register(_Probe)
    register(Picky)
    g = nx.DiGraph(loss="L")
    g.add_node("x", op="input", shape=(None, 2))
    g.add_node("w", op="param", shape=(2,), init=1.0)
    g.add_node("wx", op="mul")
    g.add_edge("x", "wx", arg=0)
    g.add_edge("w", "wx", arg=1)
    g.add_node("first", op="probe")
    g.add_node('second "<b>" ü', op="picky")
    g.add_node("L", op="sum")
    nx.add_path(g, ["wx", "first", 'second "<b>" ü', "L"])
    net = gb.Network(g)
    x = np.ones((5, 2))
    outcome = _both(net, lambda p: p.value_and_grad({"w": np.ones(2)}, {"x": x}))
    assert outcome[:2] == ("raised", gb.PluginError)
    assert outcome[2].startswith("op 'picky' at node 'second \"<b>\" ü': vjp raised KeyError")
    assert "g of shape (5, 2), operands of shapes [(5, 2)]" in outcome[2]
    checked = _both(net, lambda p: p.value_and_grad({"w": np.ones(2)}, {"x": x}))
    assert checked == outcome  # and again: a failed run leaves the program usable


def test_values_a_vjp_does_not_read_show_as_none(register: Any, param_chain: Any) -> None:
    class OutOnly(_Probe):
        name = "outonly"
        vjp_reads = ("out",)

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> Any:
            return (g * x,)  # x was declared unread: it is None here

    register(OutOnly)
    net = gb.Network(param_chain(["outonly"], shape=(2, 3), names=["f"]))
    outcome = _both(net, lambda p: p.value_and_grad(p.init(0), {}))
    assert outcome[:2] == ("raised", gb.PluginError)
    assert "vjp raised TypeError" in outcome[2] and "operands of shapes [None]" in outcome[2]


def test_check_finite_programs_name_a_raising_plugin_too(
    probe_net: gb.Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = probe_net.compile().init(0)
    monkeypatch.setattr(_Probe, "forward_rule", staticmethod(lambda xp, x: 1 / 0))
    for traversal in TRAVERSALS:
        prog = probe_net.compile(traversal=traversal, check_finite=True)
        with pytest.raises(gb.PluginError, match="op 'probe' at node 'f': forward raised Zero"):
            prog.value_and_grad(params, {})


def test_a_plugin_raising_while_the_network_is_built_is_named(
    register: Any, param_chain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shape inference runs forward: a bug there is a PluginError; a ValueError stays what it
    was, a shape mismatch (GraphError)."""
    register(_Probe)
    monkeypatch.setattr(_Probe, "forward_rule", staticmethod(lambda xp, x: {}["k"]))
    with pytest.raises(gb.PluginError, match="op 'probe' at node 'f': forward raised KeyError"):
        gb.Network(param_chain(["probe"], shape=(2, 3), names=["f"]))
    monkeypatch.setattr(_Probe, "forward_rule", staticmethod(lambda xp, x: x @ x))
    with pytest.raises(gb.GraphError, match="shape mismatch at node 'f' \\(op 'probe'\\)"):
        gb.Network(param_chain(["probe"], shape=(2, 3), names=["f"]))


# ------------------------------------------------------------------------------ on JAX


@pytest.mark.parametrize("method", ["forward", "vjp"])
def test_on_jax_a_raising_plugin_is_named_when_traced(
    probe_net: gb.Network, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    jax = pytest.importorskip("jax")
    prog = probe_net.compile("jax")
    params = prog.init(0)
    monkeypatch.setattr(_Probe, f"{method}_rule", staticmethod(lambda xp, *a: {}["scale"]))
    calls = [lambda: prog.value_and_grad(params, {}), lambda: jax.grad(prog.loss)(params, {})]
    for i, call in enumerate(calls):
        with pytest.raises(gb.PluginError) as info:
            call()
        assert str(info.value).startswith(f"op 'probe' at node 'f': {method} raised KeyError")
        if i == 0:  # (where JAX runs the rule as it transposes, it chains its own note)
            assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("bad", "cause"),
    [
        (lambda xp, x: np.asarray(x) * 1.0, "TracerArrayConversionError"),  # NumPy on a tracer
        (lambda xp, x: x if float(x.sum()) > 0 else -x, "ConcretizationTypeError"),  # Python if
    ],
)
def test_on_jax_a_forward_that_cannot_be_traced_is_named(
    probe_net: gb.Network, monkeypatch: pytest.MonkeyPatch, bad: Any, cause: str
) -> None:
    pytest.importorskip("jax")
    prog = probe_net.compile("jax")
    params = prog.init(0)
    monkeypatch.setattr(_Probe, "forward_rule", staticmethod(bad))
    with pytest.raises(gb.PluginError, match=f"op 'probe' at node 'f': forward raised {cause}"):
        prog.loss(params, {})


# ------------------------------------------------------------- writes into given arrays


def _times_two_in_place(xp: Any, x: Any) -> Any:
    x *= 2
    return x * 1.0


def _write_and_restore(xp: Any, x: Any) -> Any:
    x *= 2
    x /= 2  # the values come back: only read-only arrays catch this
    return x * 1.0


def _ufunc_out(xp: Any, x: Any) -> Any:
    xp.add(x, 1.0, out=x)
    return x - 1.0


def _sorts(xp: Any, x: Any) -> Any:
    x.sort(axis=-1)
    return x * 1.0


def _g_in_place(xp: Any, g: Any, out: Any, x: Any) -> Any:
    g *= 1.0  # the same values: only read-only arrays catch this
    return (g,)


def _out_in_place(xp: Any, g: Any, out: Any, x: Any) -> Any:
    out[...] = 0.0
    return (g * 1.0,)


def _operand_in_place(xp: Any, g: Any, out: Any, x: Any) -> Any:
    x += 1.0
    return (g * 1.0,)


def _unlocks_and_writes(xp: Any, x: Any) -> Any:
    x.setflags(write=True)  # "fixing" the read-only error instead of the bug
    x *= 2
    return x.copy()


FORWARD_WRITES = {
    "setflags then x *= 2": (_unlocks_and_writes, "forward wrote into operand 0 (its values"),
    "x *= 2": (_times_two_in_place, "forward wrote into operand 0 (its values changed"),
    "write and restore": (_write_and_restore, "forward writes into operand 0 (it raised"),
    "out=x": (_ufunc_out, "forward wrote into operand 0"),
    "x.sort()": (_sorts, "forward wrote into operand 0"),
}
VJP_WRITES = {
    "g *= 1": (_g_in_place, "vjp writes into g (it raised"),
    "out[...] = 0": (_out_in_place, "vjp wrote into out (its values changed"),
    "x += 1": (_operand_in_place, "vjp wrote into operand 0 (its values changed"),
}


@pytest.mark.parametrize("case", [*FORWARD_WRITES, *VJP_WRITES])
def test_check_op_catches_a_plugin_writing_into_what_it_is_given(
    register: Any, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    register(_Probe)
    if case in FORWARD_WRITES:
        bad, message = FORWARD_WRITES[case]
        monkeypatch.setattr(_Probe, "forward_rule", staticmethod(bad))
    else:
        bad, message = VJP_WRITES[case]
        monkeypatch.setattr(_Probe, "vjp_rule", staticmethod(bad))
    with pytest.raises(gb.GradientCheckError) as info:
        check_op("probe")
    text = str(info.value)
    assert text.startswith("op 'probe' on numpy, example 0")
    assert message in text and "return a new array; never write into operands" in text
    if case in ("write and restore", "g *= 1"):  # on JAX, x *= 2 rebinds x: no write
        pytest.importorskip("jax")
        assert check_op("probe", "jax").compared > 0


def test_check_op_passes_every_builtin_op_under_the_write_checks() -> None:
    for name in gb.ops():
        if runs_on(gb.get_op(name), "numpy"):  # the write checks are NumPy's
            assert check_op(name).compared > 0


def test_the_gradcheck_fixture_catches_a_write(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            """
            import graphbp as gb

            class Doubler(gb.Op):
                name = "doubler"
                label = "2x"
                local_grads = ("2",)

                def forward(self, xp, x):
                    x *= 2  # the bug: the operand belongs to the engine
                    return x * 1.0

                def vjp(self, xp, g, out, x):
                    return (2 * g,)

            def test_doubler(gradcheck):
                gradcheck(Doubler())
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*GradientCheckError: op 'doubler' on numpy, example 0*forward wrote into operand 0*"]
    )


def _two_branches() -> nx.DiGraph:
    """h = exp(p); a = probe(h); b = sigmoid(h); L = sum(a + b): h feeds two branches, and
    exp's rule reads h again on the way back."""
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(2, 3), init="normal")
    for node, op in (("h", "exp"), ("a", "probe"), ("b", "sigmoid"), ("s", "add"), ("L", "sum")):
        g.add_node(node, op=op)
    g.add_edge("p", "h")
    g.add_edge("h", "a")
    g.add_edge("h", "b")
    g.add_edge("a", "s", arg=0)
    g.add_edge("b", "s", arg=1)
    g.add_edge("s", "L")
    return g


@pytest.mark.parametrize("case", [*FORWARD_WRITES, *VJP_WRITES])
def test_strict_programs_catch_a_write_at_its_op_and_node(
    register: Any, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    register(_Probe)
    net = gb.Network(_two_branches())
    params = net.compile().init(0)
    mine = {k: v.copy() for k, v in params.items()}
    if case in FORWARD_WRITES:
        monkeypatch.setattr(_Probe, "forward_rule", staticmethod(FORWARD_WRITES[case][0]))
    else:
        monkeypatch.setattr(_Probe, "vjp_rule", staticmethod(VJP_WRITES[case][0]))
    method = "forward" if case in FORWARD_WRITES else "vjp"
    generated, interpreted = (
        _outcome(lambda t=t: net.compile(traversal=t, strict=True).value_and_grad(mine, {}))
        for t in TRAVERSALS
    )
    assert _same(generated, interpreted), (generated, interpreted)
    assert generated[:2] == ("raised", gb.PluginError), generated
    message = generated[2]
    assert message.startswith(f"op 'probe' at node 'a': {method} raised ValueError")
    assert "return a new array; never write into operands" in message
    assert _same(mine, params) and all(v.flags.writeable for v in mine.values())


def test_strict_leaves_the_callers_arrays_alone(
    register: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forward writing into a parameter: refused, and the caller's array keeps its values
    and its flags (strict hands plugins read-only views, never flips the caller's arrays)."""
    register(_Probe)
    net = gb.Network(gb.Network(_two_branches()).graph)
    g = nx.DiGraph(net.graph)
    g.remove_edge("p", "h")
    g.remove_edge("h", "a")
    g.add_edge("p", "a")
    g.add_edge("p", "h")
    net = gb.Network(g)
    params = net.compile().init(0)
    before = params["p"].copy()
    monkeypatch.setattr(_Probe, "forward_rule", staticmethod(_times_two_in_place))
    for traversal in TRAVERSALS:
        with pytest.raises(gb.PluginError, match="at node 'a': forward raised ValueError"):
            net.compile(traversal=traversal, strict=True).loss(params, {})
        assert np.array_equal(params["p"], before) and params["p"].flags.writeable


def test_strict_computes_what_the_default_computes(seed_net: gb.Network) -> None:
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((7, 5)), "y": rng.standard_normal((7, 2))}
    params = seed_net.compile().init(3)

    def everything(prog: gb.Program) -> Any:
        loss, grads = prog.value_and_grad(params, data)
        values = prog.forward(params, {"x": data["x"]}, ["h1", "yhat", "x", "W1"])
        trained = gb.train(prog, params, data, epochs=2, batch_size=3, progress=False)
        writable = all(v.flags.writeable for v in (*grads.values(), *values.values()))
        return loss, grads, values, prog.loss(params, data), trained, writable

    default = everything(seed_net.compile())
    for traversal in TRAVERSALS:
        strict = everything(seed_net.compile(traversal=traversal, strict=True))
        assert _same(strict, default)
    assert default[-1] is True
    assert all(v.flags.writeable for v in (*params.values(), *data.values()))


@SETTINGS
@given(net=random_networks(), seed=st.integers(0, 2**16))
def test_strict_agrees_with_the_default_on_random_dags(net: gb.Network, seed: int) -> None:
    """Every built-in op leaves its arguments alone: read-only views change no result."""
    params, inputs = moderate_example(net, seed)
    default = _both(net, lambda prog: prog.value_and_grad(params, inputs))
    strict = [
        _outcome(lambda t=t: net.compile(traversal=t, strict=True).value_and_grad(params, inputs))
        for t in TRAVERSALS
    ]
    assert default[0] == "ok" and all(_same(s, default) for s in strict)


def test_strict_is_a_no_op_on_jax(seed_net: gb.Network) -> None:
    pytest.importorskip("jax")
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((7, 5)), "y": rng.standard_normal((7, 2))}
    default, strict = seed_net.compile("jax"), seed_net.compile("jax", strict=True)
    params = default.init(0)
    a, b = default.value_and_grad(params, data), strict.value_and_grad(params, data)
    assert _same(a, b) and strict.strict


def test_strict_shows_in_the_generated_source(seed_net: gb.Network) -> None:
    assert "SEAL(" in seed_net.compile(strict=True).source()
    assert "SEAL(" not in seed_net.compile().source()


# ----------------------------------------------------- gradients handed to the caller


def _sum_of(*params: tuple[str, tuple[int, ...]], op: str = "add") -> gb.Network:
    g = nx.DiGraph(loss="L")
    for name, shape in params:
        g.add_node(name, op="param", shape=shape, init="normal")
    if len(params) == 1:
        g.add_node("L", op="sum")
        g.add_edge(params[0][0], "L")
        return gb.Network(g)
    g.add_node("s", op=op)
    for i, (name, _) in enumerate(params):
        g.add_edge(name, "s", arg=i)
    g.add_node("L", op="sum")
    g.add_edge("s", "L")
    return gb.Network(g)


@pytest.mark.parametrize(
    "net",
    [
        pytest.param(lambda: _sum_of(("p", (3,)), ("q", (3,))), id="p + q: add's vjp gives g, g"),
        pytest.param(lambda: _sum_of(("p", (3,)), ("q", (3,)), op="sub"), id="p - q"),
        pytest.param(lambda: _sum_of(("p", (2, 3))), id="sum: a read-only broadcast view"),
        pytest.param(lambda: _sum_of(("p", ())), id="0-d: the engine's own dL/dL"),
        pytest.param(lambda: gb.Network(gb.seed_network(5, 4, 2)), id="seed network"),
    ],
)
def test_gradients_are_writable_arrays_of_their_own(net: Callable[[], gb.Network]) -> None:
    network = net()
    data = {"x": np.ones((3, 5)), "y": np.ones((3, 2))} if network.inputs else {}
    for traversal in TRAVERSALS:
        for strict in (False, True):
            prog = network.compile(traversal=traversal, strict=strict)
            params = prog.init(0)
            _, want = prog.value_and_grad(params, data)
            want = {k: np.array(v, copy=True) for k, v in want.items()}
            for name in network.params:
                _, grads = prog.value_and_grad(params, data)
                assert all(type(v) is np.ndarray and v.flags.writeable for v in grads.values())
                grads[name] *= 0  # must neither fail nor change another gradient
                for other in network.params:
                    if other != name:
                        assert np.array_equal(grads[other], want[other]), (name, other)
            again = prog.value_and_grad(params, data)[1]  # nor the next run
            assert _same(again, want)


def test_a_gradient_is_never_the_callers_own_array(register: Any, param_chain: Any) -> None:
    """A rule that returns an operand as its cotangent (½‖x‖², ∂/∂x = x when g = 1)."""

    class HalfSquare(gb.Op):
        name = "halfsquare"
        label = "½x²"
        local_grads = ("x",)

        def forward(self, xp: Any, x: Any) -> Any:
            return 0.5 * (x * x).sum()

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> Any:
            return (x if g == 1 else g * x,)

    register(HalfSquare)
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(3,), init="normal")
    g.add_node("L", op="halfsquare")
    g.add_edge("p", "L")
    net = gb.Network(g)
    for traversal in TRAVERSALS:
        prog = net.compile(traversal=traversal)
        params = prog.init(0)
        before = params["p"].copy()
        _, grads = prog.value_and_grad(params, {})
        assert np.array_equal(grads["p"], before)
        grads["p"] *= 0
        assert np.array_equal(params["p"], before)


# ------------------------------------------------------------- NFKC: keys arrive unchanged


class _Keys(gb.Op):
    """Records the attribute keys it is called with."""

    name = "keys"
    label = "id"
    local_grads = ("1",)
    seen: ClassVar[list[dict[str, Any]]] = []

    def forward(self, xp: Any, x: Any, **attrs: Any) -> Any:
        type(self).seen.append(dict(attrs))
        return x * 1.0

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, **attrs: Any) -> Any:
        type(self).seen.append(dict(attrs))
        return (g * 1.0,)


NFKC_KEYS = ["ｘｙ", "ﬁle", "ℌ", "x²", "ｃｌａｓｓ", "µ"]
"""Keys NFKC normalisation changes (fullwidth letters, a ligature, a Hilbert H, a micro sign;
x² is no identifier at all)."""


@pytest.mark.parametrize("key", NFKC_KEYS)
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_attribute_keys_reach_the_op_exactly_as_written(
    register: Any, param_chain: Any, tmp_path: Any, key: str, backend: str
) -> None:
    if backend == "jax":
        pytest.importorskip("jax")
    register(_Keys)
    g = param_chain(["keys"], shape=(2,), names=["k"])
    g.nodes["k"][key] = 3.0
    g.nodes["k"]["xy"] = 4.0  # the key ｘｙ would become: both must arrive, apart
    path = tmp_path / "net.json"
    gb.Network(g).to_json(path)
    for net in (gb.Network(g), gb.Network.from_json(path)):
        traversals = TRAVERSALS if backend == "numpy" else (None,)
        for traversal in traversals:
            _Keys.seen.clear()
            prog = net.compile(backend, traversal=traversal)
            prog.value_and_grad(prog.init(0), {})
            assert _Keys.seen, traversal
            assert all(seen == {key: 3.0, "xy": 4.0} for seen in _Keys.seen), _Keys.seen
    _Keys.seen.clear()


def test_a_declared_keyword_is_not_matched_by_its_nfkc_lookalike(
    register: Any, param_chain: Any
) -> None:
    class Scaled(gb.Op):
        name = "scaled"
        label = "a·x"
        local_grads = ("a",)

        def forward(self, xp: Any, x: Any, *, xy: float = 1.0) -> Any:
            return xy * x

        def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, xy: float = 1.0) -> Any:
            return (xy * g,)

    register(Scaled)
    g = param_chain(["scaled"], shape=(2,), names=["s"])
    g.nodes["s"]["ｘｙ"] = 5.0
    with pytest.raises(gb.GraphError, match=re.escape("attribute(s) ['ｘｙ'] that it does not")):
        gb.Network(g)
    del g.nodes["s"]["ｘｙ"]
    g.nodes["s"]["xy"] = 5.0
    prog = gb.Network(g).compile()
    assert float(prog.loss(prog.init(0), {})) == 10.0


def test_a_keyword_declared_with_nfkc_lookalikes_is_the_normalised_one(
    register: Any, param_chain: Any
) -> None:
    """Python normalises identifiers in source: a plugin written ``def forward(..., ｘｙ=1)``
    declares ``xy``. The node attribute ``ｘｙ`` is not it (refused), ``xy`` is."""
    source = textwrap.dedent(
        """
        class Wide(gb.Op):
            name = "wide"
            label = "a·x"
            local_grads = ("a",)

            def forward(self, xp, x, *, \uff58\uff59=1.0):
                return xy * x

            def vjp(self, xp, g, out, x, *, \uff58\uff59=1.0):
                return (xy * g,)
        """
    )
    namespace: dict[str, Any] = {"gb": gb}
    exec(source, namespace)  # the test's own source: the only way to spell the lookalike
    register(namespace["Wide"])
    assert gb.get_op("wide").arity == 1
    g = param_chain(["wide"], shape=(2,), names=["w"])
    g.nodes["w"]["ｘｙ"] = 5.0
    with pytest.raises(gb.GraphError, match=re.escape("attribute(s) ['ｘｙ'] that it does not")):
        gb.Network(g)
    del g.nodes["w"]["ｘｙ"]
    g.nodes["w"]["xy"] = 5.0
    for traversal in TRAVERSALS:
        prog = gb.Network(g).compile(traversal=traversal)
        assert float(prog.loss(prog.init(0), {})) == 10.0


def test_generated_source_never_holds_an_nfkc_key(register: Any, param_chain: Any) -> None:
    register(_Keys)
    g = param_chain(["keys"], shape=(2,), names=["k"])
    g.nodes["k"]["ｘｙ"] = 1.0
    source = gb.Network(g).compile().source()
    assert "ｘｙ" not in source and "**K0" in source


# ------------------------------------------------- attributes named like the engine's arguments


class _AnyAttrs(gb.Op):
    """Identity taking any attributes: one named like an argument of its own would clash."""

    name = "any_attrs"
    label = "id"
    local_grads = ("1",)

    def forward(self, xp: Any, x: Any, **attrs: Any) -> Any:
        return x * 1.0

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, **attrs: Any) -> Any:
        return (g * 1.0,)


@pytest.mark.parametrize("key", ["self", "xp", "x", "g", "out", "needs"])
def test_an_attribute_named_like_an_argument_the_engine_passes_is_refused(
    register: Any, key: str
) -> None:
    register(_AnyAttrs)
    g = nx.DiGraph()
    g.add_node("p", op="param", shape=(2,))
    g.add_node("a", op="any_attrs", fine=2)
    g.nodes["a"][key] = 1
    g.add_node("L", op="sum")
    g.add_edges_from([("p", "a"), ("a", "L")])
    with pytest.raises(gb.GraphError, match=rf"node 'a' \(op 'any_attrs'\).*\['{key}'\].*rename"):
        gb.Network(g, loss="L")
    del g.nodes["a"][key]
    prog = gb.Network(g, loss="L").compile()
    assert float(prog.loss(prog.init(0), {})) == 0.0  # "fine" alone is passed through


@pytest.mark.parametrize("traversal", TRAVERSALS)
@pytest.mark.parametrize("bad", [None, 3, "W1", ["W1"]])
def test_params_or_inputs_that_are_not_mappings_are_an_input_error(
    seed_net: gb.Network, traversal: Any, bad: Any
) -> None:
    prog = seed_net.compile(traversal=traversal)
    params = prog.init(0)
    inputs = {"x": np.ones((2, 5)), "y": np.ones((2, 2))}
    for call in (
        lambda: prog.loss(bad, inputs),
        lambda: prog.value_and_grad(params, bad),
        lambda: prog.forward(bad, inputs, ["L"]),
    ):
        with pytest.raises(gb.InputError, match=r"(params|inputs) is of type \w+; pass a dict"):
            call()


def test_a_plugin_out_of_memory_is_not_called_a_bug(
    probe_net: gb.Network, monkeypatch: Any
) -> None:
    def too_big(xp: Any, x: Any) -> Any:
        raise MemoryError("Unable to allocate 119. GiB")

    monkeypatch.setattr(_Probe, "forward_rule", staticmethod(too_big))
    for traversal in TRAVERSALS:
        prog = probe_net.compile(traversal=traversal)
        with pytest.raises(gb.PluginError, match="ran out of memory .*use smaller shapes") as info:
            prog.loss(prog.init(0), {})
        assert "bug" not in str(info.value)
