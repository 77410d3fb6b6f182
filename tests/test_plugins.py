"""Third-party ops: register_op, entry points of an installed package, the pytest fixture."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import USER_OPS, PytestRun, fake_distribution, run_on_path
from user_ops import Cube

import graphbp as gb
from graphbp.testing import check_network, check_op


def test_register_use_and_check_a_new_op(register: Any) -> None:
    register(Cube)
    assert "cube" in gb.ops()
    g = gb.seed_network(3, 4)
    g.nodes["h2"]["activation"] = "cube"  # h2 = cube(h1·W2 + b2)
    net = gb.Network(g)
    assert check_op("cube").max_rel_error < 1e-6
    assert check_network(net).max_rel_error < 1e-6


def test_attributes_reach_forward_and_vjp(register: Any, param_chain: Any) -> None:
    class Power(gb.Op):
        name = "power"
        label = "xᵖ"
        local_grads = ("p·xᵖ⁻¹",)

        def forward(self, xp: Any, x: Any, p: float = 2.0) -> Any:
            return x**p

        def vjp(self, xp: Any, g: Any, out: Any, x: Any, p: float = 2.0) -> tuple[Any]:
            return (g * p * x ** (p - 1),)

        def examples(self, rng: Any) -> list[Any]:
            return [((0.5 + abs(rng.standard_normal((3,))),), {"p": 3.5})]

    register(Power)
    check_op("power")
    g = param_chain(["power"], shape=(2,), init=2.0, names=["pw"], param="w")
    g.nodes["pw"]["p"] = 3.0
    prog = gb.Network(g).compile()
    loss, grads = prog.value_and_grad(prog.init(), {})
    assert loss == 16.0
    np.testing.assert_array_equal(grads["w"], [12.0, 12.0])


def test_ops_from_another_package_are_found_by_entry_point(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path,
        "graphbp-cube",
        """
        [graphbp.ops]
        cube = cube_ops:Cube
        broken = broken_ops:Broken
        """,
        {
            "cube_ops": USER_OPS.read_text(),
            "broken_ops": "raise RuntimeError('this plugin is broken')\n",
        },
    )
    run = run_on_path(
        """
        import sys, warnings
        import graphbp as gb
        from graphbp.registry import load_all_ops, op_provider
        assert "cube_ops" not in sys.modules          # listed, not imported
        assert {"cube", "broken"} <= set(gb.ops())
        print(op_provider("cube"))
        from graphbp.testing import check_op
        print(check_op("cube"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ops = load_all_ops()
        assert "cube" in ops and "broken" not in ops
        print(caught[0].message)
        try:
            gb.get_op("broken")
        except gb.PluginError as exc:
            print("error:", exc)
        """,
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("graphbp-cube")
    assert "op 'cube' on numpy" in run.stdout
    assert (
        "op plugin 'broken' = 'broken_ops:Broken' from package graphbp-cube failed to load: "
        "RuntimeError: this plugin is broken"
    ) in run.stdout
    assert "error: op plugin 'broken'" in run.stdout


def test_entry_point_name_must_match_the_op_name(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path,
        "graphbp-misnamed",
        "[graphbp.ops]\ncubed = m:Cube\n",
        {
            "m": """
            import graphbp as gb
            class Cube(gb.Op):
                name = "cube"
                local_grads = ("3x²",)
                def forward(self, xp, x):
                    return x**3
         """
        },
    )
    run = run_on_path(
        """
        import graphbp as gb
        try:
            gb.get_op("cubed")
        except gb.PluginError as exc:
            print(exc)
        """,
        tmp_path,
    )
    assert "entry point 'cubed' of package graphbp-misnamed loads an op named 'cube'" in run.stdout


def test_missing_backend_says_how_to_install_it() -> None:
    with pytest.raises(gb.BackendNotInstalledError, match=r"'torch' is not installed.*numpy"):
        gb.Network(gb.seed_network(2, 2)).compile("torch")


def test_without_jax_the_jax_backend_says_how_to_install_it_and_numpy_still_works() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["jax"] = None  # as if jax were not installed
        import graphbp as gb
        net = gb.Network(gb.seed_network(2, 3))
        print("backends:", gb.backends())
        try:
            net.compile("jax")
        except gb.BackendNotInstalledError as exc:
            print("error:", exc)
        prog = net.compile("numpy")
        print("numpy loss:", float(prog.loss(prog.init(0), {"x": [[1.0, 2.0]], "y": [[0.5]]})))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "backends: ['jax', 'numpy']" in run.stdout  # listed: the entry point is installed
    assert "error: backend 'jax' cannot import its dependencies" in run.stdout
    assert "pip install 'graphbp[jax]'" in run.stdout
    assert "numpy loss: " in run.stdout


def test_import_graphbp_imports_no_backend_or_op_module() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, graphbp; print(sorted(m for m in sys.modules if m.startswith(('jax', "
            "'graphbp_'))))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.strip() == "[]", run.stdout + run.stderr


def test_pytest_fixture_checks_a_users_op_on_every_backend(gradcheck_run: PytestRun) -> None:
    """test_good and test_wrong_rule of helpers.GRADCHECK_TESTS: the README's Cube passes on
    every installed backend (and against jax.vjp), a wrong rule fails."""
    assert gradcheck_run.outcome("test_good") == "passed"
    assert gradcheck_run.outcome("test_wrong_rule") == "failed"
    assert re.search(
        r"GradientCheckError: op 'cube' on \w+, example 0.*analytic",
        gradcheck_run.report("test_wrong_rule"),
    )


def test_attributes_that_are_not_identifiers_reach_an_op_taking_kwargs(
    register: Any, param_chain: Any
) -> None:
    """Attribute names are data: they reach the op as a dict, never as generated code."""

    class Scaled(gb.Op):
        name = "scaled"
        label = "a·x"
        local_grads = ("a",)

        def forward(self, xp: Any, x: Any, **attrs: Any) -> Any:
            return x * attrs["my-scale"] * attrs["and"]

        def vjp(self, xp: Any, g: Any, out: Any, x: Any, **attrs: Any) -> tuple[Any]:
            return (g * attrs["my-scale"] * attrs["and"],)

    register(Scaled)
    g = param_chain(["scaled"], shape=(2,), names=["s"], param="w")
    g.nodes["s"].update({"my-scale": 3.0, "and": 2.0})
    prog = gb.Network(g).compile()
    loss, grads = prog.value_and_grad(prog.init(), {})
    assert loss == 12.0
    np.testing.assert_array_equal(grads["w"], [6.0, 6.0])
    assert "my-scale" not in prog.source()


CLASHES = """
import sys, warnings
sys.path[:0] = {paths!r}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import graphbp as gb
    from graphbp.registry import op_provider
    names = gb.ops()
    providers = op_provider("cube"), op_provider("sigmoid")
for w in caught:
    print("warning:", w.message)
print("used:", *providers)
print("input listed:", "input" in names)
"""


def test_packages_offering_the_same_op_name_get_a_warning_and_always_the_same_choice(
    tmp_path: Path,
) -> None:
    """Two packages offer cube: the first by name is used, whatever the order on sys.path;
    one offers sigmoid too (graphbp's own is used) and input, a leaf (ignored)."""
    a, b = tmp_path / "a", tmp_path / "b"
    fake_distribution(
        a, "graphbp-cube-b", "[graphbp.ops]\ncube = cube_b:Cube\n", {"cube_b": USER_OPS.read_text()}
    )
    fake_distribution(
        b,
        "graphbp-cube-a",
        "[graphbp.ops]\ncube = cube_a:Cube\nsigmoid = cube_a:Cube\ninput = cube_a:Cube\n",
        {"cube_a": USER_OPS.read_text()},
    )
    outputs = []
    for paths in ([str(a), str(b)], [str(b), str(a)]):
        run = subprocess.run(
            [sys.executable, "-c", CLASHES.format(paths=paths)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1]  # the same choice and the same words, in either order
    out = outputs[0]
    assert (
        "warning: graphbp.ops entry point 'cube' is offered by graphbp-cube-a (cube_a:Cube), "
        "graphbp-cube-b (cube_b:Cube); graphbp-cube-a's is used"
    ) in out
    assert (
        "warning: graphbp.ops entry point 'sigmoid' is offered by graphbp "
        "(graphbp_ops.elementwise:Sigmoid), graphbp-cube-a (cube_a:Cube); graphbp's is used"
    ) in out
    assert "package graphbp-cube-a offers an op named 'input', a leaf kind" in out
    assert "used: graphbp-cube-a graphbp\n" in out
    assert "input listed: False" in out
