"""JAX as the oracle for imported networks: its loss and gradients, keyed by graphbp's names.

Imported with ``from jax_reference import ...`` by the tests of ``gb.from_jax`` on models;
it imports jax, so import it after ``pytest.importorskip("jax")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import jax
import numpy as np

import graphbp as gb

TOLERANCE = {"float64": 1e-10, "float32": 1e-5}
"""The issue's allowance: relative to each array's largest entry."""


def path_name(path: Sequence[Any]) -> str:
    """A pytree leaf's name by the issue's rule: its keys and indices joined by "."."""
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            raise AssertionError(f"unknown pytree key {key!r}")
    return ".".join(parts)


def named_leaves(name: str, arg: Any, is_param: bool) -> dict[str, Any]:
    """One argument's leaves by their expected node names: a parameter's by its pytree path
    (a bare array by ``name``, ``fn``'s parameter name), another's prefixed with ``name``."""
    found = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(arg)[0]:
        inner = path_name(path)
        found[(inner if is_param else f"{name}.{inner}") if inner else name] = leaf
    return found


def leaves(fn: Callable[..., Any], args: Sequence[Any], argnums: Sequence[int]) -> dict[str, Any]:
    """Every argument leaf of ``fn(*args)`` by its expected node name (see named_leaves)."""
    names = list(inspect.signature(fn).parameters)
    found: dict[str, Any] = {}
    for i, arg in enumerate(args):
        found.update(named_leaves(names[i], arg, i in argnums))
    return found


def x64(dtype: str) -> AbstractContextManager[Any]:
    """JAX's 64-bit mode for float64 work, scoped (graphbp never flips the global flag)."""
    return jax.enable_x64(True) if dtype == "float64" else nullcontext()


def jax_value_and_grads(
    fn: Callable[..., Any], args: Sequence[Any], argnums: Sequence[int] = (0,)
) -> tuple[float, dict[str, Any]]:
    """``jax.value_and_grad(fn, argnums)`` with the gradients flattened to graphbp's names."""
    value, grads = jax.jit(jax.value_and_grad(fn, argnums=tuple(argnums)))(*args)
    names = list(inspect.signature(fn).parameters)
    named: dict[str, Any] = {}
    for i, grad in zip(argnums, grads, strict=True):
        named.update(named_leaves(names[i], grad, True))
    return float(value), {k: np.asarray(v, dtype=np.float64) for k, v in named.items()}


def close(got: Any, want: Any, rtol: float, where: str, atol: float = 0.0) -> None:
    """``got`` equals ``want`` within ``rtol`` of ``want``'s largest entry (plus ``atol``)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{where}: shape {got.shape}, JAX has {want.shape}"
    scale = float(np.max(np.abs(want), initial=0.0))
    diff = float(np.max(np.abs(got - want), initial=0.0))
    assert diff <= rtol * scale + atol, (
        f"{where}: differs from JAX by {diff:.3e} (largest |entry| {scale:.3e}, allowed "
        f"{rtol:.0e} relative + {atol:.0e})\ngot  {got.ravel()[:6]}\nwant {want.ravel()[:6]}"
    )


def check_leaves(
    fn: Callable[..., Any],
    args: Sequence[Any],
    argnums: Sequence[int],
    params: dict[str, Any],
    inputs: dict[str, Any],
) -> None:
    """``params`` and ``inputs`` hold exactly the leaves of ``fn``'s arguments, by the naming
    rule: a user feeds an imported network with their own data under these names only."""
    expected = leaves(fn, args, argnums)
    got = sorted([*params, *inputs])
    assert got == sorted(expected), (
        f"params and inputs hold {got}; the arguments {sorted(expected)}"
    )
    for name, value in [*params.items(), *inputs.items()]:
        np.testing.assert_array_equal(np.asarray(value), np.asarray(expected[name]), err_msg=name)


def check_import(
    fn: Callable[..., Any],
    args: Sequence[Any],
    dtype: str,
    *,
    argnums: Sequence[int] = (0,),
    backends: Sequence[str] = ("numpy", "jax"),
    rtol: float | None = None,
    atol: float = 0.0,
) -> gb.Network:
    """Import ``fn`` and check its loss and every gradient on each backend against JAX.

    The arguments and the reference are traced in ``dtype`` (float64 under JAX's 64-bit
    mode); the returned parameter and input dicts must hold exactly the arguments' leaves.
    """
    rtol = TOLERANCE[dtype] if rtol is None else rtol
    kwargs = (
        {} if tuple(argnums) == (0,) else {"argnums": argnums if len(argnums) > 1 else argnums[0]}
    )
    with x64(dtype):
        net, params, inputs = gb.from_jax(fn, *args, **kwargs)
        want_loss, want = jax_value_and_grads(fn, args, argnums)
    assert sorted(params) == sorted(want), f"parameters {sorted(params)}, expected {sorted(want)}"
    assert net.loss == "loss"
    for backend in backends:
        prog = net.compile(backend, dtype)
        loss, grads = prog.value_and_grad(params, inputs)
        where = f"{backend} {dtype}"
        close(prog.backend.to_numpy(loss), want_loss, rtol, f"loss on {where}", atol)
        assert sorted(grads) == sorted(want)
        for name, grad in want.items():
            close(prog.backend.to_numpy(grads[name]), grad, rtol, f"∂L/∂{name} on {where}", atol)
    check_leaves(fn, args, argnums, params, inputs)
    return net
