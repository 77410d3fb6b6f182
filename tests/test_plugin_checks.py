"""What a plugin author sees: which Op attributes are required, what a label means inside
dense, `graphbp check --op`, the gradcheck fixture's failure output, and the gradient checks
naming the op whose rule is wrong (with indices written as a user writes them)."""

from __future__ import annotations

import importlib.util
import re
import shutil
from typing import Any

import networkx as nx
import pytest
from helpers import PytestRun, assert_only_plugin_frames
from user_ops import Swish, WrongSwish

import graphbp as gb
from graphbp.cli import main
from graphbp.errors import GradientCheckError, PluginError
from graphbp.op import apply_label, rename_variable
from graphbp.testing import check_network, check_op, check_op_autodiff

HAS_JAX = importlib.util.find_spec("jax") is not None


# ------------------------------------------------------------------ required attributes


def test_an_op_without_local_grads_is_refused_naming_it_and_the_fix() -> None:
    class NoGrads(gb.Op):
        name = "t_no_grads"

        def forward(self, xp: Any, x: Any, y: Any) -> Any:
            return x * y

    with pytest.raises(PluginError) as info:
        gb.register_op(NoGrads)
    message = str(info.value)
    assert message.startswith("op 't_no_grads' (")
    assert "has no local_grads, which every op needs" in message
    assert 'local_grads = ("∂out/∂operand0", "∂out/∂operand1")' in message
    assert "t_no_grads" not in gb.ops()


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"local_grads": "3x²"}, "local_grads must be a tuple of str"),
        ({"local_grads": (3,)}, "local_grads[0] is 3, not a str"),
        ({"local_grads": ("a", "b")}, "local_grads has 2 entries but forward takes 1"),
        ({"local_grads": ("a",), "label": 3}, "label is 3, not a str; set label to a"),
        ({"local_grads": ("a",), "name": ""}, "needs a `name` that is an identifier"),
    ],
)
def test_what_registration_enforces(attrs: dict[str, Any], expected: str) -> None:
    def forward(self: Any, xp: Any, x: Any) -> Any:
        return x

    op = type("Bad", (gb.Op,), {"name": "t_bad", "forward": forward, **attrs})
    with pytest.raises(PluginError, match=re.escape(expected)):
        gb.register_op(op)


def test_label_and_vjp_are_optional(register: Any) -> None:
    class Twice(gb.Op):
        name = "t_twice"
        local_grads = ("2",)

        def forward(self, xp: Any, x: Any) -> Any:
            return 2 * x

    op = register(Twice)
    assert op.describe({}) == ("t_twice", ("2",))  # drawn with its name
    if HAS_JAX:  # JAX differentiates an op without a vjp
        assert check_op("t_twice", "jax").max_rel_error < 1e-6


# ------------------------------------------------------------------ what a label means


@pytest.mark.parametrize(
    ("label", "applied", "renamed"),
    [
        ("σ", "σ(x·W+b)", "σ"),
        ("tanh", "tanh(x·W+b)", "tanh"),
        ("exp", "exp(x·W+b)", "exp"),  # an x inside a word is no variable
        ("softmax", "softmax(x·W+b)", "softmax"),
        ("x·σ(x)", "(x·W+b)·σ(x·W+b)", "z·σ(z)"),
        ("x³", "(x·W+b)³", "z³"),
        ("max(x,0)", "max(x·W+b,0)", "max(z,0)"),
        ("2x+1", "2(x·W+b)+1", "2z+1"),
        ("z·σ(z)", "(x·W+b)·σ(x·W+b)", "z·σ(z)"),  # z names the operand too
        ("zeta", "zeta(x·W+b)", "zeta"),
        ("", "(x·W+b)", ""),
    ],
)
def test_a_label_is_a_function_name_or_an_expression_in_x(
    label: str, applied: str, renamed: str
) -> None:
    assert apply_label(label, "x·W+b") == applied
    assert rename_variable(label, "z") == renamed


def _dense_net(activation: str) -> gb.Network:
    g = gb.seed_network(3, 4, 1)
    g.nodes["h1"]["activation"] = activation
    return gb.Network(g)


def test_dense_draws_an_expression_label_with_its_operand_in_place_of_x(register: Any) -> None:
    register(Swish)
    drawn = gb.render(_dense_net("t_swish"), wrt="W1").source
    source = re.sub(r'<FONT POINT-SIZE="[\d.]+">([^<]*)</FONT>', r"\1", drawn)  # script sizes
    h1 = next(line for line in source.splitlines() if "<B>h<SUB>1</SUB></B>" in line)
    assert "(x·W+b)·σ(x·W+b)" in h1 and "f(x" not in h1
    # the edges into h1 carry the activation's derivative written in z = x·W+b
    edges = [line for line in source.splitlines() if "-> n" in line and "∂h<SUB>1</SUB>/∂" in line]
    assert len(edges) == 3 and all(
        "(σ(z)(1+z(1−σ(z)))⊙·)" in e or "σ(z)(1+z(1−σ(z)))⊙·" in e for e in edges
    )
    assert "σ(x)(1+x" not in source


def test_dense_draws_a_function_name_applied() -> None:
    source = gb.render(_dense_net("tanh"), wrt="W1").source
    assert "<TD>tanh(x·W+b)</TD>" in source and "f(x" not in source
    source = gb.render(_dense_net("exp"), wrt="W1").source
    assert "<TD>exp(x·W+b)</TD>" in source and "(exp(z)⊙·)" in source


# ------------------------------------------------------------------ graphbp check --op


def test_check_one_op(capsys: pytest.CaptureFixture[str], register: Any) -> None:
    register(Swish)
    assert main(["check", "--op", "t_swish", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("op 't_swish' on numpy: ")
    assert ("op 't_swish' vs jax.vjp on jax: " in out[1]) is HAS_JAX
    assert out[-1].startswith("op 't_swish' (user_ops): its vjp agrees with float64")
    assert not any("network" in line for line in out)  # the op alone


def test_check_one_op_reports_a_wrong_rule(
    capsys: pytest.CaptureFixture[str], register: Any
) -> None:
    register(WrongSwish)
    assert main(["check", "--op", "t_wrong_swish", "--backend", "numpy"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        "graphbp check: check failed: op 't_wrong_swish' on numpy, example 0 (shapes [(3, 4)]): "
        "∂/∂operand 0[0, 0]: analytic"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sigmod", "unknown op 'sigmod'; did you mean 'sigmoid'"),
        ("frobnicate", f"unknown op 'frobnicate'; the ops are {', '.join(sorted(gb.ops())[:5])}, "),
        ("input", "'input' is a leaf kind of the graph schema, not an op"),
    ],
)
def test_check_an_unknown_op_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], name: str, expected: str
) -> None:
    assert main(["check", "--op", name]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"graphbp check: error: {expected}")


def test_check_op_and_a_graph_together_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "g.json", "--op", "tanh"]) == 2
    assert "--op checks the op 'tanh' alone" in capsys.readouterr().err


# ------------------------------------------------------------------ the gradcheck fixture


def test_a_failing_gradcheck_shows_graphbps_message_not_its_frames(
    gradcheck_run: PytestRun,
) -> None:
    """test_wrong_rule and test_raising_rule of helpers.GRADCHECK_TESTS."""
    shapes = re.escape("(shapes [(3, 4)]): ")
    source = (gradcheck_run.root / "test_fixture.py").read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(source) if "no_such_method" in text)
    wrong, raising = (gradcheck_run.report(t) for t in ("test_wrong_rule", "test_raising_rule"))
    pytest.LineMatcher(wrong.splitlines()).re_match_lines(
        [
            rf"GradientCheckError: op 'cube' on \w+, example 0 {shapes}"
            + re.escape("∂/∂operand 0[0, 0]: analytic ")
            + ".* vs numeric .* differ by ",
        ]
    )
    pytest.LineMatcher(raising.splitlines()).re_match_lines(
        [
            rf"GradientCheckError: op 'cube' on \w+, example 0 {shapes}op 'cube': vjp raised "
            "AttributeError: .*no_such_method.*; this is a bug in the plugin: fix "
            r"test_fixture\.Crashing\.vjp$",
            rf"  raised at .*/test_fixture\.py:{line}, in vjp: "
            r"return \(g \* x\.no_such_method\(\),\)",
        ]
    )
    for report in (wrong, raising):
        assert_only_plugin_frames(report)


# ------------------------------------------------------------------ naming the wrong rule


def _wrong_op_net() -> gb.Network:
    """x → affine(x, W, b) → h → sum(h) → L with h a wrong swish: the rule's error reaches W."""
    g = nx.DiGraph(loss="L")
    g.add_node("x", op="input", shape=(None, 3))
    g.add_node("W", op="param", shape=(3, 2))
    g.add_node("b", op="param", shape=(2,))
    g.add_node("z", op="affine")
    g.add_node("h", op="t_wrong_swish")
    g.add_node("L", op="sum")
    for arg, source in enumerate(("x", "W", "b")):
        g.add_edge(source, "z", arg=arg)
    g.add_edge("z", "h")
    g.add_edge("h", "L")
    return gb.Network(g)


@pytest.mark.parametrize(
    "backend",
    [
        "numpy",
        pytest.param("jax", marks=pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")),
    ],
)
def test_check_network_names_the_op_whose_rule_is_wrong(register: Any, backend: str) -> None:
    register(WrongSwish)
    with pytest.raises(GradientCheckError) as info:
        check_network(_wrong_op_net(), backend)
    message = str(info.value)
    assert re.match(
        rf"network on {backend}, parameter 'W' \(shape \(3, 2\)\): ∂L/∂W\[0, 0\]: analytic ",
        message,
    )
    assert "; the rule of op 't_wrong_swish' at node 'h' is wrong (op 't_wrong_swish' on" in message
    assert message.endswith(
        "fix user_ops.WrongSwish.vjp and check it alone with `graphbp check --op t_wrong_swish`"
    )
    assert "operand 0[" not in message.split(";")[0]  # the parameter is named, not an operand
    assert "np.int64" not in message and "\n" not in message


def test_check_network_names_a_wrong_activation_inside_dense(register: Any) -> None:
    register(WrongSwish)
    with pytest.raises(GradientCheckError) as info:
        check_network(_dense_net("t_wrong_swish"))
    message = str(info.value)
    assert "∂L/∂W1[0, 0]" in message
    assert "the rule of op 't_wrong_swish', the activation of node 'h1' (op 'dense')" in message


def test_a_right_rule_at_a_non_smooth_point_is_not_blamed() -> None:
    """relu at exactly 0: the differences see a kink, the rule is right everywhere else."""
    g = nx.DiGraph(loss="L")
    g.add_node("p", op="param", shape=(3,), init=0.0)
    g.add_node("r", op="relu")
    g.add_node("L", op="sum")
    g.add_edges_from([("p", "r"), ("r", "L")])
    with pytest.raises(GradientCheckError) as info:
        check_network(gb.Network(g))
    message = str(info.value)
    assert message.startswith("network on numpy, parameter 'p' (shape (3,)): ∂L/∂p[0]: ")
    assert "; op 'relu' at node 'r' disagrees with central differences at the node's" in message
    assert message.endswith(
        "though it passes on its own examples: a non-smooth point (relu at 0) or a rule wrong "
        "only for these operands"
    )
    assert "fix " not in message


def test_a_right_network_still_passes(register: Any) -> None:
    register(Swish)
    assert check_network(_dense_net("t_swish")).max_rel_error < 1e-6


@pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
def test_the_autodiff_check_writes_indices_as_a_user_does(register: Any) -> None:
    register(WrongSwish)
    with pytest.raises(GradientCheckError) as info:
        check_op_autodiff("t_wrong_swish")
    message = str(info.value)
    assert re.search(r"plugin vjp vs jax\.vjp: element \[\d, \d\]: ", message), message
    assert "np.int64" not in message


def test_check_op_writes_indices_as_a_user_does(register: Any) -> None:
    register(WrongSwish)
    with pytest.raises(GradientCheckError, match=re.escape("∂/∂operand 0[0, 0]: analytic")):
        check_op("t_wrong_swish")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_the_readme_labels_render(register: Any) -> None:
    register(Swish)
    assert "(x·W+b)·σ(x·W+b)" in gb.render(_dense_net("t_swish")).pipe("svg").decode()
