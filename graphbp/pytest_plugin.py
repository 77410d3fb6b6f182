"""pytest plugin (entry point ``pytest11``): the ``gradcheck`` fixture for op packages.

Example:
    def test_cube(gradcheck):
        gradcheck(Cube())          # checked on every installed backend
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def gradcheck() -> Callable[..., list[Any]]:
    """Check an op's vjp against central differences on every installed backend, and
    against ``jax.vjp`` of its forward where jax is installed.

    Call it with the op (or its name) and any keyword of ``graphbp.testing.check_op``;
    it returns one report per check and fails the test with the first disagreement. On
    NumPy it also fails an op whose forward or vjp writes into an array it is given (an
    operand, ``out`` or ``g``), naming the argument.
    """
    from graphbp.testing import check_op, check_op_autodiff, installed_backends

    def run(op: Any, **kwargs: Any) -> list[Any]:
        usable = installed_backends()
        reports = [check_op(op, backend, **kwargs) for backend in usable]
        if "jax" in usable:
            keep = {k: v for k, v in kwargs.items() if k in ("examples", "seed")}
            reports.append(check_op_autodiff(op, **keep))
        return reports

    return run
