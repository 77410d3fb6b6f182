"""Shared fixtures: the seed network and a registry that forgets test ops afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import graphbp as gb
from graphbp.registry import unregister_op

pytest_plugins = ["pytester"]


@pytest.fixture
def register() -> Iterator[Any]:
    """register(op) for this test only."""
    names: list[str] = []

    def _register(op: Any, **kw: Any) -> gb.Op:
        registered = gb.register_op(op, **kw)
        names.append(registered.name)
        return registered

    yield _register
    for name in names:
        unregister_op(name)


@pytest.fixture
def seed_net() -> gb.Network:
    """The textbook network, 5 inputs, 4 hidden, 2 outputs."""
    return gb.Network(gb.seed_network(5, 4, 2))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
