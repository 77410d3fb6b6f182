"""Issue 10, item 8: JAX precision is never lost silently, and forward mode is refused with
an explanation and a way that works.

JAX's 64-bit mode is process-wide: the cases that depend on it run in fresh subprocesses
with JAX_ENABLE_X64 set, so they cannot leak into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphbp as gb

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

SCRIPT = textwrap.dedent(
    """
    import json
    import warnings

    import jax
    import jax.numpy as jnp
    import numpy as np

    import graphbp as gb

    warnings.simplefilter("ignore")  # JAX warns when it truncates float64: we check results
    net = gb.Network(gb.seed_network(5, 4, 2))
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((7, 5)), "y": rng.standard_normal((7, 2))}
    reference = net.compile("numpy")
    params = reference.init(0)
    ref_loss, ref = reference.value_and_grad(params, data)  # NumPy float64: the oracle
    prog, prog32 = net.compile("jax"), net.compile("jax", dtype="float32")


    def outcome(fn):
        try:
            grads = fn()
        except gb.GraphbpError as exc:
            return {"raised": type(exc).__name__, "message": str(exc)}
        except Exception as exc:
            return {"foreign": type(exc).__name__, "message": str(exc)}
        if not isinstance(grads, dict):
            grads = {"loss": grads}
        if set(grads) == set(data):  # a gradient with respect to the inputs: no oracle here
            return {"dtypes": sorted({str(v.dtype) for v in grads.values()})}
        want = {"loss": ref_loss, **ref}
        error = max(
            float(np.max(np.abs(np.asarray(v, np.float64) - want[k])) / np.max(np.abs(want[k])))
            for k, v in grads.items()
        )
        return {"dtypes": sorted({str(v.dtype) for v in grads.values()}), "error": error}


    def with_x64(fn):
        with jax.enable_x64(True):
            return fn()


    as_jax = {k: jnp.asarray(v) for k, v in params.items()}  # float32 unless 64-bit mode
    as_jax32 = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
    results = {
        "x64": jax.dtypes.canonicalize_dtype(np.float64) == np.float64,
        "jax.grad, NumPy float64": outcome(lambda: jax.grad(prog.loss)(params, data)),
        "jax.jit, NumPy float64": outcome(lambda: jax.jit(prog.loss)(params, data)),
        "jnp.asarray of float64": outcome(lambda: prog.loss(as_jax, data)),
        "jax.grad wrt inputs": outcome(lambda: jax.grad(prog.loss, argnums=1)(params, data)),
        "explicit float32 arrays": outcome(lambda: jax.grad(prog.loss)(as_jax32, data)),
        "jax.grad, prog.own": outcome(lambda: jax.grad(prog.loss)(prog.own(params), data)),
        "jax.grad in enable_x64": outcome(
            lambda: with_x64(lambda: jax.grad(prog.loss)(params, data))
        ),
        "value_and_grad": outcome(lambda: prog.value_and_grad(params, data)[1]),
        "float32 program": outcome(lambda: jax.grad(prog32.loss)(params, data)),
    }
    print(json.dumps(results))
    """
)


def _run(tmp_path: Path, x64: bool) -> dict[str, Any]:
    script = tmp_path / "precision.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "JAX_ENABLE_X64": "1" if x64 else "0", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    results: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    assert results.pop("x64") is x64
    return results


FLOAT64_EXACT = 1e-12
"""JAX float64 against NumPy float64: the same arithmetic, round-off apart (the float32
version of the seed gradient is off by ~1e-7 to 1e-4 relative)."""


def test_without_64_bit_mode_float32_values_are_refused_with_the_fix(tmp_path: Path) -> None:
    results = _run(tmp_path, x64=False)
    for case in (
        "jax.grad, NumPy float64",
        "jax.jit, NumPy float64",
        "jnp.asarray of float64",
        "jax.grad wrt inputs",
        "explicit float32 arrays",
    ):
        got = results[case]
        assert got.get("raised") == "InputError", (case, got)
        message = got["message"]
        leaf = "input 'x'" if case == "jax.grad wrt inputs" else "param 'W1'"
        assert message.startswith(f"{leaf} (op "), message
        assert "float32 JAX array or tracer" in message and "64-bit mode is off" in message
        for fix in ("jax.config.update('jax_enable_x64', True)", "jax.enable_x64(True)"):
            assert fix in message
        assert "prog.own" in message and "dtype='float32'" in message
    # what the message suggests works, in float64, to round-off
    for case in ("jax.grad, prog.own", "jax.grad in enable_x64", "value_and_grad"):
        assert results[case]["dtypes"] == ["float64"], (case, results[case])
        assert results[case]["error"] < FLOAT64_EXACT, (case, results[case])
    float32 = results["float32 program"]
    assert float32["dtypes"] == ["float32"] and float32["error"] < 1e-4, float32


def test_with_64_bit_mode_float64_is_computed_in_float64(tmp_path: Path) -> None:
    results = _run(tmp_path, x64=True)
    for case in (
        "jax.grad, NumPy float64",
        "jax.jit, NumPy float64",
        "jnp.asarray of float64",
        "jax.grad, prog.own",
        "jax.grad in enable_x64",
        "value_and_grad",
    ):
        assert results[case]["dtypes"] == ["float64"], (case, results[case])
        assert results[case]["error"] < FLOAT64_EXACT, (case, results[case])
    assert results["jax.grad wrt inputs"] == {"dtypes": ["float64"]}
    # float32 asked for explicitly (64-bit mode on): converted, as NumPy float32 values are;
    # jax.grad hands the gradient back in the dtype it was given
    explicit = results["explicit float32 arrays"]
    assert explicit["dtypes"] == ["float32"] and explicit["error"] < 1e-5, explicit


# ------------------------------------------------------------------------- forward mode


def _setup(
    check_finite: bool = False, dtype: str = "float64"
) -> tuple[gb.Program, dict[str, Any], dict[str, Any]]:
    net = gb.Network(gb.seed_network(3, 2, 1))
    prog = net.compile("jax", dtype, check_finite=check_finite)
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((4, 3)), "y": rng.standard_normal((4, 1))}
    return prog, prog.own(prog.init(0)), data


def _forward_mode(prog: gb.Program, params: Any, data: Any) -> dict[str, Any]:
    def loss(p: Any) -> Any:
        return prog.loss(p, data)

    return {
        "jax.jvp": lambda: jax.jvp(loss, (params,), (params,)),
        "jax.jacfwd": lambda: jax.jacfwd(loss)(params),
        "jax.jacfwd of prog.forward": lambda: jax.jacfwd(
            lambda p: prog.forward(p, data, ["yhat"])["yhat"]
        )(params),
    }


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("check_finite", [False, True])
@pytest.mark.parametrize("warm", [False, True])
def test_forward_mode_is_refused_with_what_works(
    dtype: str, check_finite: bool, warm: bool
) -> None:
    prog, params, data = _setup(check_finite, dtype)
    if warm:  # the jitted program already traced: JAX refuses from its cache
        prog.loss(params, data)
        prog.forward(params, data, ["yhat"])
    for name, call in _forward_mode(prog, params, data).items():
        # float64 in JAX's 64-bit mode (scoped to the block), float32 without it
        with jax.enable_x64(dtype == "float64"), pytest.raises(gb.TransformError) as info:
            call()
        error = info.value
        assert isinstance(error, gb.GraphbpError) and isinstance(error, TypeError), name
        message = str(error)
        assert "forward mode (jax.jvp, jax.jacfwd)" in message, name
        assert "jax.custom_vjp" in message and "reverse mode only" in message
        assert "jax.jacrev(jax.jacrev(prog.loss))" in message
        assert "custom_vjp" in str(error.__cause__)  # JAX's own refusal, chained


def _pure_seed_loss(p: Any, d: Any) -> Any:
    """The seed network in plain jax.numpy: an oracle owing nothing to graphbp."""
    h1 = jax.nn.sigmoid(d["x"] @ p["W1"] + p["b1"])
    h2 = jax.nn.sigmoid(h1 @ p["W2"] + p["b2"])
    return jnp.sum((d["y"] - (h2 @ p["W3"] + p["b3"])) ** 2)


def _hessian_error(h: Any, want: Any) -> float:
    scale = max(float(np.max(np.abs(np.asarray(want[a][b])))) for a in want for b in want[a])
    return max(
        float(np.max(np.abs(np.asarray(h[a][b]) - np.asarray(want[a][b])))) / scale
        for a in want
        for b in want[a]
    )


def test_second_derivatives_work_as_the_error_says() -> None:
    """jacrev(jacrev(loss)), jax.hessian (forward over reverse) and jacfwd of value_and_grad's
    gradient equal the Hessian of the same network written in plain JAX."""
    prog, _, data = _setup()
    params = {k: np.asarray(v) for k, v in prog.init(0).items()}
    with jax.enable_x64(True):  # scoped to this block and thread: nothing leaks
        # jitted whole: eager nested transformations dispatch op by op, slowly
        want = jax.jit(jax.hessian(_pure_seed_loss))(params, data)
        ways = {
            "jacrev(jacrev)": jax.jit(jax.jacrev(jax.jacrev(prog.loss)))(params, data),
            "hessian": jax.jit(jax.hessian(prog.loss))(params, data),
            "jacfwd(value_and_grad)": jax.jit(
                jax.jacfwd(lambda p: prog.value_and_grad(p, data)[1])
            )(params),
        }
        for name, h in ways.items():
            assert h["W1"]["W2"].dtype == np.float64, name
            assert _hessian_error(h, want) < 1e-12, name
    # the pieces compared are not trivially zero: the Hessian couples the layers
    assert float(np.max(np.abs(np.asarray(want["W1"]["W3"])))) > 1e-3


def test_second_derivatives_of_a_float32_program_without_64_bit_mode() -> None:
    net = gb.Network(gb.seed_network(3, 2, 1))
    prog = net.compile("jax", dtype="float32")
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((4, 3)), "y": rng.standard_normal((4, 1))}
    params = prog.init(0)
    want = jax.jit(jax.hessian(_pure_seed_loss))(params, data)
    got = jax.jit(jax.jacrev(jax.jacrev(prog.loss)))(params, data)
    assert got["W1"]["W1"].dtype == np.float32
    assert _hessian_error(got, want) < 1e-4
