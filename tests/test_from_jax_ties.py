"""Imported activations at their kinks and ties: values and gradients equal jax.grad's,
JAX's own custom derivative rules (relu, relu6, logaddexp, logaddexp2) included."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import graphbp as gb  # noqa: E402
from graphbp.testing import check_op  # noqa: E402

RTOL = 1e-12
POINTS = [0.0, 6.0, -6.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 20.0, -20.0, 1e-3, 0.0, 6.0]
"""Kinks of every activation here (0, ±1, 6), each side of them, and far out."""

UNARY: dict[str, Callable[[Any], Any]] = {
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "softplus": jax.nn.softplus,
    "log_sigmoid": jax.nn.log_sigmoid,
    "sigmoid": jax.nn.sigmoid,
    "silu": jax.nn.silu,
    "gelu_tanh": partial(jax.nn.gelu, approximate=True),
    "gelu_erf": partial(jax.nn.gelu, approximate=False),
    "elu": jax.nn.elu,
    "celu": jax.nn.celu,
    "selu": jax.nn.selu,
    "leaky_relu": jax.nn.leaky_relu,
    "hard_tanh": jax.nn.hard_tanh,
    "mish": jax.nn.mish,
    "squareplus": jax.nn.squareplus,
    "sparse_plus": jax.nn.sparse_plus,
    "abs": jnp.abs,
    "logaddexp_0": lambda x: jnp.logaddexp(x, 0.0),
    "logaddexp2_0": lambda x: jnp.logaddexp2(x, 0.0),
}
ROWS: dict[str, Callable[[Any], Any]] = {
    "softmax": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax,
    "logsumexp": lambda x: jax.nn.logsumexp(x, axis=-1),
}
BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "logaddexp": jnp.logaddexp,
    "logaddexp2": jnp.logaddexp2,
    "maximum": jnp.maximum,
    "minimum": jnp.minimum,
}
CUSTOM_OPS = {"relu": "relu", "relu6": "relu6", "softplus": "logaddexp"}
CUSTOM_OPS |= {"log_sigmoid": "logaddexp", "logaddexp": "logaddexp", "logaddexp2": "logaddexp2"}
"""Functions whose JAX custom rule graphbp computes with one op, and that op."""


def _finite_under_jax(fn: Callable[..., Any], *args: Any) -> bool:
    """Whether JAX's value and gradients of ``sum(fn(*args))`` are all finite."""
    with jax.enable_x64(True):
        value, grads = jax.value_and_grad(lambda *a: jnp.sum(fn(*a)), range(len(args)))(*args)
    return bool(np.isfinite(value)) and all(np.isfinite(g).all() for g in grads)


def _assert_equal_to_jax(loss: Any, params: dict[str, Any], inputs: tuple[Any, ...]) -> gb.Network:
    net, p, x = gb.from_jax(loss, params, *inputs)
    with jax.enable_x64(True):
        want_loss, want = jax.value_and_grad(loss)(params, *inputs)
    infinite = not all(np.isfinite(v).all() for v in inputs)
    for backend in ("numpy", "jax"):
        with warnings.catch_warnings():
            if infinite and backend == "numpy":  # NumPy warns of the NaN a select discards
                warnings.simplefilter("ignore", RuntimeWarning)  # (celu's branch at -inf)
            got_loss, got = net.compile(backend, "float64").value_and_grad(p, x)
        assert float(got_loss) == pytest.approx(float(want_loss), rel=RTOL, abs=RTOL), backend
        for name, value in want.items():
            value = np.asarray(value)
            err = np.max(np.abs(np.asarray(got[name]) - value)) / max(np.max(np.abs(value)), 1.0)
            assert err <= RTOL, (backend, name, err, np.asarray(got[name]), value)
    return net


def _ops(net: gb.Network) -> set[str]:
    return {net.op_name(n) for n in net.order}


@pytest.mark.parametrize("name", list(UNARY))
def test_an_activation_at_its_kinks_has_jaxs_value_and_gradient(name: str) -> None:
    fn = UNARY[name]
    # ±inf only where JAX's value and gradient stay finite there (relu(-inf), softplus(-inf))
    extra = [v for v in (np.inf, -np.inf) if _finite_under_jax(fn, np.array([v]))]
    at = np.array(POINTS + extra)
    weights = np.random.default_rng(0).uniform(0.5, 1.5, at.shape)

    def loss(params: dict[str, Any], x: Any, c: Any) -> Any:
        # the point as a parameter, and as an input shifted by a zero parameter (a bias)
        return jnp.sum(c * fn(params["w"])) + jnp.sum(c * fn(x + params["p"]))

    params = {"w": np.where(np.isfinite(at), at, 0.0), "p": np.zeros(at.shape)}
    net = _assert_equal_to_jax(loss, params, (at, weights))
    if name in CUSTOM_OPS:
        assert CUSTOM_OPS[name] in _ops(net)
        assert "max" not in _ops(net) and "abs" not in _ops(net)  # no inlined body


@pytest.mark.parametrize("name", list(ROWS))
def test_a_row_function_with_tied_entries_has_jaxs_value_and_gradient(name: str) -> None:
    fn = ROWS[name]
    rows = [POINTS[:8], [0.0] * 8, [6.0, 6.0, 0.0, 0.0, -1.0, 6.0, 1.0, 1.0]]
    rows += [r for r in ([0.0, -np.inf, *[1.0] * 6],) if _finite_under_jax(fn, np.array([r]))]
    at = np.array(rows)
    weights = np.random.default_rng(1).uniform(0.5, 1.5, (len(rows), 8))

    def loss(params: dict[str, Any], x: Any, c: Any) -> Any:
        return jnp.sum(c[..., : fn(x).shape[-1]] * fn(x + params["p"]))

    _assert_equal_to_jax(loss, {"p": np.zeros(at.shape)}, (at, weights))


@pytest.mark.parametrize("name", list(BINARY))
def test_a_binary_function_at_ties_and_infinities_has_jaxs_value_and_gradient(name: str) -> None:
    fn = BINARY[name]
    a = [0.0, 6.0, -2.0, 3.0, 1.0, 0.0, -5.0, 7.0]
    b = [0.0, 6.0, -2.0, -3.0, 1.5, 1e-9, 5.0, 7.0]  # ties first, then apart
    for x, y in ((np.inf, 1.0), (-np.inf, 1.0), (1.0, -np.inf), (-np.inf, -np.inf)):
        if _finite_under_jax(fn, np.array([x]), np.array([y])):
            a.append(x)
            b.append(y)
    xa, xb = np.array(a), np.array(b)
    weights = np.random.default_rng(2).uniform(0.5, 1.5, xa.shape)

    def loss(params: dict[str, Any], x: Any, y: Any, c: Any) -> Any:
        tied = jnp.sum(c * fn(params["u"], params["v"]))  # both operands parameters
        return tied + jnp.sum(c * fn(x + params["p"], y + params["q"]))

    finite = np.isfinite(xa) & np.isfinite(xb)
    params = {
        "u": np.where(finite, xa, 0.0),
        "v": np.where(finite, xb, 0.0),
        "p": np.zeros(xa.shape),
        "q": np.zeros(xa.shape),
    }
    net = _assert_equal_to_jax(loss, params, (xa, xb, weights))
    if name in CUSTOM_OPS:
        assert CUSTOM_OPS[name] in _ops(net)


def test_a_logaddexp_with_a_broadcast_operand_and_float32_matches_jax() -> None:
    def loss(params: dict[str, Any], x: Any) -> Any:
        return jnp.sum(jnp.logaddexp(x @ params["w"], params["b"]))

    rng = np.random.default_rng(3)
    params = {"w": rng.standard_normal((3, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}
    x = rng.standard_normal((4, 3)).astype(np.float32)
    net, p, xs = gb.from_jax(loss, params, x)
    assert "logaddexp" in _ops(net)
    want_loss, want = jax.value_and_grad(loss)(params, x)
    got_loss, got = net.compile("jax", "float32").value_and_grad(p, xs)
    assert float(got_loss) == pytest.approx(float(want_loss), rel=1e-5)
    for name in params:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(want[name]), rtol=1e-5)


def test_a_users_own_custom_jvp_function_is_not_taken_for_jaxs_and_keeps_its_rule() -> None:
    @jax.custom_jvp
    def relu(x: Any) -> Any:  # named like JAX's, but the user's
        return jnp.maximum(x, 0.0)

    relu.defjvps(lambda g, ans, x: g * 3.0)

    def loss(w: Any) -> Any:
        return jnp.sum(relu(w))

    w = np.array([-1.0, 2.0])
    net, p, xs = gb.from_jax(loss, w)
    assert "relu" not in _ops(net) and "opaque" in _ops(net)  # run by JAX, with its rule
    _, got = net.compile("jax").value_and_grad(p, xs)
    np.testing.assert_allclose(np.asarray(got["w"]), [3.0, 3.0])


@pytest.mark.parametrize("op", ["relu6", "logaddexp", "logaddexp2"])
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_the_new_ops_pass_the_gradient_checks(op: str, backend: str) -> None:
    assert check_op(op, backend).compared > 0
