"""pytest plugin (entry point ``pytest11``): the ``gradcheck`` fixture for op packages.

Example:
    def test_cube(gradcheck):
        gradcheck(Cube())          # checked on every installed backend
        gradcheck("cube")          # or by name, as an installed entry point (or the class)
        gradcheck(gb.Network(g))   # a network: every parameter's gradient (check_network)
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import pytest

from graphbp.frames import in_library


@pytest.fixture
def gradcheck() -> Callable[..., list[Any]]:
    """Check an op's vjp against central differences on every installed backend, and
    against ``jax.vjp`` of its forward where jax is installed; or a whole network's gradients.

    Call it with the op (an instance, its class or its name) and any keyword of
    ``graphbp.testing.check_op``, or with a ``gb.Network`` and any keyword of
    ``graphbp.testing.check_network``; it returns one report per check and fails the test
    with the first disagreement. On NumPy it also fails an op whose forward or vjp writes
    into an array it is given (an operand, ``out`` or ``g``), naming the argument.

    A failure shows graphbp's message (op, backend, example, operand, element, both values;
    for a network, the parameter and the op whose rule is wrong) and, when the plugin
    raised, the line of the plugin that raised, without graphbp's own frames.
    """
    from graphbp.errors import GraphbpError
    from graphbp.graph import Network
    from graphbp.testing import check_network, check_op, check_op_autodiff, installed_backends

    def run(subject: Any, **kwargs: Any) -> list[Any]:
        __tracebackhide__ = True
        usable = installed_backends()
        try:
            if isinstance(subject, Network):
                return [check_network(subject, backend, **kwargs) for backend in usable]
            reports = [check_op(subject, backend, **kwargs) for backend in usable]
            if "jax" in usable:
                keep = {k: v for k, v in kwargs.items() if k in ("examples", "seed")}
                reports.append(check_op_autodiff(subject, **keep))
            return reports
        except GraphbpError as exc:
            failure = f"{type(exc).__name__}: {exc}{_raised_at(exc)}"
        pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback

    return run


def _raised_at(exc: BaseException) -> str:
    """Where the plugin code that raised under ``exc`` is: the innermost frame outside
    graphbp, its ops, NumPy and JAX (``graphbp.frames.in_library``) of the deepest
    exception chained under ``exc`` that has one (empty when nothing a plugin ran raised)."""
    chain: list[BaseException] = []
    cause = exc.__cause__
    while cause is not None and len(chain) < 20:
        chain.append(cause)
        cause = cause.__cause__
    for cause in reversed(chain):  # JAX chains its own internal error under the plugin's
        for frame in reversed(traceback.extract_tb(cause.__traceback__)):
            if not in_library(frame.filename):
                return (
                    f"\n  raised at {frame.filename}:{frame.lineno}, in {frame.name}: {frame.line}"
                )
    return ""
