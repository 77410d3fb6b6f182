"""A plugin author's mistakes, each a one-line graphbp error that names the op at fault and
the fix: an activation that raises inside ``dense``, a class passed for an instance, malformed
examples or attributes, a broken definition; the messages hold no NumPy reprs, stay on one line
and say what is wrong in words; the ``gradcheck`` fixture fails cleanly on a network too."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from helpers import PytestRun, assert_only_plugin_frames, fake_distribution, run_on_path

import graphbp as gb
from graphbp.cli import main
from graphbp.errors import GradientCheckError, PluginError
from graphbp.op import apply_label, rename_variable
from graphbp.testing import check_op, check_op_autodiff

HAS_JAX = importlib.util.find_spec("jax") is not None
BACKENDS = [
    "numpy",
    pytest.param("jax", marks=pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")),
]


class Ident(gb.Op):
    name = "t_ident"
    label = "x"
    local_grads = ("1",)

    def forward(self, xp: Any, x: Any) -> Any:
        return x * 1.0

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (g,)


class RaiseFwd(Ident):
    name = "t_raise_fwd"

    def forward(self, xp: Any, x: Any) -> Any:
        raise RuntimeError("boom in forward")


class RaiseVjp(Ident):
    name = "t_raise_vjp"

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        raise ValueError("boom in vjp")


def _dense_net(activation: str) -> gb.Network:
    g = gb.seed_network(3, 4, 1)
    g.nodes["h1"]["activation"] = activation
    return gb.Network(g)


# ------------------------------------------------------------------ the op at fault is named


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("op", "method", "given"),
    [
        (RaiseFwd, "forward", "RuntimeError: boom in forward (called with operands of shapes "),
        (RaiseVjp, "vjp", "ValueError: boom in vjp (called with g of shape (4, 4), operands "),
    ],
)
def test_an_activation_that_raises_is_named_not_dense(
    register: Any, backend: str, op: type[gb.Op], method: str, given: str
) -> None:
    register(op)
    prog = _dense_net(op.name).compile(backend)
    with pytest.raises(PluginError) as info:
        prog.value_and_grad(prog.init(0), {"x": np.ones((4, 3)), "y": np.ones((4, 1))})
    message = str(info.value)
    assert message.startswith(
        f"op {op.name!r} (called by op 'dense' at node 'h1'): {method} raised {given}"
    )
    assert "[(4, 4)]" in message  # the shapes the activation was given, not dense's three
    assert message.endswith(f"fix test_plugin_mistakes.{op.__qualname__}.{method}")
    assert "graphbp_ops" not in message and "Dense" not in message
    assert info.value.method == method


@pytest.mark.parametrize("module", [__name__, "graphbp_ops.posing"])
def test_a_plugin_that_passes_a_built_in_op_wrong_operands_is_named_not_the_built_in(
    module: str,
) -> None:
    """The plugin is told from the built-in op by where its code is, not by the module its
    class names (which can say anything, even graphbp_ops)."""

    class SelfProduct(Ident):
        __module__ = module
        name = "t_self_product"

        def forward(self, xp: Any, x: Any) -> Any:
            return gb.get_op("matmul").forward(xp, x, x)  # (3, 4) @ (3, 4): a plugin's bug

    with pytest.raises(GradientCheckError) as info:
        check_op(SelfProduct())
    message = str(info.value)
    assert "op 't_self_product': forward raised ValueError: " in message
    assert message.endswith(
        f"fix {module}.test_a_plugin_that_passes_a_built_in_op_wrong_operands_is_"
        "named_not_the_built_in.<locals>.SelfProduct.forward"
    )
    assert "called by" not in message and "MatMul" not in message


def test_a_plugins_exception_is_quoted_on_one_bounded_line_even_if_it_cannot_be_printed() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("broken __str__")

    for exc, says in [
        (Unprintable(), "raised Unprintable: <Unprintable whose message cannot be read>; fix"),
        (ValueError("many\nlines\x1b" * 9999), "raised ValueError: many\\nlines\\x1bmany"),
        (ValueError(), "raised ValueError: (no message); fix"),
    ]:

        class Failing(Ident):
            name = "t_failing"

            def examples(self, rng: Any, exc: Exception = exc) -> Any:
                raise exc

        with pytest.raises(PluginError) as info:
            check_op(Failing())
        message = str(info.value)
        assert says in message and "\n" not in message and len(message) < 1000, message


def test_a_vjp_that_cannot_take_what_the_engine_passes_is_refused() -> None:
    class NoOut(Ident):
        name = "t_no_out"

        def vjp(self, xp: Any, g: Any, x: Any) -> tuple[Any]:  # type: ignore[override]
            return (g,)

    with pytest.raises(PluginError) as info:
        gb.register_op(NoOut)
    assert str(info.value) == (
        "op 't_no_out' (test_a_vjp_that_cannot_take_what_the_engine_passes_is_refused."
        "<locals>.NoOut): vjp takes 3 positional argument(s) after self, but the engine passes "
        "4: define vjp(self, xp, g, out, operand0) (forward takes 1 operand(s))"
    )


# ------------------------------------------------------------------ what the checks accept


class Doubled(Ident):
    """A wrong rule: twice the identity's."""

    name = "t_doubled"

    def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
        return (2 * g,)


def test_check_op_takes_the_class_as_register_op_does() -> None:
    assert check_op(Ident).compared > 0  # not registered: checked as given
    with pytest.raises(GradientCheckError, match=r"^op 't_doubled' on numpy, example 0 "):
        check_op(Doubled)
    with pytest.raises(PluginError) as info:
        check_op(5)  # type: ignore[arg-type]
    assert str(info.value) == (
        "5 is not a graphbp.Op; subclass gb.Op and define name, forward and local_grads (vjp, "
        "label and the rest are optional)"
    )


class Scaled(gb.Op):
    """k·x with a wrong rule and a required attribute."""

    name = "t_scaled"
    label = "k·x"
    local_grads = ("k",)
    attrs: ClassVar[dict[str, Any]] = {}

    def forward(self, xp: Any, x: Any, *, k: Any, note: str = "") -> Any:
        return x * k

    def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, k: Any, note: str = "") -> tuple[Any]:
        return (2 * g * k,)

    def shape(self, x: tuple[int, ...], **attrs: Any) -> tuple[int, ...]:
        return x

    def examples(self, rng: Any) -> list[Any]:
        return [((rng.standard_normal((3, 4)),), self.attrs)]


@pytest.mark.parametrize(
    ("attrs", "shown"),
    [
        (
            {"k": np.float64(3.0), "note": "n" * 300 + "\n\x1b[31mred"},
            "attrs {'k': 3.0, 'note': 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn…red'}",
        ),
        ({"k": np.arange(12.0).reshape(3, 4)}, "attrs {'k': <float64 array of shape (3, 4)>}"),
        ({"k": np.int64(2)}, "attrs {'k': 2}"),
    ],
)
def test_attributes_in_a_message_are_short_one_line_and_numbers(
    attrs: dict[str, Any], shown: str
) -> None:
    op = type("Case", (Scaled,), {"attrs": attrs})()
    with pytest.raises(GradientCheckError) as info:
        check_op(op)
    message = str(info.value)
    assert message.startswith(f"op 't_scaled' on numpy, example 0 (shapes [(3, 4)], {shown}): ")
    assert "np." not in message and "\n" not in message and "\x1b" not in message
    assert len(message) < 400


def test_a_shape_rule_of_numpy_ints_is_written_as_a_user_writes_it() -> None:
    class Cut(Ident):
        name = "t_cut"

        def forward(self, xp: Any, x: Any) -> Any:
            return x[:, :2] * 1.0

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
            return (xp.concatenate([g, 0 * x[:, 2:]], axis=1),)

        def shape(self, x: tuple[int, ...]) -> tuple[int, ...]:
            return (np.int64(x[0]), np.int64(3))  # type: ignore[return-value]

    with pytest.raises(GradientCheckError) as info:
        check_op(Cut())
    assert "the shape rule gives (3, 3) but forward returned shape (3, 2); fix " in str(info.value)
    assert "np." not in str(info.value)


def test_examples_may_be_yielded() -> None:
    class Yielding(Ident):
        def examples(self, rng: Any) -> Any:
            yield (rng.standard_normal((2, 3)),), {}

    assert check_op(Yielding()).compared == 6 + 3


def test_required_attributes_without_examples_ask_for_examples() -> None:
    class Bare(gb.Op):
        name = "t_bare"
        local_grads = ("k",)

        def forward(self, xp: Any, x: Any, *, k: float) -> Any:
            return x * k

        def vjp(self, xp: Any, g: Any, out: Any, x: Any, *, k: float) -> tuple[Any]:
            return (g * k,)

    with pytest.raises(PluginError) as info:
        check_op(Bare())
    assert str(info.value) == (
        "op 't_bare': forward needs the attribute(s) k, which the default examples (no "
        "attributes) do not give; define test_required_attributes_without_examples_ask_for_"
        "examples.<locals>.Bare.examples(self, rng) returning operands and attributes, e.g. "
        "[((rng.standard_normal((3, 4)),), {'k': 2.0})]"
    )
    with pytest.raises(PluginError, match=r"gave example 0 no attribute k, which forward needs"):
        check_op(Bare(), examples=[((np.ones((2, 2)),), {})])


@pytest.mark.parametrize(
    ("examples", "problem"),
    [
        ([((np.ones(3),),)], "gave example 0 as ((array([1., 1., 1.]),),), not an (operands, "),
        (5, "returned 5; write them as a list of (operands, attrs) pairs, e.g. [((x0,), {})]"),
        ([], "returned no example"),
        ([((np.ones(3), np.ones(3)), {})], "gave example 0 operands (array("),
        ([(("a",), {})], "gave example 0 operands that are not float arrays ("),
        ([((np.ones(3),), [1])], "gave example 0 attributes [1], not a dict by name"),
    ],
)
def test_malformed_examples_are_a_plugin_error_naming_the_op(
    capsys: pytest.CaptureFixture[str], register: Any, examples: Any, problem: str
) -> None:
    class BadExamples(Ident):
        name = "t_bad_examples"

        def examples(self, rng: Any) -> Any:
            return examples

    register(BadExamples)
    with pytest.raises(PluginError) as info:
        check_op("t_bad_examples")
    assert str(info.value).startswith(
        f"op 't_bad_examples': test_malformed_examples_are_a_plugin_error_naming_the_op.<locals>"
        f".BadExamples.examples() {problem}"
    )
    assert main(["check", "--op", "t_bad_examples", "--backend", "numpy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphbp check: error: op 't_bad_examples': ") and "unexpected" not in err


# ------------------------------------------------------------------ a definition that is wrong


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"name": 5}, "needs a `name` that is an identifier, e.g. name = 'cube' (it is 5)"),
        ({"vjp_reads": "out"}, "vjp_reads is 'out'; set it to a tuple of operand positions and"),
        ({"vjp_reads": (True,)}, "vjp_reads=(True,); list operand positions 0..0 and/or 'out'"),
        ({"label": 3}, "label is 3, not a str; set label to a function name such as 'σ'"),
        ({"local_grads": (1,)}, "local_grads[0] is 1, not a str; write each ∂out/∂operandᵢ as"),
        ({"label": "x̄"}, "label 'x̄' puts a combining mark on its variable 'x', which cannot"),
    ],
)
def test_a_broken_definition_is_a_plugin_error(attrs: dict[str, Any], expected: str) -> None:
    op = type("Broken", (Ident,), attrs)
    with pytest.raises(PluginError, match=re.escape(expected)):
        gb.register_op(op)


def test_an_entry_point_with_broken_vjp_reads_names_them(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path,
        "graphbp-reads",
        """
        [graphbp.ops]
        badreads = reads_ops:BadReads
        """,
        {
            "reads_ops": """
            from graphbp import Op
            class BadReads(Op):
                name = "badreads"
                local_grads = ("1",)
                vjp_reads = "out"
                def forward(self, xp, x): return x * 1.0
                def vjp(self, xp, g, out, x): return (g,)
            """
        },
    )
    run = run_on_path(
        """
        import graphbp as gb
        try:
            gb.get_op("badreads")
        except gb.PluginError as exc:
            print(exc)
        """,
        tmp_path,
    )
    assert run.stdout == (
        "op plugin 'reads_ops:BadReads' (graphbp-reads): op 'badreads' (BadReads): vjp_reads is "
        "'out'; set it to a tuple of operand positions and/or 'out', the forward values the vjp "
        "reads, e.g. vjp_reads = (0, 'out')\n"
    ), run.stderr


def test_a_broken_entry_point_is_not_suggested_for_an_unknown_op(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path,
        "graphbp-misnamed",
        """
        [graphbp.ops]
        mismatch = misnamed_ops:Mismatch
        """,
        {
            "misnamed_ops": """
            from graphbp import Op
            class Mismatch(Op):
                name = "notmismatch"
                local_grads = ("1",)
                def forward(self, xp, x): return x * 1.0
            """
        },
    )
    run = run_on_path(
        """
        import graphbp as gb
        for name in ("notmismatch", "sigmod"):
            try:
                gb.get_op(name)
            except gb.GraphError as exc:
                print(exc)
        """,
        tmp_path,
    )
    unknown, close = run.stdout.splitlines()
    assert unknown.startswith("unknown op 'notmismatch'; the ops are ")
    assert " add, affine, " in unknown and " sigmoid, " in unknown
    assert unknown.endswith(
        "; install a package that provides it, or register it with gb.register_op"
    )
    assert "mismatch," not in unknown
    assert close.startswith("unknown op 'sigmod'; did you mean 'sigmoid'")
    assert close.endswith("? Else register it with gb.register_op")
    assert "mismatch" not in close


# ------------------------------------------------------------------ messages in words


def test_a_vjp_giving_nan_is_said_in_words() -> None:
    class NaNRule(Ident):
        name = "t_nan"

        def vjp(self, xp: Any, g: Any, out: Any, x: Any) -> tuple[Any]:
            return (g * float("nan"),)

    with pytest.raises(GradientCheckError) as info:
        check_op(NaNRule())
    assert re.search(
        r"∂/∂operand 0\[0, 0\]: analytic nan vs numeric -?\d[\d.e+-]*: the vjp gave a value "
        "that is not finite, at an example where the op should be smooth$",
        str(info.value),
    ), str(info.value)
    assert "allowed" not in str(info.value)


def test_a_scalar_operand_has_no_empty_index() -> None:
    with pytest.raises(GradientCheckError) as info:
        check_op(Doubled(), examples=[((np.float64(0.5),), {})])
    assert re.search(
        r"\(shapes \[\(\)\]\): ∂/∂operand 0: analytic \S+ vs numeric ", str(info.value)
    )
    assert "[]" not in str(info.value)
    if HAS_JAX:
        with pytest.raises(GradientCheckError) as info:
            check_op_autodiff(Doubled(), examples=[((np.float64(0.5),), {})])
        assert "operand 0: plugin vjp vs jax.vjp: value: " in str(info.value)
        assert "[]" not in str(info.value)


# ------------------------------------------------------------------ what a label means


@pytest.mark.parametrize(
    ("label", "applied", "renamed"),
    [
        ("xᵀ", "(x·W+b)ᵀ", "zᵀ"),
        ("xᵢ", "(x·W+b)ᵢ", "zᵢ"),
        ("ln(1+eˣ)", "ln(1+e^(x·W+b))", "ln(1+eᶻ)"),
        ("eᶻ", "e^(x·W+b)", "eᶻ"),
        ("maxᵀ", "maxᵀ(x·W+b)", "maxᵀ"),  # a word with a superscript: a function name
        ("ᵉˣᵖ", "ᵉˣᵖ(x·W+b)", "ᵉˣᵖ"),  # a superscript word: no variable in it
    ],
)
def test_a_sub_or_superscript_keeps_the_variable(label: str, applied: str, renamed: str) -> None:
    assert apply_label(label, "x·W+b") == applied
    assert rename_variable(label, "z") == renamed


# ------------------------------------------------------------------ the gradcheck fixture


def test_gradcheck_fails_cleanly_on_a_network(gradcheck_run: PytestRun) -> None:
    """test_network of helpers.GRADCHECK_TESTS."""
    report = gradcheck_run.report("test_network")
    assert_only_plugin_frames(report)
    pytest.LineMatcher(report.splitlines()).re_match_lines(
        [
            r"GradientCheckError: network on \w+, parameter 'W1' \(shape \(3, 4\)\): "
            r"∂L/∂W1\[0, 0\]: analytic .*; the rule of op 't_wrong_swish', the activation of "
            r"node 'h1' \(op 'dense'\), is wrong .*; fix user_ops\.WrongSwish\.vjp and check it "
            "alone with `graphbp check --op t_wrong_swish`$",
        ]
    )


def test_the_plugins_line_is_shown_from_a_folder_named_graphbp(gradcheck_run: PytestRun) -> None:
    """test_raising of helpers.GRADCHECK_TESTS, in a folder named graphbp: a user's clone of
    their plugin may sit in one (or in one named numpy); its frames are still the user's."""
    report = gradcheck_run.report("test_raising")
    assert_only_plugin_frames(report)
    pytest.LineMatcher(report.splitlines()).re_match_lines(
        [
            r"GradientCheckError: op 'cube' on \w+, example 0 .*NameError: name 'undefined_name' "
            r"is not defined .*fix test_raising\.Raising\.vjp$",
            r"  raised at .*/graphbp/test_raising\.py:\d+, in vjp: return \(g / undefined_name,\)$",
        ]
    )
