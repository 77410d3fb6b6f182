"""Leaves: values that enter the graph rather than being computed in it."""

from __future__ import annotations

from graphbp import Op


class Input(Op):
    """Data fed at run time (``shape`` optional; None for an axis of any size)."""

    name = "input"
    label = "input"
    leaf = True


class Param(Op):
    """A trainable parameter (``shape`` required, ``init`` optional)."""

    name = "param"
    label = "param"
    leaf = True


class Const(Op):
    """A fixed value given in the graph (``value``)."""

    name = "const"
    label = "const"
    leaf = True
